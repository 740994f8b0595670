"""Lab 5: the sequencer (the starter: complete the five TODOs).

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
from sequencer.wire import header as h  # noqa: F401 (TODO 4 uses it)
from sequencer.wire.packet import Packet, parse


class LabSequencer(Sequencer):
    """The shim's sequencer, with this lab's sequence numbers, spray and history."""

    def sequence(self, frame: bytes, ts: int) -> tuple[int, bytes | None]:
        """Sequence one packet that arrived at time ``ts`` (ns): ``(slot, SCR frame)``,
        where ``slot`` is the core the frame goes to."""
        pkt = parse(frame)  # not an IPv4 packet: MalformedFrame, before it gets a number
        record = self.nf.pack_record(pkt, ts)  # noqa: F841 (TODO 5 uses it) this packet's record
        seq = self._take_seq()  # TODO 1 is in _take_seq
        slot = self._choose_core()  # TODO 2 is in _choose_core
        records = self._history(slot, seq) if self.ring.maxlen else ()  # TODO 3 (lock: none)
        out = self._build_frame(slot, seq, ts, records, frame)  # TODO 4 is in _build_frame
        # TODO 5: now that the frame is built, push this packet's `record` into self.ring
        # (the deque drops the oldest record by itself once it holds N-1), and note that
        # core `slot`'s previous frame is now `seq` (self.last_sent). Why only now: a
        # packet's own record is not history to its core, which processes the packet itself.
        raise NotImplementedError("TODO 5: push the packet's record into the ring after "
                                  "building its frame, and note self.last_sent[slot]")
        # (given) What the oracle checks the run against, then the injected loss if any.
        self._keep_ground_truth(frame, pkt, ts, slot, records)
        return slot, self._lose(seq, out)

    def _take_seq(self) -> int:
        """The packet's sequence number: 0, 1, 2, ... in arrival order."""
        # TODO 1: return self.next_seq, the number this packet gets, and advance
        # self.next_seq by one, so that the next packet gets the next number.
        raise NotImplementedError("TODO 1: give each packet the next sequence number")

    def _choose_core(self) -> int:
        """The core this packet goes to: the next one of ``self.active``, round-robin."""
        # TODO 2: return the core whose turn it is, self.active[self._turn], and move
        # self._turn on to the next index of self.active (after the last, back to 0).
        # Use self.active, not range(N): after a spray command it lists only the live cores,
        # and the base class sets self._turn so that the round robin goes on where it was.
        raise NotImplementedError("TODO 2: choose the core, round-robin over self.active")

    def _history(self, core: int, seq: int) -> tuple[bytes, ...]:
        """The records frame ``seq`` to ``core`` carries, oldest first (the history rule):
        every record since ``core``'s previous frame, at least spray-1, at most N-1."""
        # TODO 3: the history rule. The frame carries `count` records, where count is
        #   * every record since core's previous frame: seq - self.last_sent[core] - 1,
        #   * but at least spray - 1, where spray = len(self.active) (the cores sprayed over),
        #   * and never more than the ring holds (at most N-1, fewer at the start).
        # Return the newest `count` records of the ring as a tuple, oldest first (the ring's
        # own order). A tuple, not the ring: the ring changes when the next record is pushed.
        # (The rule is also sequencer.wire.header.expected_count; careful with slices:
        # x[-0:] is all of x, not none of it.)
        raise NotImplementedError("TODO 3: pick the history records (the history rule)")

    def _build_frame(self, slot: int, seq: int, ts: int, records: tuple[bytes, ...],
                     frame: bytes) -> bytes:
        """| dummy Ethernet (slot) | SCR header | history records | the original frame |"""
        # TODO 4: build the frame, in this order:
        #   * the dummy Ethernet header that steers it to core `slot`: self._prefixes[slot];
        #   * the 20-byte SCR header: h.SCR_HEADER.pack(h.SCR_MAGIC, h.SCR_VERSION, flags=0,
        #     count=len(records), record size=self.nf.record_size, slot, self.n_cores,
        #     spray=len(self.active), seq % h.SEQ_MODULUS, ts) (arguments by position);
        #   * the records, oldest first, joined: b"".join(records);
        #   * the original frame, unchanged.
        raise NotImplementedError("TODO 4: build the frame (dummy Ethernet, SCR header, "
                                  "records, the original frame)")

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
