"""The SCR core: a private replica of the NF state, fast-forwarded over the history.

For each SCR frame the core

1. validates the SCR header and parses the original packet, and drops the frame, counted
   by reason, if either is malformed or not meant for this core; a dropped frame never
   touches the state;
2. fast-forwards the replica: applies ``nf.update`` to each history record, oldest first,
   whose sequence number it has not applied yet (records cover ``seq-count .. seq-1``);
3. runs ``nf.process`` on its own packet, then the NF's stateless compute (``spin(work)``);
4. forwards a passing packet (the original frame, SCR header stripped) to the sink.

If the first record is newer than the next unapplied sequence number, updates were lost
(the packets that carried them never arrived): the core records the missing range in
``gaps`` and carries on; the oracle then knows exactly which updates this replica lacks.
:mod:`nfs.cores.recovery` fetches them from the peers instead. A STOP frame carries the
last records, so every replica ends at the same sequence number.

Caveat: a frame is checked against the history rule (``header.check_history``) but the
records themselves cannot be checked here; the oracle compares the transition chains.
"""

from __future__ import annotations

from nfs.base import CHAIN_START, NetworkFunction, chain_step
from nfs.cores.base import Core
from sequencer.wire import header as h
from sequencer.wire.packet import parse

MAX_GAPS_LOGGED = 100_000


class Replica(Core):
    """An SCR core: a private state replica, fast-forwarded over the history.

    Besides its state it keeps the **transition chain** (``nfs.base.chain_step``) of every
    record it applied, and logs the chain's value at each of its own packets: the oracle
    compares those with the sequential run's, which shows a record skipped, repeated or
    reordered even where the final state cannot (a flow later deleted by its FIN).
    """

    strategy = "scr"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int):
        super().__init__(nf, core, n_cores)
        self.state = nf.new_state()
        self.chain = CHAIN_START
        self.gaps: list[tuple[int, int]] = []  # inclusive ranges of updates never received
        self._unpack_record = nf.record_format.unpack_from
        self._record_size = nf.record_size

    def handle(self, frame: bytes) -> bytes | None:
        try:
            hdr = h.unpack_header(frame)
            if hdr.slot != self.core or hdr.n_cores != self.n_cores:
                raise h.MalformedFrame("wrong_core", f"slot {hdr.slot}/{hdr.n_cores}")
            if hdr.count and hdr.record_size != self._record_size:
                raise h.MalformedFrame("bad_header", f"record size {hdr.record_size}")
            h.check_history(hdr)
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
        self._received(frame, seq - hdr.count, seq, pkt, hdr.timestamp_ns)
        self._fast_forward(frame, seq - hdr.count, seq)
        if stop:
            self.stopped = True
            return None
        verdict = self._process(pkt, hdr.timestamp_ns, seq)
        self.applied = seq
        return self._done(seq, pkt.trace_id, verdict, frame[inner:])

    def _received(self, frame: bytes, first: int, seq: int, pkt, ts: int) -> None:
        """A valid frame arrived, with the records of ``first .. seq-1`` and, unless it is
        a STOP frame, packet ``seq`` (``pkt``): a hook, before anything is applied."""

    def _process(self, pkt, ts: int, seq: int) -> int:
        """Run the NF on this core's own packet (a subclass may also keep what it needs)."""
        verdict, key, new = self.nf.process_traced(self.state, pkt, ts)
        self.chain = chain_step(self.chain, seq, key, new)
        return verdict

    def _done(self, seq: int, trace_id: int, verdict: int, out: bytes) -> bytes | None:
        self.log_chain.append(self.chain)
        return super()._done(seq, trace_id, verdict, out)

    def apply_record(self, seq: int, fields: tuple) -> None:
        """Apply the history record of packet ``seq`` (a fast-forward step)."""
        key, new = self.nf.update(self.state, fields)
        self.chain = chain_step(self.chain, seq, key, new)

    def note_gap(self, first: int) -> None:
        """Updates ``applied+1 .. first-1`` will never come: count and log the range."""
        if first > self.applied + 1:
            self.stats["gap_records"] += first - self.applied - 1
            if len(self.gaps) < MAX_GAPS_LOGGED:
                self.gaps.append((self.applied + 1, first - 1))

    def _fast_forward(self, frame: bytes, first: int, seq: int) -> None:
        """Apply the records of ``first .. seq-1`` not yet applied, oldest first; note
        missing ones."""
        self.note_gap(first)
        apply, unpack, size = self.apply_record, self._unpack_record, self._record_size
        start = max(first, self.applied + 1)  # records before it are in the state already
        offset = h.PAYLOAD_OFFSET + (start - first) * size
        for record_seq in range(start, seq):
            apply(record_seq, unpack(frame, offset))
            offset += size
        self.applied = max(self.applied, seq - 1)

    @property
    def fast_forwarded(self) -> int:
        """History records applied. Derived, not counted in the hot loop: every sequence
        number up to ``applied`` was fast-forwarded, processed here, or lost in a gap."""
        return self.applied + 1 - self.stats["processed"] - self.stats["gap_records"]

    def state_json(self):
        return self.nf.state_to_json(self.state)

    def results(self) -> dict:
        results = super().results()
        results["stats"]["fast_forwarded"] = self.fast_forwarded
        results["gaps"] = self.gaps
        results["chain"] = self.chain
        return results
