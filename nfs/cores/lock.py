"""The ``lock`` core: no replica; every transition runs on one shared table, under a lock.

Frames arrive round-robin with an empty history; the state is one
:class:`~nfs.cores.shared_table.SharedTable` in shared memory shared by all cores, and each
packet's transition runs under its key's stripe lock. When the key's state was last written
by another core, the core also pays ``transfer_work`` spin rounds inside the lock: the
cache-line transfer that real shared state costs on a multicore CPU, which separate Python
processes on two CPUs would not show by themselves (see the README's caveats).

Caveat: a full table (a flood of new keys) drops the packet, counted as ``table_full``.
"""

from __future__ import annotations

from nfs.base import NetworkFunction, spin
from nfs.cores.base import Core, unpack_plain_header
from nfs.cores.shared_table import TableFull
from sequencer.wire import header as h
from sequencer.wire.packet import parse


class LockCore(Core):
    """A ``lock`` core: no replica; every transition runs on the shared table, locked."""

    strategy = "lock"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int, table,
                 transfer_work: int = 0):
        super().__init__(nf, core, n_cores)
        if transfer_work < 0:
            raise ValueError("transfer work must be >= 0")
        self.table = table
        self.transfer_work = transfer_work
        # The state's cache line comes over from the core that wrote it last.
        self._transfer = self._pay_transfer if transfer_work else None

    def _pay_transfer(self) -> None:
        rounds = self.transfer_work
        if self.governor is not None:  # in proportion to the governed work
            rounds = self.governor.rounds(rounds * self.governor.calibrated)
        spin(rounds)

    def handle(self, frame: bytes) -> bytes | None:
        try:
            hdr = unpack_plain_header(frame, self.core, self.n_cores)
            stop = hdr.flags & h.FLAG_STOP
            pkt = None if stop else parse(frame, h.PAYLOAD_OFFSET)
        except h.MalformedFrame as err:
            self.malformed[err.reason] += 1
            return None
        if stop:
            self.stopped = True
            return None
        seq = hdr.seq
        if seq <= self.applied:
            self.malformed["stale_seq"] += 1
            return None
        nf = self.nf
        fields = nf.record(pkt, hdr.timestamp_ns)
        try:
            old, new, moved = self.table.transact(
                nf.key(fields), lambda value: nf.apply(value, fields), self.core,
                self._transfer)
        except TableFull:
            # A flood of new keys filled the table's segment: this packet is dropped and
            # counted, as a NIC drops what it has no room for; the core goes on.
            self.malformed["table_full"] += 1
            return None
        self.stats["moved"] += moved
        self.applied = seq
        return self._done(seq, pkt.trace_id, nf.verdict(old, new, fields),
                          frame[h.PAYLOAD_OFFSET:])
