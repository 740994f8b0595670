"""Lab 4's definition and checks: an SCR replica's fast-forward (``fast_forward.py``).

Checks, in order: the two helper functions on hand-picked cases (offline); the student's
core on the real sequencer and the oracle in one process, at 1, 2 and 4 cores, where every
record each core applies is compared with what it must apply (offline, so the message can
say which record of which core went wrong); then live, on the real network at 1, 2 and 4
cores, with the strict equivalence check. The trace is port knocking's: a source's three
knocks must be seen in order, and they land on different cores.
"""

from __future__ import annotations

from labs.kit import Check, Grade, Lab, RunSpec
from labs.kit.checks import (
    KNOCK_TRACE,
    check_live_equivalent,
    check_replica_records,
    knock_trace,
)
from sequencer.wire.header import PAYLOAD_OFFSET

STRATEGY_NAME = "lab4-scr"


def check_records_to_apply(g: Grade) -> None:
    cases = [  # (applied, first, seq) -> what must be applied
        ((-1, 0, 0), []), ((-1, 0, 3), [0, 1, 2]), ((9, 7, 10), []), ((5, 7, 10), [7, 8, 9]),
        ((7, 5, 10), [8, 9]), ((2, 3, 6), [3, 4, 5]), ((12, 5, 10), []),
    ]
    for (applied, first, seq), want in cases:
        got = list(g.module.records_to_apply(applied, first, seq))
        if got != want:
            why = ("records up to `applied` are in the state already; applying one again "
                   "counts it twice" if set(got) & set(range(applied + 1))
                   else "every record after `applied` must be applied, oldest first")
            g.fail(f"records_to_apply(applied={applied}, first={first}, seq={seq}) gave "
                   f"{got}, not {want}: {why}")


def check_record_offset(g: Grade) -> None:
    for first, record_seq, size in ((0, 0, 4), (7, 7, 6), (7, 9, 6), (40, 43, 13)):
        want = PAYLOAD_OFFSET + (record_seq - first) * size
        got = g.module.record_offset(first, record_seq, size)
        if got != want:
            g.fail(f"record_offset(first={first}, record_seq={record_seq}, record_size="
                   f"{size}) gave {got}, not {want}: the records start right after the SCR "
                   f"header (PAYLOAD_OFFSET = {PAYLOAD_OFFSET}), one every record_size bytes")


def check_offline(g: Grade) -> None:
    for cores in (1, 2, 4):
        check_replica_records(g, STRATEGY_NAME, knock_trace(), cores)
        g.info(f"{cores} core(s): every replica applied every record once, oldest first")


def check_live(g: Grade) -> None:
    check_live_equivalent(g, STRATEGY_NAME, "knock", (1, 2, 4))


LAB = Lab(
    number=4, title="Fast-forward: complete an SCR replica", files=("fast_forward.py",),
    checks=(
        Check("records_to_apply picks the records after `applied` (TODO 1)",
              check_records_to_apply),
        Check("record_offset finds each record in the frame (TODO 2)", check_record_offset),
        Check("offline: each replica applies every record once, oldest first (TODOs 3-4)",
              check_offline),
        Check("live at 1, 2 and 4 cores: every replica equals one core in sequence",
              check_live, live=True),
    ),
    run=RunSpec(nf="knock", strategy=STRATEGY_NAME, cores=4, packets=KNOCK_TRACE.packets,
                rate_pps=300, calibrated=False, flows=KNOCK_TRACE.flows,
                trace={"knockers": KNOCK_TRACE.knockers, "attackers": 0,
                       "service_packets": KNOCK_TRACE.service_packets,
                       "seed": KNOCK_TRACE.seed}),
)
