"""The correctness oracle: the same NF run sequentially, on one core, over the same packets.

``run_reference`` replays packets in sequence order with the sequencer's timestamps and
returns every verdict and the final state. ``compare_replicas`` then checks what SCR
promises: every core's verdict for its packet and every replica's final state equal the
sequential run's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from nfs.base import NetworkFunction
from nfs.packet import Packet


@dataclass
class ReferenceRun:
    verdicts: list[int]  # by sequence number
    state: object  # canonical JSON form of the final state
    snapshots: dict[int, object]  # seq -> JSON form of the state after that packet

    def state_after(self, seq: int) -> object:
        """The state after packet ``seq`` (-1: before any); it must have been snapshot."""
        if seq == len(self.verdicts) - 1:
            return self.state
        return self.snapshots[seq]


def run_reference(
    nf: NetworkFunction,
    packets: Iterable[tuple[Packet, int]],
    snapshot_at: Iterable[int] = (),
) -> ReferenceRun:
    """Run ``nf`` over ``(packet, timestamp)`` pairs in order.

    ``snapshot_at`` names sequence numbers after which to keep a copy of the state (-1 for
    the empty state): a replica that stopped early is compared with the state at its point.
    """
    wanted = set(snapshot_at)
    state = nf.new_state()
    snapshots = {-1: nf.state_to_json(state)} if -1 in wanted else {}
    verdicts = []
    for seq, (pkt, ts) in enumerate(packets):
        verdicts.append(nf.process(state, pkt, ts))
        if seq in wanted:
            snapshots[seq] = nf.state_to_json(state)
    return ReferenceRun(verdicts, nf.state_to_json(state), snapshots)


@dataclass
class Equivalence:
    """Outcome of comparing a run with its sequential reference."""

    packets_checked: int = 0
    verdict_mismatches: list[tuple[int, int, int, int]] = field(default_factory=list)
    diverged_replicas: list[int | str] = field(default_factory=list)

    @property
    def equivalent(self) -> bool:
        return not self.verdict_mismatches and not self.diverged_replicas

    def summary(self) -> dict:
        return {
            "equivalent": self.equivalent,
            "packets_checked": self.packets_checked,
            "verdict_mismatches": len(self.verdict_mismatches),
            "first_mismatches": [
                {"seq": s, "core": c, "verdict": v, "reference": r}
                for s, c, v, r in self.verdict_mismatches[:10]
            ],
            "diverged_replicas": self.diverged_replicas,
        }


def compare_replicas(
    reference: ReferenceRun,
    verdict_log: Iterable[tuple[int, int, int]],
    replica_states: dict[int, tuple[object, int]],
) -> Equivalence:
    """Compare ``(seq, core, verdict)`` entries and replica states with ``reference``.

    ``replica_states`` maps a core to ``(state JSON, last applied seq)``: each replica is
    compared with the reference's state after that same packet.
    """
    result = Equivalence()
    for seq, core, verdict in verdict_log:
        result.packets_checked += 1
        expected = reference.verdicts[seq] if 0 <= seq < len(reference.verdicts) else None
        if verdict != expected:
            result.verdict_mismatches.append((seq, core, verdict, expected))
    def matches(state: object, applied: int) -> bool:
        try:
            return state == reference.state_after(applied)
        except KeyError:  # no snapshot there: the caller did not ask for one
            return False

    result.diverged_replicas = sorted(
        core for core, (state, applied) in replica_states.items() if not matches(state, applied)
    )
    return result


# --- every strategy, with losses accounted for -----------------------------------------


@dataclass(frozen=True)
class StateView:
    """A state a run ended with, and which sequenced packets' updates it should hold.

    ``applied`` is the last sequence number it covers; ``skip`` the sequence numbers it
    legitimately lacks (updates that never reached it: lost packets, history gaps).
    """

    name: str
    state: object  # canonical JSON form
    applied: int
    skip: frozenset[int] = frozenset()


def check_views(
    nf: NetworkFunction,
    packets: dict[int, tuple[Packet, int]],
    verdict_log: Iterable[tuple[int, int, int]],
    views: list[StateView],
    view_of_core: dict[int, int],
) -> Equivalence:
    """Check every view and every verdict against sequential processing.

    For each view, the reference is the NF run sequentially, in sequence order, over the
    sequenced ``packets`` (``seq -> (packet, timestamp)``) minus the view's ``skip`` set; the
    view must equal the reference's state after ``applied``. A verdict logged by core ``c``
    for packet ``seq`` must equal that reference's verdict for ``seq``, taking the
    reference of view ``view_of_core[c]``. With no loss every skip set is empty and this is
    the strict check: equal to one core processing every packet.
    """
    runs: dict[frozenset[int], tuple[dict[int, int], dict[int, object]]] = {}
    for skip in {v.skip for v in views}:
        wanted = {v.applied for v in views if v.skip == skip}
        state = nf.new_state()
        verdicts: dict[int, int] = {}
        snapshots = {-1: nf.state_to_json(state)} if -1 in wanted else {}
        for seq in sorted(packets):
            if seq not in skip:
                pkt, ts = packets[seq]
                verdicts[seq] = nf.process(state, pkt, ts)
            if seq in wanted:
                snapshots[seq] = nf.state_to_json(state)
        runs[skip] = (verdicts, snapshots)

    result = Equivalence()
    for seq, core, verdict in verdict_log:
        result.packets_checked += 1
        view = views[view_of_core[core]] if core in view_of_core else None
        expected = runs[view.skip][0].get(seq) if view is not None else None
        if verdict != expected:
            result.verdict_mismatches.append((seq, core, verdict, expected))
    result.diverged_replicas = [
        v.name for v in views
        if runs[v.skip][1].get(v.applied, _MISSING) != v.state
    ]
    return result


_MISSING = object()


# --- a store that records the order it applied operations in ---------------------------


def check_access_order(
    nf: NetworkFunction,
    packets: dict[int, tuple[Packet, int]],
    order: list[int],
    verdict_log: Iterable[tuple[int, int, int]],
    state: object,
    name: str = "store",
) -> Equivalence:
    """Check a store's final ``state`` and the cores' verdicts against a replay of ``order``.

    A store that serializes operations (the ``service`` strategy's state service, Redis
    with an atomic script) records the sequence numbers in the order it applied them; run
    sequentially in *that* order, the NF must end in exactly the store's state and give
    every logged verdict (``(seq, core, verdict)``) the core received. This is what a
    backup that replays the order would hold, and it fails where a racy read-modify-write
    lost an update. A sequence number that is unknown or recorded twice fails the check.
    """
    result = Equivalence()
    replay = nf.new_state()
    verdicts: dict[int, int] = {}
    for seq in order:
        if seq in verdicts or seq not in packets:
            result.diverged_replicas.append(f"{name}: bad order entry {seq}")
            continue
        pkt, ts = packets[seq]
        verdicts[seq] = nf.process(replay, pkt, ts)
    for seq, core, verdict in verdict_log:
        result.packets_checked += 1
        expected = verdicts.get(seq)
        if verdict != expected:
            result.verdict_mismatches.append((seq, core, verdict, expected))
    if nf.state_to_json(replay) != state:
        result.diverged_replicas.append(name)
    return result
