"""The network-function interface that every strategy runs unchanged.

Every NF of the SCR paper keeps *per-key* state, so an NF is written once as a pure
per-key transition that any store can host: SCR's private dict replica, the ``lock``
strategy's shared-memory table (fixed-size packed keys and values), the ``shard`` strategy's
per-core dicts, or an external store. Each NF defines:

* ``record_format``/``record(pkt, ts)``: the state-relevant fields of a packet (the history
  record the sequencer packs), including the sequencer's timestamp where the NF needs time;
* ``key(fields)``: the state key those fields touch, a tuple in ``key_format`` order;
* ``step(value, fields)``: that key's new value, a tuple in ``value_format`` order, or None
  for "absent" (never created, or deleted);
* ``verdict(old, new, fields)``: ``PASS`` or ``DROP`` for the packet, from the key's value
  before and after its transition;
* ``key_to_json``/``value_to_json``: the canonical JSON form used to compare replicas;
* ``shard_fields``: the OpenFlow fields an RSS hash must cover so that every packet of one
  key lands on one core.

The base class builds the rest on top, for a state that is a dict of key -> value tuple:
``apply`` (``step`` plus the state-transition cost), ``update`` (the fast-forward over one
history record), ``process`` (transition and verdict; ``process_traced`` also returns the
key and its new value, for the transition chain) and ``state_to_json``. Hence
``update(s, unpack_record(pack_record(p, ts)))`` leaves ``s`` exactly as ``process(s, p, ts)``
does, by construction (``tests/unit/test_nfs.py`` still checks it for every NF).

Costs: ``work`` stands for the expensive, stateless part of an NF (the paper's per-packet
cost ``t``): the worker pays ``spin(work)`` once per packet it owns, never in ``process`` or
``update``. ``state_work`` is the cost of one state transition (the paper's ``c``): it is
paid inside ``apply``, i.e. on *every* transition, so SCR pays it once per history record
and a locking strategy pays it inside its critical section.

Caveats: ``step`` and ``verdict`` must be deterministic functions of their arguments (no
clocks, no randomness, integers only) or replicas diverge. ``update`` and
``process_traced`` inline ``apply`` to save a call on the hot path: a subclass that
overrides ``apply`` must override them too.

The **transition chain** (:func:`chain_step`) folds every transition a replica applies, in
order, into one integer that the oracle recomputes from the sequential run: it shows a
record skipped, repeated or reordered even when the final state no longer can.
"""

from __future__ import annotations

import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from operator import itemgetter
from typing import Any, ClassVar

from sequencer.wire.packet import Packet, int_to_ip

DROP = 0
PASS = 1
VERDICT_NAMES = {DROP: "drop", PASS: "pass"}


def spin(rounds: int, seed: int = 1) -> int:
    """Burn ``rounds`` steps of a linear congruential generator: the NF's compute cost."""
    x = seed
    for _ in range(rounds):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


class SpinGovernor:
    """Keeps an NF's compute at its targets in CPU time while a spin round's speed drifts.

    A round of :func:`spin` takes 75-160 ns depending on the machine and, on one machine, on
    what shares its CPU (a busy sibling hyperthread nearly halves it). The experiment
    calibrates a round once (``experiments.runtime.calibration``) and gives the NF its ``work`` and
    ``state_work`` in rounds; a core that governs them times each packet's work with its
    thread's CPU clock, follows a round's cost (a moving average) and sets the rounds so
    that the work stays ``work`` x the calibrated cost in CPU time, and the state work and
    the lock's transfer cost in proportion. What the NF computes does not depend on the
    rounds, only what it costs. Two clock reads per packet: ~2 µs.
    """

    SMOOTHING = 0.05  # weight of each new packet's measurement

    def __init__(self, nf: NetworkFunction, ns_per_round: float):
        if not ns_per_round > 0:
            raise ValueError(f"a spin round must take > 0 ns, not {ns_per_round}")
        self.nf = nf
        self.calibrated = self.ns_per_round = float(ns_per_round)
        self.work_ns = nf.work * ns_per_round
        self.state_work_ns = nf.state_work * ns_per_round

    def rounds(self, ns: float) -> int:
        """The rounds that cost ``ns`` of CPU time now."""
        return round(ns / self.ns_per_round)

    def work(self, seed: int) -> None:
        """Pay the NF's per-packet work, and follow the speed of a round."""
        rounds = self.nf.work
        if not rounds:
            return
        started = time.thread_time_ns()
        spin(rounds, seed)
        took = time.thread_time_ns() - started
        self.ns_per_round += self.SMOOTHING * (took / rounds - self.ns_per_round)
        self.nf.work = max(1, self.rounds(self.work_ns))
        self.nf.state_work = self.rounds(self.state_work_ns)

    def results(self) -> dict:
        return {"calibrated_ns_per_round": round(self.calibrated, 2),
                "ns_per_round": round(self.ns_per_round, 2), "work": self.nf.work,
                "state_work": self.nf.state_work}


#: The transition chain of an empty history (see :func:`chain_step`).
CHAIN_START = 0


def chain_step(chain: int, seq: int, key: tuple, new: tuple | None) -> int:
    """The transition chain after the state transition of packet ``seq`` took ``key`` to
    ``new``.

    A replica folds every transition it applies, in the order it applies them, into one
    integer; the oracle folds the sequential run's. Equal chains at a packet mean the same
    transitions in the same order up to it: a record skipped, applied twice, applied out of
    order or computed from a wrong value changes every chain after it, even where the final
    state cannot show it (a flow deleted by its FIN). It is Python's tuple hash: cheap, and
    the same in every process, since keys and values hold integers only (``None``, whose
    hash is its address in Python 3.11, is folded as ``()``). Not a cryptographic digest:
    two different histories could collide, with odds of about 2**-60 per comparison.
    """
    return hash((chain, seq, key, () if new is None else new))


def int_param(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in ``minimum..maximum``, else a one-line ValueError naming ``name``.

    Integral floats (``100.0`` from JSON) are accepted; bools and fractions are not, since
    the NFs compute with integers only.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {bound}, not {value}")
    return value


#: The packet fields of a TCP flow's key (heavy hitter, token bucket, conntrack).
FOUR_TUPLE_FIELDS = ("ip_src", "ip_dst", "tcp_src", "tcp_dst")


def four_tuple_json(key: tuple) -> str:
    """A flow key ``(src, dst, sport, dport)`` as ``"src:sport->dst:dport"`` (state JSON)."""
    src, dst, sport, dport = key
    return f"{int_to_ip(src)}:{sport}->{int_to_ip(dst)}:{dport}"


class NetworkFunction(ABC):
    """Base class of the NFs; subclasses set the ClassVars and the abstract methods."""

    name: ClassVar[str]
    record_format: ClassVar[struct.Struct]
    key_format: ClassVar[struct.Struct]
    value_format: ClassVar[struct.Struct]
    shard_fields: ClassVar[tuple[str, ...]]

    def __init__(self, work: int = 0, state_work: int = 0):
        self.work = int_param("work", work)
        self.state_work = int_param("state_work", state_work)

    # --- what each NF defines ----------------------------------------------------------
    @abstractmethod
    def record(self, pkt: Packet, ts: int) -> tuple:
        """The fields of ``pkt`` the transition needs, in ``record_format`` order."""

    @abstractmethod
    def key(self, fields: tuple) -> tuple:
        """The state key that the record ``fields`` touches, in ``key_format`` order."""

    @abstractmethod
    def step(self, value: tuple | None, fields: tuple) -> tuple | None:
        """The key's new value after ``fields`` (None: absent), from its ``value``."""

    @abstractmethod
    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        """``PASS`` or ``DROP`` for the packet whose transition took ``old`` to ``new``."""

    @abstractmethod
    def key_to_json(self, key: tuple) -> str:
        """``key`` as a string, unique per key."""

    @abstractmethod
    def value_to_json(self, value: tuple) -> Any:
        """``value`` as JSON data."""

    def params(self) -> dict:
        """The NF's parameters, for results' config files; ``make_nf(name, **params())``
        rebuilds the same NF."""
        return {"work": self.work, "state_work": self.state_work}

    # --- generic, built on the above -----------------------------------------------------
    def apply(self, value: tuple | None, fields: tuple) -> tuple | None:
        """One state transition, with its cost: what every store runs per record."""
        new = self.step(value, fields)
        if self.state_work:
            spin(self.state_work)
        return new

    def new_state(self) -> dict[tuple, tuple]:
        """A fresh, empty state: key tuple -> value tuple."""
        return {}

    def update(self, state: dict, fields: tuple) -> tuple[tuple, tuple | None]:
        """Apply one history record to ``state`` (the fast-forward step); ``(key, new
        value)``, from which a replica extends its transition chain (:func:`chain_step`)."""
        key = self.key(fields)
        new = self.step(state.get(key), fields)  # apply(), inlined: this is the hot path
        if self.state_work:
            spin(self.state_work)
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
        return key, new

    def process_traced(self, state: dict, pkt: Packet, ts: int
                       ) -> tuple[int, tuple, tuple | None]:
        """``process``, also returning what the transition chain needs: ``(verdict, key,
        new value)``."""
        fields = self.record(pkt, ts)
        key = self.key(fields)
        old = state.get(key)
        new = self.step(old, fields)
        if self.state_work:
            spin(self.state_work)
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
        return self.verdict(old, new, fields), key, new

    def process(self, state: dict, pkt: Packet, ts: int) -> int:
        """Run the NF on ``pkt``: update ``state`` and return ``PASS`` or ``DROP``."""
        return self.process_traced(state, pkt, ts)[0]

    def state_to_json(self, state: Mapping) -> dict:
        """``state`` (any mapping of key -> value tuples) as canonical JSON data: string
        keys, sorted by that string."""
        items = sorted(((self.key_to_json(k), v) for k, v in state.items()), key=itemgetter(0))
        return {k: self.value_to_json(v) for k, v in items}

    # --- packing, for history records and fixed-size shared tables -----------------------
    @property
    def record_size(self) -> int:
        return self.record_format.size

    def pack_record(self, pkt: Packet, ts: int) -> bytes:
        return self.record_format.pack(*self.record(pkt, ts))

    def unpack_record(self, data: bytes) -> tuple:
        return self.record_format.unpack(data)

    def pack_key(self, key: tuple) -> bytes:
        return self.key_format.pack(*key)

    def key_bytes(self, pkt: Packet) -> bytes:
        """The packed state key ``pkt`` touches (RSS++ hashes it into a bucket)."""
        return self.pack_key(self.key(self.record(pkt, 0)))

    def unpack_key(self, data: bytes) -> tuple:
        return self.key_format.unpack(data)

    def pack_value(self, value: tuple) -> bytes:
        return self.value_format.pack(*value)

    def unpack_value(self, data: bytes) -> tuple:
        return self.value_format.unpack(data)
