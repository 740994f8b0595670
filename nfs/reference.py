"""The correctness oracle: the same NF run sequentially, on one core, over the same packets.

``run_reference`` replays packets in sequence order with the sequencer's timestamps and
returns every verdict and the final state. ``compare_replicas`` then checks what SCR
promises: every core's verdict for its packet and every replica's final state equal the
sequential run's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from nfs.base import CHAIN_START, NetworkFunction, chain_step
from sequencer.wire.packet import Packet


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
    #: (seq, core, chain, expected): a replica's transition chain at its own packet differs
    chain_mismatches: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def equivalent(self) -> bool:
        return not (self.verdict_mismatches or self.diverged_replicas
                    or self.chain_mismatches)

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
            "chain_mismatches": len(self.chain_mismatches),
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
    legitimately lacks (updates that never reached it: lost packets, history gaps);
    ``chain`` its transition chain at ``applied`` (SCR replicas; None: not checked).
    """

    name: str
    state: object  # canonical JSON form
    applied: int
    skip: frozenset[int] = frozenset()
    chain: int | None = None


@dataclass
class _Run:
    """One sequential run, skipping some sequence numbers: what the checks compare with."""

    verdicts: dict[int, int]
    chains: dict[int, int]  # seq -> transition chain after it (skipped ones included)
    snapshots: dict[int, object]


def _sequential(nf: NetworkFunction, packets: dict[int, tuple[Packet, int]],
                skip: frozenset[int], wanted: set[int]) -> _Run:
    state = nf.new_state()
    run = _Run({}, {}, {-1: nf.state_to_json(state)} if -1 in wanted else {})
    chain = CHAIN_START
    run.chains[-1] = chain
    for seq in sorted(packets):
        if seq not in skip:
            pkt, ts = packets[seq]
            verdict, key, new = nf.process_traced(state, pkt, ts)
            run.verdicts[seq] = verdict
            chain = chain_step(chain, seq, key, new)
        run.chains[seq] = chain
        if seq in wanted:
            run.snapshots[seq] = nf.state_to_json(state)
    return run


def check_views(
    nf: NetworkFunction,
    packets: dict[int, tuple[Packet, int]],
    verdict_log: Iterable[tuple[int, int, int]],
    views: list[StateView],
    view_of_core: dict[int, int],
    chain_log: Iterable[tuple[int, int, int]] = (),
) -> Equivalence:
    """Check every view, every verdict and every logged chain against sequential processing.

    For each view, the reference is the NF run sequentially, in sequence order, over the
    sequenced ``packets`` (``seq -> (packet, timestamp)``) minus the view's ``skip`` set; the
    view must equal the reference's state after ``applied`` (and its chain the reference's
    chain there, when it has one). A verdict logged by core ``c`` for packet ``seq`` must
    equal that reference's verdict for ``seq``, taking the reference of view
    ``view_of_core[c]``; so must a transition chain ``(seq, core, chain)`` a replica logged at
    its own packet. With every skip set empty this is the strict check: equal to one core
    processing every packet.
    """
    runs = {skip: _sequential(nf, packets, skip, {v.applied for v in views if v.skip == skip})
            for skip in {v.skip for v in views}}

    def reference(core: int) -> _Run | None:
        return runs[views[view_of_core[core]].skip] if core in view_of_core else None

    result = Equivalence()
    for seq, core, verdict in verdict_log:
        result.packets_checked += 1
        run = reference(core)
        expected = run.verdicts.get(seq) if run is not None else None
        if verdict != expected:
            result.verdict_mismatches.append((seq, core, verdict, expected))
    for seq, core, chain in chain_log:
        run = reference(core)
        expected = run.chains.get(seq) if run is not None else None
        if chain != expected:
            result.chain_mismatches.append((seq, core, chain, expected))
    result.diverged_replicas = [
        v.name for v in views
        if runs[v.skip].snapshots.get(v.applied, _MISSING) != v.state
        or (v.chain is not None and runs[v.skip].chains.get(v.applied) != v.chain)
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
