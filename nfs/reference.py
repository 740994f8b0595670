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
    diverged_replicas: list[int] = field(default_factory=list)

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
