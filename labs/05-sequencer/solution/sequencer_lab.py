"""Lab 5: the sequencer (the solution).

The sequencer is the one sequential step of SCR: every packet passes through it, and it
gives each one what lets N cores compute exactly what one core would:

* a **sequence number**, the order every replica follows;
* a **core**, round-robin over the cores sprayed over;
* a **history**: the records of the packets since that core's previous frame, so that the
  core can fast-forward its private replica over them before it processes its own packet.

This file completes the per-packet step (``LabSequencer.sequence``) and the history rule
(``_history``). The rest (the ring, spray commands, STOP frames, the ground truth the oracle
checks every run against) is the testbed's own :class:`sequencer.shim.Sequencer`, which
``LabSequencer`` extends, and the shim host runs this class (``SEQUENCER`` at the end).

What ``Sequencer.__init__`` sets up for you:

* ``self.next_seq``: the sequence number the next packet gets (0 for the first);
* ``self.active``: the ids of the cores sprayed over now (all N at first; a spray command
  from the controller changes it when a core dies or comes back);
* ``self._turn``: the index in ``self.active`` of the core whose turn is next;
* ``self.ring``: ``deque(maxlen=N-1)``, the records of the last N-1 packets, oldest first;
* ``self.last_sent``: per core, the sequence number of its previous frame (-1: none yet);
* ``self.n_cores`` (N), ``self.nf.record_size``, ``self._prefixes[slot]`` (the dummy
  Ethernet header of each slot, ``h.dummy_ethernet(slot)``).

Caveat: the real sequencer's ``--withhold`` (fault injection that tests the oracle) is not
in this class: its ``_history`` replaces the real one.
"""

from __future__ import annotations

from sequencer.shim import FATE_SENT, Sequencer
from sequencer.wire import header as h
from sequencer.wire.packet import Packet, parse


class LabSequencer(Sequencer):
    """The shim's sequencer, with this lab's sequence numbers, spray and history."""

    def sequence(self, frame: bytes, ts: int) -> tuple[int, bytes | None]:
        """Sequence one packet that arrived at time ``ts`` (ns): ``(slot, SCR frame)``,
        where ``slot`` is the core the frame goes to."""
        pkt = parse(frame)  # not an IPv4 packet: MalformedFrame, before it gets a number
        record = self.nf.pack_record(pkt, ts)  # this packet's history record (bytes)
        seq = self._take_seq()
        slot = self._choose_core()
        records = self._history(slot, seq) if self.ring.maxlen else ()  # lock mode: none
        out = self._build_frame(slot, seq, ts, records, frame)
        # Only now, with the frame built, does the record join the ring: a packet's own
        # record is not history to its core (the core processes the packet itself).
        self.ring.append(record)
        self.last_sent[slot] = seq
        # (given) What the oracle checks the run against, then the injected loss if any.
        self._keep_ground_truth(frame, pkt, ts, slot, records)
        return slot, self._lose(seq, out)

    def _take_seq(self) -> int:
        """The packet's sequence number: 0, 1, 2, ... in arrival order."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def _choose_core(self) -> int:
        """The core this packet goes to: the next one of ``self.active``, round-robin."""
        slot = self.active[self._turn]
        self._turn = (self._turn + 1) % len(self.active)
        return slot

    def _history(self, core: int, seq: int) -> tuple[bytes, ...]:
        """The records frame ``seq`` to ``core`` carries, oldest first (the history rule):
        every record since ``core``'s previous frame, at least spray-1, at most N-1."""
        since = seq - self.last_sent[core] - 1
        count = min(len(self.ring), max(len(self.active) - 1, since))
        return tuple(self.ring)[len(self.ring) - count:]

    def _build_frame(self, slot: int, seq: int, ts: int, records: tuple[bytes, ...],
                     frame: bytes) -> bytes:
        """| dummy Ethernet (slot) | SCR header | history records | the original frame |"""
        header = h.SCR_HEADER.pack(h.SCR_MAGIC, h.SCR_VERSION, 0, len(records),
                                   self.nf.record_size, slot, self.n_cores, len(self.active),
                                   seq % h.SEQ_MODULUS, ts)
        return self._prefixes[slot] + header + b"".join(records) + frame

    # -- given: leave it as it is --
    def _keep_ground_truth(self, frame: bytes, pkt: Packet, ts: int, slot: int,
                           records: tuple[bytes, ...]) -> None:
        """The ground truth (``sequenced.pcap``, ``sequenced.csv``): the frame as it arrived,
        its trace id, timestamp, core, how many history records its frame carried, its fate.
        Every run is checked against it, the history rule included."""
        self.frames.append(frame)
        self.trace_ids.append(pkt.trace_id)
        self.timestamps.append(ts)
        self.cores.append(slot)
        self.history.append(len(records))
        self.fates.append(FATE_SENT)


# -- the lab's plumbing (leave it as it is): the shim runs this class --
SEQUENCER = LabSequencer
