"""The ``rsspp`` core (RSS++): owns the keys of the buckets the shim's table gives it, and
hands a bucket's keys over when the table moves it (``sequencer.rss``).

Like a ``shard`` core it keeps its keys in a private dict, every packet of one key
arriving at the one core that owns the key's bucket; unlike it, ownership moves. The shim
writes every :class:`~sequencer.rss.Migration` (from sequence number ``seq`` on, bucket
``b`` goes from core ``src`` to core ``dst``) to the plan before it stamps packet
``seq``, and the two cores keep per-key order across the move:

* the **old owner** hands the bucket over once it has processed every packet of it that
  came before ``seq``: at its first frame numbered ``seq`` or later (packets reach a core
  in sequence order), which the shim makes sure exists by sending it a MIGRATE frame
  right after its last packet of the bucket (the STOP frame, at the latest). It moves the
  bucket's keys out of its state into the migration's mailbox file (written whole, then
  renamed into place);
* the **new owner**, before it processes a packet of the bucket numbered ``seq`` or later,
  waits for that mailbox and takes the keys in (``handover_wait_us``). A move of a bucket
  it never got a packet of is taken in at the end, before it writes its state.

A mailbox that never comes within ``HANDOVER_TIMEOUT_S`` (the old owner died, or dropped
every frame after the move) is counted (``handover_timeouts``) and the core goes on
without those keys: the oracle then finds the states wrong, as it must. A bucket that
moves on before any of its packets reached the new owner (A to B, then B to C) is taken
in by B before B hands it on. Keys and values travel packed (the NF's own formats, as
hex), exact for any field.

Caveat: the wait for a mailbox is a poll (every 100 µs) in the core's one thread; the old
owner's queue can hold up to a receive queue's worth of the bucket's packets before the
move, so a hot bucket's move stalls the new owner for as long as the old one takes to
reach it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from nfs.base import NetworkFunction
from nfs.cores.base import Core, unpack_plain_header
from sequencer.rss import Migration, PlanReader, bucket_of, mailbox_path
from sequencer.wire import header as h
from sequencer.wire.packet import parse

#: How long a new owner waits for a bucket's state before going on without it.
HANDOVER_TIMEOUT_S = 2.0
POLL_S = 100e-6


class RssppCore(Core):
    """An ``rsspp`` core: a shard whose buckets move between cores with their state."""

    strategy = "rsspp"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int, plan: Path,
                 timeout_s: float = HANDOVER_TIMEOUT_S):
        super().__init__(nf, core, n_cores)
        self.state = nf.new_state()
        self.plan_path = Path(plan)
        self.plan = PlanReader(plan)
        self.timeout_s = timeout_s
        self.outgoing: list[Migration] = []  # moves away from this core, not handed over
        self.incoming: dict[int, list[Migration]] = {}  # bucket -> moves to it, not taken

    # --- the plan --------------------------------------------------------------------------
    def _read_plan(self) -> None:
        for move in self.plan.new():
            if move.src == self.core:
                self.outgoing.append(move)
            if move.dst == self.core:
                self.incoming.setdefault(move.bucket, []).append(move)

    def _hand_over(self, upto: int, deadline: float | None = None) -> None:
        """Every outgoing move from before ``upto``, in sequence order: this core has
        processed all it got of those buckets before the move (frames arrive in sequence
        order). A bucket that came here earlier is taken in first, even if none of its
        packets reached this core since (lost, or dropped at the queue): what it hands on
        must include what it was handed."""
        if not self.outgoing:
            return
        due = sorted((m for m in self.outgoing if m.seq <= upto), key=lambda m: m.seq)
        if not due:
            return
        self.outgoing = [m for m in self.outgoing if m.seq > upto]
        nf = self.nf
        for move in due:
            self._take_over(move.bucket, move.seq - 1, deadline)
            keys = [k for k in self.state if bucket_of(nf.pack_key(k)) == move.bucket]
            # Packed bytes, as hex: exact for every field format an NF may declare.
            items = [[nf.pack_key(k).hex(), nf.pack_value(self.state.pop(k)).hex()]
                     for k in keys]
            path = mailbox_path(self.plan_path, move)
            part = path.with_name(path.name + ".part")
            part.write_text(json.dumps(items))
            os.replace(part, path)  # the new owner sees it whole or not at all
            self.stats["migrations_out"] += 1
            self.stats["keys_out"] += len(items)

    def _take_over(self, bucket: int, upto: int, deadline: float | None = None) -> None:
        """Take in every move of ``bucket`` to this core from before ``upto``, waiting for
        the old owner's mailbox (until ``deadline``, default ``timeout_s`` from now)."""
        moves = self.incoming.get(bucket)
        if not moves:
            return
        due = [m for m in moves if m.seq <= upto]
        if not due:
            return
        self.incoming[bucket] = [m for m in moves if m.seq > upto]
        nf = self.nf
        for move in sorted(due, key=lambda m: m.seq):
            path = mailbox_path(self.plan_path, move)
            started = time.monotonic()
            until = deadline if deadline is not None else started + self.timeout_s
            while not path.exists():
                if time.monotonic() > until:
                    self.stats["handover_timeouts"] += 1
                    break
                time.sleep(POLL_S)
            else:
                items = json.loads(path.read_text())
                path.unlink()
                for key, value in items:
                    self.state[nf.unpack_key(bytes.fromhex(key))] = nf.unpack_value(
                        bytes.fromhex(value))
                self.stats["migrations_in"] += 1
                self.stats["keys_in"] += len(items)
            self.stats["handover_wait_us"] += round((time.monotonic() - started) * 1e6)

    # --- frames ----------------------------------------------------------------------------
    def handle(self, frame: bytes) -> bytes | None:
        try:
            hdr = unpack_plain_header(frame, self.core, self.n_cores)
            control = hdr.flags & (h.FLAG_STOP | h.FLAG_MIGRATE)
            pkt = None if control else parse(frame, h.PAYLOAD_OFFSET)
        except h.MalformedFrame as err:
            self.malformed[err.reason] += 1
            return None
        seq = hdr.seq
        self._read_plan()
        self._hand_over(seq)
        if control:
            self.stopped = bool(hdr.flags & h.FLAG_STOP)
            return None
        if seq <= self.applied:
            self.malformed["stale_seq"] += 1
            return None
        nf = self.nf
        self._take_over(bucket_of(nf.key_bytes(pkt)), seq)
        verdict = nf.process(self.state, pkt, hdr.timestamp_ns)
        self.applied = seq
        return self._done(seq, pkt.trace_id, verdict, frame[h.PAYLOAD_OFFSET:])

    def finish(self) -> None:
        """At STOP: hand over what is still due and take in every move to this core (its
        bucket may have had no packet here since), in sequence order, so that the final
        states partition the keys; one deadline for all the waits together."""
        self._read_plan()
        deadline = time.monotonic() + self.timeout_s
        self._hand_over(2 ** 62, deadline)  # takes in what each hand-over depends on
        for bucket in list(self.incoming):
            self._take_over(bucket, 2 ** 62, deadline)
        self.plan.close()

    def state_json(self):
        return self.nf.state_to_json(self.state)
