"""The SCR replica worker: one process per emulated core.

Each worker receives the SCR frames of its core port (like a NIC RX queue), keeps a private
replica of the NF state and, for each frame:

1. validates the SCR header and parses the original packet, and drops the frame, counted
   by reason, if either is malformed or not meant for this core; a dropped frame never
   touches the state;
2. fast-forwards the replica: applies ``nf.update`` to each history record, oldest first,
   whose sequence number it has not applied yet (records cover ``seq-count .. seq-1``);
3. runs ``nf.process`` on its own packet, then the NF's compute cost (``spin(work)``);
4. forwards a passing packet (the original frame, SCR header stripped) back to the switch,
   which sends it to the sink.

If the first record is newer than the next unapplied sequence number, updates were lost
(the packets that carried them never arrived): the worker counts them in ``gap_records``
and carries on; ``sequence-equivalence`` then fails for this replica, as it must.

A STOP frame carries the last N-1 records: the worker fast-forwards over them, so every
replica ends at the same sequence number, writes its results and exits.

Results (in ``--out``): ``core<i>.json`` (counters, final state, last applied sequence
number, first/last packet time) and ``core<i>_log.csv`` (``seq,trace_id,verdict`` per packet).

Run: ``python -m nfs.worker --iface nf-eth0 --core 0 --cores 4 --nf ddos --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

from nfs import NF_CLASSES, make_nf
from nfs.base import PASS, NetworkFunction, spin
from nfs.packet import parse
from sequencer import header as h
from sequencer.dataplane import (
    announce_ready,
    cpu_seconds,
    open_socket,
    run_until_stopped,
    write_json,
)


class Replica:
    """One core's state replica and its SCR bookkeeping (no sockets: unit-testable)."""

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int):
        self.nf = nf
        self.core = core
        self.n_cores = n_cores
        self.state = nf.new_state()
        self.applied = -1  # highest sequence number whose update is in the state
        self.stats: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.log_seq = array("q")
        self.log_trace = array("q")
        self.log_verdict = array("b")
        self.first_ns = self.last_ns = 0
        self.stopped = False
        self._unpack_record = nf.record_format.unpack_from
        self._record_size = nf.record_size

    def handle(self, frame: bytes) -> bytes | None:
        """Handle one frame; return the packet to forward, or None."""
        try:
            hdr = h.unpack_header(frame)
            if hdr.slot != self.core or hdr.n_cores != self.n_cores:
                raise h.MalformedFrame("wrong_core", f"slot {hdr.slot}/{hdr.n_cores}")
            if hdr.count and hdr.record_size != self._record_size:
                raise h.MalformedFrame("bad_header", f"record size {hdr.record_size}")
            inner = h.PAYLOAD_OFFSET + hdr.count * hdr.record_size
            stop = hdr.flags & h.FLAG_STOP
            pkt = None if stop else parse(frame, inner)
        except h.MalformedFrame as err:
            self.malformed[err.reason] += 1
            return None
        seq = hdr.seq
        if seq <= self.applied:
            # Already applied (a duplicate, or a frame replayed from the past): applying
            # it again would count it twice.
            self.malformed["stale_seq"] += 1
            return None
        self._fast_forward(frame, seq - hdr.count, seq)
        if stop:
            self.stopped = True
            return None
        verdict = self.nf.process(self.state, pkt, hdr.timestamp_ns)
        self.applied = seq
        spin(self.nf.work, seq)
        self.log_seq.append(seq)
        self.log_trace.append(pkt.trace_id)
        self.log_verdict.append(verdict)
        self.stats["processed"] += 1
        if verdict == PASS:
            self.stats["passed"] += 1
            return frame[inner:]
        self.stats["dropped"] += 1
        return None

    def _fast_forward(self, frame: bytes, first: int, seq: int) -> None:
        """Apply the records of ``first .. seq-1`` not yet applied; count missing ones."""
        if first > self.applied + 1:
            self.stats["gap_records"] += first - self.applied - 1
        update, unpack, state = self.nf.update, self._unpack_record, self.state
        size = self._record_size
        start = max(first, self.applied + 1)  # records before it are in the state already
        for offset in range(h.PAYLOAD_OFFSET + (start - first) * size,
                            h.PAYLOAD_OFFSET + (seq - first) * size, size):
            update(state, unpack(frame, offset))
        self.applied = max(self.applied, seq - 1)

    @property
    def fast_forwarded(self) -> int:
        """History records applied. Derived, not counted in the hot loop: every sequence
        number up to ``applied`` was fast-forwarded, processed here, or lost in a gap."""
        return self.applied + 1 - self.stats["processed"] - self.stats["gap_records"]

    def results(self) -> dict:
        return {
            "core": self.core,
            "n_cores": self.n_cores,
            "applied": self.applied,
            "stopped_by_marker": self.stopped,
            "stats": {**self.stats, "fast_forwarded": self.fast_forwarded},
            "malformed": dict(self.malformed),
            "malformed_total": sum(self.malformed.values()),
            "cpu_s": cpu_seconds(),
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "state": self.nf.state_to_json(self.state),
        }

    def write_results(self, out_dir: Path) -> None:
        with open(out_dir / f"core{self.core}_log.csv", "w") as f:
            f.write("seq,trace_id,verdict\n")
            f.writelines(
                f"{s},{t},{v}\n"
                for s, t, v in zip(self.log_seq, self.log_trace, self.log_verdict, strict=True)
            )
        write_json(out_dir / f"core{self.core}.json", self.results())


def run(replica: Replica, iface: str) -> None:
    """Receive and handle frames until a STOP frame or a stop signal."""
    sock = open_socket(iface, h.ETH_P_SCR)
    recv, send, handle, clock = sock.recv, sock.send, replica.handle, time.monotonic_ns
    announce_ready()
    try:
        frame = recv(65535)
        replica.first_ns = clock()
        while True:
            out = handle(frame)
            if out is not None:
                try:
                    send(out)
                except OSError:
                    replica.stats["tx_errors"] += 1
            if replica.stopped:
                break
            replica.last_ns = clock()
            frame = recv(65535)
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", required=True, help="this core's interface")
    parser.add_argument("--core", type=int, required=True, help="core index i (0-based)")
    parser.add_argument("--cores", type=int, required=True, help="number of cores N")
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args(argv)
    if not 0 <= args.core < args.cores:
        parser.error(f"--core must be in 0..{args.cores - 1}")
    replica = Replica(make_nf(args.nf, **json.loads(args.nf_params)), args.core, args.cores)
    return run_until_stopped(lambda: run(replica, args.iface),
                             lambda: replica.write_results(args.out))


if __name__ == "__main__":
    sys.exit(main())
