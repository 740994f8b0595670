"""The network-function interface that every strategy runs unchanged.

An NF is written once as four pieces:

* ``record_format``/``record(pkt, ts)``: the state-relevant fields of a packet, packed into a
  fixed-size history record by the sequencer;
* ``update(state, fields)``: the cheap state transition, all a replica needs to fast-forward
  over another core's packet;
* ``process(state, pkt, ts) -> verdict``: the full sequential NF: it applies the same
  transition as ``update`` and decides the packet's fate;
* ``new_state()`` and ``state_to_json(state)``: a fresh state and its canonical JSON form,
  used to compare replicas with the sequential reference.

The contract that makes SCR exact is ``update(s, unpack_record(pack_record(p, ts)))`` leaving
``s`` exactly as ``process(s, p, ts)`` does (``tests/unit/test_nfs.py`` checks it for every NF).
Time, where an NF needs it, is the sequencer's timestamp ``ts``, never a local clock.

``work`` stands for the expensive, stateless part of an NF (the paper's per-packet cost
``t``): ``spin(work)`` burns that many rounds of integer arithmetic after ``process``. It
is not replicated: only the core that owns a packet pays it.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from nfs.packet import Packet

DROP = 0
PASS = 1
VERDICT_NAMES = {DROP: "drop", PASS: "pass"}


def spin(rounds: int, seed: int = 1) -> int:
    """Burn ``rounds`` steps of a linear congruential generator: the NF's compute cost."""
    x = seed
    for _ in range(rounds):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


class NetworkFunction(ABC):
    """Base class of the NFs; subclasses set ``name`` and ``record_format``."""

    name: ClassVar[str]
    record_format: ClassVar[struct.Struct]

    def __init__(self, work: int = 0):
        if work < 0:
            raise ValueError("work must be >= 0")
        self.work = work

    # --- what each NF defines ----------------------------------------------------------
    @abstractmethod
    def new_state(self) -> Any:
        """A fresh, empty state."""

    @abstractmethod
    def record(self, pkt: Packet, ts: int) -> tuple:
        """The fields of ``pkt`` that ``update`` needs, in ``record_format`` order."""

    @abstractmethod
    def update(self, state: Any, fields: tuple) -> None:
        """Apply one history record to ``state`` (the fast-forward step)."""

    @abstractmethod
    def process(self, state: Any, pkt: Packet, ts: int) -> int:
        """Run the NF on ``pkt``: update ``state`` and return ``PASS`` or ``DROP``."""

    @abstractmethod
    def state_to_json(self, state: Any) -> Any:
        """``state`` as canonical JSON data (sorted, string keys) for comparison."""

    def params(self) -> dict:
        """The NF's parameters, for results' config files."""
        return {"work": self.work}

    # --- shared helpers ----------------------------------------------------------------
    @property
    def record_size(self) -> int:
        return self.record_format.size

    def pack_record(self, pkt: Packet, ts: int) -> bytes:
        return self.record_format.pack(*self.record(pkt, ts))

    def unpack_record(self, data: bytes) -> tuple:
        return self.record_format.unpack(data)
