"""Lab 4: the fast-forward of an SCR replica (the starter: complete the three TODOs).

An SCR core keeps a private replica of the NF's state. Each frame it receives carries the
history records of the packets since its previous frame (``first .. seq-1``, oldest first)
and then its own packet ``seq``. Before it processes its packet, the core must bring its
replica up to ``seq - 1`` by applying those records: the fast-forward. This file completes
it; the rest of the core (parsing, the NF, the verdicts) is ``nfs.cores.replica.Replica``.
"""

from __future__ import annotations

from nfs.cores.replica import Replica
from nfs.strategies import Strategy
from sequencer.wire.header import PAYLOAD_OFFSET  # noqa: F401 (TODO 2 needs it)


def records_to_apply(applied: int, first: int, seq: int) -> range:
    """The sequence numbers whose records a replica must apply from a frame that carries
    the records of ``first .. seq-1``, when it has applied everything up to ``applied``.

    Records up to ``applied`` are in the state already: applying one again would count
    it twice. The rest are applied oldest first."""
    # TODO 1: return the range of sequence numbers to apply, oldest first. Records up to
    # `applied` are in the state already (a record applied twice counts twice).
    raise NotImplementedError("TODO 1: records_to_apply must return the records after "
                              "`applied`, oldest first")


def record_offset(first: int, record_seq: int, record_size: int) -> int:
    """Where, in a frame whose history starts with the record of ``first``, the record of
    ``record_seq`` starts: the records follow the SCR header, oldest first."""
    # TODO 2: the records start at PAYLOAD_OFFSET (right after the SCR header), one every
    # `record_size` bytes, the record of `first` first.
    raise NotImplementedError("TODO 2: record_offset must say where a record starts")


class FastForwardReplica(Replica):
    """An SCR core whose fast-forward is this lab's."""

    def _fast_forward(self, frame: bytes, first: int, seq: int) -> None:
        self.note_gap(first)  # records older than ``first`` never came: the oracle is told
        for record_seq in records_to_apply(self.applied, first, seq):  # noqa: B007 (TODO 3)
            # TODO 3: find the record in the frame (record_offset), unpack its fields
            # (fields = self._unpack_record(frame, offset)) and apply them to the replica
            # (self.apply_record(record_seq, fields)).
            raise NotImplementedError("TODO 3: apply each record to the replica")
        # TODO 4: the replica now holds every update up to seq - 1: say so in self.applied
        # (never move it backwards: a frame may carry only records the replica has).


# -- the lab's plumbing (leave it as it is): run this core as the strategy "lab4-scr" --
STRATEGY = Strategy(name="lab4-scr", summary="SCR with lab 4's fast-forward", spray="scr",
                    history=True, make_core=lambda nf, core, n, _args:
                    FastForwardReplica(nf, core, n))
