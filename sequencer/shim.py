"""The sequencer shim: the userspace half of the sequencer node.

It runs in the sequencer host, receives every packet the switch steers to it (ingress
port), and for each one:

1. parses it and packs the NF's history record (``nf.pack_record``);
2. gives it the next sequence number and the sequencer's timestamp;
3. emits ``| dummy Ethernet (slot = seq mod N) | SCR header | last N-1 records | packet |``
   on the egress port, where the controller's one-rule-per-slot table sends it to core
   ``seq mod N``: exact round-robin;
4. appends its record to the ring of the last N-1 records.

The cores sprayed over are all N at first. The controller may change them with a spray
command (``header.spray_frame``, sent by packet-out into the shim's ingress port) when a
core dies or comes back: from the next packet on, the shim sprays round-robin over the
cores named and the history holds one record fewer than their number (``reconfigs`` in
``shim.json`` says at which sequence number each command took effect).

``--loss P --loss-seed S`` injects loss at this dispatch stage: a seeded draw drops
a fraction P of the packets after they were stamped and their records entered the history,
as if the link to their core had lost them (``lost_seqs`` in ``shim.json``).

Anything that is not a well-formed IPv4 frame is counted by reason and dropped: it gets no
sequence number. An SCR frame with the STOP flag arriving at ingress (the generator's
end-of-trace marker) makes the shim send one STOP frame to every core, carrying the last
N-1 records, so each replica fast-forwards to the final sequence number before it exits.

On exit it writes ``shim.json`` (counters) and ``sequenced.csv`` (``seq,trace_id,ts_ns``:
which trace packet got which sequence number and timestamp), from which the correctness
oracle replays the exact order.

Every strategy's packets go through the shim, so that all strategies pay the same
infrastructure cost and all get the sequencer's order and clock (``--strategy``):

* ``scr`` (and ``single``, one core): as above;
* ``lock``: round-robin spray with an empty history (the cores share one state instead);
* ``shard``: no spray and no history: the original frame leaves with a 14-byte trailer
  (sequence number, timestamp) so that the switch's RSS hash can still read its IPv4 and
  TCP fields. STOP frames are SCR frames, one per core slot, in every mode.

Run: ``python -m sequencer.shim --in-iface seq-eth0 --out-iface seq-eth1 --cores 4 --nf ddos``.
Caveat: one Python process, so it is a bottleneck candidate; ``tx_errors`` counts sends the
kernel refused (full socket buffer) and the fidelity check must watch it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from array import array
from collections import Counter, deque
from pathlib import Path

from nfs import NF_CLASSES, make_nf
from nfs.base import NetworkFunction
from nfs.packet import parse
from sequencer import header as h
from sequencer.dataplane import (
    ETH_P_ALL,
    DropCounter,
    announce_ready,
    check_places,
    cpu_seconds,
    open_socket,
    run_until_stopped,
    write_json,
)

MALFORMED_SAMPLES = 5
STRATEGIES = ("scr", "lock", "shard", "single")


class Sequencer:
    """The shim's logic without sockets: frames in, SCR frames out (unit-testable)."""

    def __init__(self, nf: NetworkFunction, n_cores: int, strategy: str = "scr",
                 loss_rate: float = 0.0, loss_seed: int = 1):
        if not 1 <= n_cores <= h.MAX_CORES:
            raise ValueError(f"cores must be in 1..{h.MAX_CORES}")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        if not 0 <= loss_rate < 1:
            raise ValueError(f"loss rate must be in [0, 1), got {loss_rate}")
        self.nf = nf
        self.n_cores = n_cores
        self.strategy = strategy
        self.next_seq = 0
        self.ring: deque[bytes] = deque(maxlen=0)
        self.active: tuple[int, ...] = ()
        self.epoch = -1
        self.reconfigs: list[dict] = []  # every spray command applied: at which seq, to what
        self._set_active(tuple(range(n_cores)))
        if strategy == "shard":
            self.sequence = self._stamp  # type: ignore[method-assign]
        self._prefixes = [h.dummy_ethernet(slot) for slot in range(n_cores)]
        self._record_size = nf.record_size
        self.trace_ids = array("q")  # by sequence number
        self.timestamps = array("q")
        self.malformed: Counter[str] = Counter()
        self.malformed_samples: list[str] = []  # the first few, as hex, for debugging
        self.stops = 0
        self.rx_dropped = 0  # frames the kernel dropped at ingress (a full socket queue)
        # Injected loss: a seeded draw per sequenced packet, so a seed and a trace always
        # lose the same sequence numbers, whatever the timing.
        self.loss_rate = loss_rate
        self._loss_draw = random.Random(loss_seed).random
        self.lost = array("q")  # sequence numbers dropped on purpose after stamping

    def _set_active(self, cores: tuple[int, ...]) -> None:
        """Spray over ``cores`` from the next packet on; SCR's history shrinks or grows to
        one record fewer than the cores sprayed over (records kept: the newest)."""
        self.active = cores
        self._turn = 0
        history = len(cores) - 1 if self.strategy in ("scr", "single") else 0
        self.ring = deque(self.ring, maxlen=history)

    def sequence(self, frame: bytes, ts: int) -> tuple[int, bytes | None]:
        """Sequence one ingress frame: ``(slot, SCR frame)``, the frame None when the
        injected loss drops it; MalformedFrame if it is bad."""
        pkt = parse(frame)
        seq = self.next_seq
        slot = self.active[self._turn]
        self._turn = (self._turn + 1) % len(self.active)
        ring = self.ring
        out = b"".join(
            (
                self._prefixes[slot],
                h.SCR_HEADER.pack(
                    h.SCR_MAGIC, h.SCR_VERSION, 0, len(ring), self._record_size,
                    slot, self.n_cores, seq % h.SEQ_MODULUS, ts,
                ),
                *ring,
                frame,
            )
        )
        if ring.maxlen:  # lock keeps no history: its records would never be sent
            ring.append(self.nf.pack_record(pkt, ts))
        self.next_seq = seq + 1
        self.trace_ids.append(pkt.trace_id)
        self.timestamps.append(ts)
        return slot, self._lose(seq, out)

    def _lose(self, seq: int, out: bytes) -> bytes | None:
        """``out``, or None if the injected loss drops packet ``seq`` (stamped, recorded in
        the history, never sent: a packet lost between the sequencer and its core)."""
        if self.loss_rate and self._loss_draw() < self.loss_rate:
            self.lost.append(seq)
            return None
        return out

    def _stamp(self, frame: bytes, ts: int) -> tuple[int, bytes | None]:
        """The shard form of ``sequence``: the frame plus a trailer, no slot (-1)."""
        pkt = parse(frame)
        seq = self.next_seq
        self.next_seq = seq + 1
        self.trace_ids.append(pkt.trace_id)
        self.timestamps.append(ts)
        return -1, self._lose(
            seq, frame + h.SCR_TRAILER.pack(seq % h.SEQ_MODULUS, ts, h.TRAILER_MAGIC))

    def stop_frames(self, ts: int) -> list[bytes]:
        """One STOP frame per core sprayed over, carrying the last records (no packet)."""
        self.stops += 1
        records = list(self.ring)
        return [
            h.encode(
                h.ScrHeader(h.FLAG_STOP, len(records), self.nf.record_size, slot,
                            self.n_cores, self.next_seq % h.SEQ_MODULUS, ts),
                records,
            )
            for slot in self.active
        ]

    def respray(self, epoch: int, cores: tuple[int, ...], ts: int) -> bool:
        """Apply the controller's spray command; False (ignored) if it is stale or names
        a core this shim does not have."""
        if epoch <= self.epoch or any(c >= self.n_cores for c in cores):
            self.malformed["stale_spray" if epoch <= self.epoch else "bad_spray"] += 1
            return False
        self.epoch = epoch
        self._set_active(cores)
        self.reconfigs.append({"seq": self.next_seq, "epoch": epoch, "cores": list(cores),
                               "t_ns": ts})
        return True

    def control(self, frame: bytes, ts: int) -> list[bytes] | None:
        """Handle a frame that is not a packet to sequence: the end-of-trace marker (the
        STOP frames to send) or a spray command ([]); None if it is neither."""
        ethertype = frame[12:14]
        if ethertype == _SPRAY_TYPE:
            try:
                epoch, cores = h.unpack_spray(frame)
            except h.MalformedFrame:
                return None
            self.respray(epoch, cores, ts)
            return []
        if ethertype == _SCR_TYPE and self.is_stop_marker(frame):
            return self.stop_frames(ts)
        return None

    def count_malformed(self, reason: str, frame: bytes) -> None:
        self.malformed[reason] += 1
        if len(self.malformed_samples) < MALFORMED_SAMPLES:
            self.malformed_samples.append(f"{reason}: {frame[:64].hex()}")

    def is_stop_marker(self, frame: bytes) -> bool:
        try:
            return bool(h.unpack_header(frame).flags & h.FLAG_STOP)
        except h.MalformedFrame:
            return False


_SPRAY_TYPE = h.ETH_P_SPRAY.to_bytes(2, "big")
_SCR_TYPE = h.ETH_P_SCR.to_bytes(2, "big")


def run(seq: Sequencer, in_iface: str, out_iface: str, stats: Counter) -> None:
    """The hot loop: receive on ``in_iface``, send on ``out_iface`` until stopped."""
    rx = open_socket(in_iface, ETH_P_ALL)
    tx = open_socket(out_iface, None)
    drops = DropCounter(rx)
    recv, send, sequence, clock = rx.recv, tx.send, seq.sequence, time.monotonic_ns
    announce_ready()
    try:
        while True:
            frame = recv(65535)
            try:
                _slot, out = sequence(frame, clock())
            except h.MalformedFrame as err:
                control = seq.control(frame, clock())
                if control is None:
                    seq.count_malformed(err.reason, frame)
                for stop in control or ():
                    send(stop)
                continue
            if out is None:  # lost on purpose
                continue
            try:
                send(out)
            except OSError:
                stats["tx_errors"] += 1
    finally:
        seq.rx_dropped = drops.read()
        rx.close()
        tx.close()


def write_results(seq: Sequencer, stats: Counter, out_dir: Path) -> None:
    with open(out_dir / "sequenced.csv", "w") as f:
        f.write("seq,trace_id,ts_ns\n")
        pairs = zip(seq.trace_ids, seq.timestamps, strict=True)
        f.writelines(f"{i},{tid},{ts}\n" for i, (tid, ts) in enumerate(pairs))
    write_json(
        out_dir / "shim.json",
        {
            "sequenced": seq.next_seq,
            "malformed": dict(seq.malformed),
            "malformed_total": sum(seq.malformed.values()),
            "malformed_samples": seq.malformed_samples,
            "stop_markers": seq.stops,
            "tx_errors": stats["tx_errors"],
            "rx_dropped": seq.rx_dropped,
            "strategy": seq.strategy,
            "loss_rate": seq.loss_rate,
            "injected_loss": len(seq.lost),
            "lost_seqs": list(seq.lost),
            "reconfigs": seq.reconfigs,
            "cpu_s": cpu_seconds(),
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-iface", required=True, help="interface the switch feeds")
    parser.add_argument("--out-iface", required=True, help="interface towards the cores")
    parser.add_argument("--cores", type=int, required=True, help="number of cores N")
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--strategy", default="scr", choices=STRATEGIES)
    parser.add_argument("--loss", type=float, default=0.0,
                        help="drop this fraction of sequenced packets (injected loss, 0..1)")
    parser.add_argument("--loss-seed", type=int, default=1, help="seed of the injected loss")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args(argv)
    try:
        params = json.loads(args.nf_params)
        if not isinstance(params, dict):
            raise ValueError(f"--nf-params must be a JSON object, got {args.nf_params}")
        seq = Sequencer(make_nf(args.nf, **params), args.cores, args.strategy, args.loss,
                        args.loss_seed)
        check_places(args.out, args.in_iface, args.out_iface)  # after the values
    except ValueError as err:  # json's errors are ValueErrors too
        parser.exit(2, f"shim: {err}\n")
    stats: Counter = Counter()
    return run_until_stopped(lambda: run(seq, args.in_iface, args.out_iface, stats),
                             lambda: write_results(seq, stats, args.out))


if __name__ == "__main__":
    sys.exit(main())
