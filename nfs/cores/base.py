"""What every core runtime shares: the :class:`Core` base class and its receive loop.

A core is one emulated CPU core's NF runtime: it receives the frames of its core port (like
a NIC RX queue, bounded by the socket's buffer: an overloaded core drops frames, which the
kernel counts), runs the NF on them, forwards what passes and, after the STOP frame, writes
its results (``core<i>.json``: counters, final state, last applied sequence number, socket
drops, first/last packet time; ``core<i>_log.csv``: ``seq,trace_id,verdict,chain,done_ns``
per packet it processed, ``done_ns`` the monotonic clock when it was done, the clock the
shim stamps ``sequenced.csv`` with: the steady-state loss of a trial is counted from both).

The strategies' cores are subclasses, one module each in this package
(:mod:`~nfs.cores.replica`, :mod:`~nfs.cores.lock`, :mod:`~nfs.cores.shard`,
:mod:`~nfs.cores.store`); :mod:`nfs.strategies` says which strategy uses which.

Caveat: :func:`run` is a plain blocking loop, one frame at a time; the store strategies'
cores have their own asyncio loop (:func:`nfs.cores.store.run`).
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from pathlib import Path

from nfs.base import PASS, NetworkFunction, SpinGovernor, spin
from sequencer.dataplane import (
    SOCKET_BUFFER,
    DropCounter,
    announce_ready,
    cpu_seconds,
    open_socket,
    write_json,
)
from sequencer.wire import header as h


class Core:
    """What every strategy's core keeps: counters, the per-packet log, timing."""

    strategy = ""
    ethertype = h.ETH_P_SCR  # what its socket receives

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int):
        self.nf = nf
        self.core = core
        self.n_cores = n_cores
        self.name = f"core{core}"  # its results' file names
        self.applied = -1  # highest sequence number whose update this core has seen
        self.stats: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.log_seq = array("q")
        self.log_trace = array("q")
        self.log_verdict = array("b")
        self.log_chain = array("q")  # replicas: the transition chain at each own packet
        self.log_ns = array("q")  # when each was done (time.monotonic_ns)
        self.first_ns = self.last_ns = 0
        self.cpu_first_s: float | None = None  # the process's CPU time at its first frame
        self.stopped = False
        self.rx_dropped = 0
        self.governor: SpinGovernor | None = None  # keeps the work at its CPU time
        self._work = lambda seed: spin(self.nf.work, seed)

    def govern(self, ns_per_round: float) -> None:
        """Keep the NF's costs at their CPU time, from a round costing ``ns_per_round``
        (the experiment's calibration): see :class:`nfs.base.SpinGovernor`."""
        self.governor = SpinGovernor(self.nf, ns_per_round)
        self._work = self.governor.work

    def start(self) -> None:
        """Once built and its results folder checked, before it announces it is ready (a
        hook: a recovering replica starts serving its peers here)."""

    def handle(self, frame: bytes) -> bytes | None:
        """Handle one frame; return the packet to forward, or None."""
        raise NotImplementedError

    def finish(self) -> None:
        """After the STOP frame, before the results are written (a hook)."""

    def _done(self, seq: int, trace_id: int, verdict: int, out: bytes, *,
              paid: bool = False) -> bytes | None:
        """Log a processed packet, pay the NF's stateless compute (unless ``paid`` already),
        return what to forward."""
        if not paid:
            self._work(seq)
        self.log_seq.append(seq)
        self.log_trace.append(trace_id)
        self.log_verdict.append(verdict)
        self.log_ns.append(time.monotonic_ns())
        self.stats["processed"] += 1
        if verdict == PASS:
            self.stats["passed"] += 1
            return out
        self.stats["dropped"] += 1
        return None

    def state_json(self):
        """The state this core holds, as canonical JSON (None when it holds none)."""
        return None

    def results(self) -> dict:
        return {
            "core": self.core,
            "n_cores": self.n_cores,
            "strategy": self.strategy,
            "applied": self.applied,
            "stopped_by_marker": self.stopped,
            "stats": dict(self.stats),
            "malformed": dict(self.malformed),
            "malformed_total": sum(self.malformed.values()),
            "rx_dropped": self.rx_dropped,
            "cpu_s": cpu_seconds(),
            # CPU spent from the first frame on: per packet, what the core's work costs
            # without the start-up (experiments.runtime.capacity reads it).
            "busy_cpu_s": round(cpu_seconds() - self.cpu_first_s, 6)
            if self.cpu_first_s is not None else 0.0,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "state": self.state_json(),
            "spin": self.governor.results() if self.governor else None,
        }

    def write_results(self, out_dir: Path) -> None:
        chains = self.log_chain or [0] * len(self.log_seq)  # 0: no replica, no chain
        with open(out_dir / f"{self.name}_log.csv", "w") as f:
            f.write("seq,trace_id,verdict,chain,done_ns\n")
            f.writelines(
                f"{s},{t},{v},{c},{n}\n"
                for s, t, v, c, n in zip(self.log_seq, self.log_trace, self.log_verdict,
                                         chains, self.log_ns, strict=True)
            )
        write_json(out_dir / f"{self.name}.json", self.results())



def unpack_plain_header(frame: bytes, core: int, n_cores: int) -> h.ScrHeader:
    """The SCR header of a frame for a core that expects no history (``lock`` and the store
    strategies); MalformedFrame if it is for another core or carries records."""
    hdr = h.unpack_header(frame)
    if hdr.slot != core or hdr.n_cores != n_cores:
        raise h.MalformedFrame("wrong_core", f"slot {hdr.slot}/{hdr.n_cores}")
    if hdr.count:
        raise h.MalformedFrame("bad_header", f"{hdr.count} history records")
    return hdr


def run(core: Core, iface: str, rcvbuf: int = SOCKET_BUFFER) -> None:
    """Receive and handle frames until a STOP frame or a stop signal."""
    sock = open_socket(iface, core.ethertype, rcvbuf)
    drops = DropCounter(sock)
    recv, send, handle, clock = sock.recv, sock.send, core.handle, time.monotonic_ns
    announce_ready()
    try:
        frame = recv(65535)
        core.first_ns = clock()
        core.cpu_first_s = cpu_seconds()
        while True:
            out = handle(frame)
            if out is not None:
                try:
                    send(out)
                except OSError:
                    core.stats["tx_errors"] += 1
            if core.stopped:
                break
            core.last_ns = clock()
            frame = recv(65535)
        core.finish()
    finally:
        core.rx_dropped = drops.read()
        sock.close()
