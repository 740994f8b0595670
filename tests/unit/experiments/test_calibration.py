"""Costs in CPU time: the spin round's calibration, the costs in rounds, the governor that
keeps a core's work at its CPU time while a round's speed drifts, and a capacity read from
the cores' own results."""

from __future__ import annotations

import time

import pytest

from experiments.analysis.errors import TrialError
from experiments.runtime.calibration import Costs, calibrate, spin_ns_per_round
from experiments.runtime.capacity import capacity_from_cores
from nfs import make_nf
from nfs.base import SpinGovernor, spin


def test_a_spin_round_is_measured_in_cpu_time():
    ns = spin_ns_per_round(rounds=5000, samples=3)
    assert 1 < ns < 10_000
    started = time.process_time_ns()
    spin(round(2_000_000 / ns))  # ~2 ms by that measure
    assert 0.3 < (time.process_time_ns() - started) / 2_000_000 < 3


def test_costs_turn_microseconds_into_rounds():
    costs = Costs(110.0, 1.5, 55.0, ns_per_round=100.0)
    assert (costs.work, costs.state_work, costs.transfer_work) == (1100, 15, 550)
    assert costs.nf_params() == {"work": 1100, "state_work": 15}
    assert costs.to_json()["work"] == 1100 and costs.to_json()["work_us"] == 110.0
    for bad in (dict(work_us=-1.0), dict(work_us=float("nan")), dict(ns_per_round=0.0)):
        with pytest.raises(ValueError):
            Costs(**{"work_us": 1.0, "state_work_us": 0.0, "transfer_work_us": 0.0,
                     "ns_per_round": 1.0, **bad})
    assert calibrate(10.0, 0.0, 0.0).work > 0


def test_the_governor_keeps_the_work_at_its_cpu_time(monkeypatch):
    """Told a round costs 75 ns where it costs 150 (a busy sibling hyperthread), the
    governor starts at twice the CPU time wanted and corrects it from the thread's CPU
    clock. The clock and the rounds are simulated, so the test is exact on any machine."""
    import nfs.base as base

    clock = [0]
    monkeypatch.setattr(base.time, "thread_time_ns", lambda: clock[0])
    monkeypatch.setattr(base, "spin", lambda rounds, seed=1: clock.__setitem__(
        0, clock[0] + 150 * rounds))
    nf = make_nf("ddos", work=2000, state_work=20)
    governor = SpinGovernor(nf, 75.0)
    assert governor.work_ns == 150_000  # 2000 rounds of 75 ns: the CPU time wanted
    spent = []
    for seed in range(200):
        before = clock[0]
        governor.work(seed)
        spent.append(clock[0] - before)
    assert spent[0] == 300_000  # the first packet pays twice the target...
    assert abs(spent[-1] - 150_000) <= 150  # ...the last ones the target, to a round
    assert (nf.work, nf.state_work) == (1000, 10)
    assert abs(governor.ns_per_round - 150) < 0.5
    assert governor.rounds(1500) == 10  # what the lock's transfer cost follows
    with pytest.raises(ValueError, match="> 0 ns"):
        SpinGovernor(nf, 0.0)


def test_capacity_from_the_cores_own_accounting():
    cores = [{"busy_cpu_s": 0.2, "stats": {"processed": 1000}},
             {"busy_cpu_s": 0.3, "stats": {"processed": 1000}},
             {"busy_cpu_s": 0.25, "stats": {"processed": 1000}}]
    capacity = capacity_from_cores(cores, 0.1)
    assert capacity.cpu_us_per_packet == 250.0  # the median core
    assert capacity.per_core_pps == 400.0 and capacity.pps == 1200.0
    assert capacity.rate(0.75, 2) == 600.0
    with pytest.raises(TrialError, match="no core processed"):
        capacity_from_cores([{"busy_cpu_s": 0.0, "stats": {}}], 0.1)


def test_a_governed_core_processes_and_reports_its_rounds():
    from experiments.analysis.offline import ts_of
    from experiments.workload.traffic import TraceSpec, make_trace
    from nfs.cores.replica import Replica
    from sequencer.shim import Sequencer

    seq = Sequencer(make_nf("ddos"), 1)
    core = Replica(make_nf("ddos", work=200, state_work=2), 0, 1)
    core.govern(spin_ns_per_round(rounds=2000, samples=3))
    for i, frame in enumerate(make_trace(TraceSpec(packets=50, knockers=1, seed=1))):
        core.handle(seq.sequence(frame, ts_of(i))[1])
    assert core.stats["processed"] == 50
    spin_report = core.results()["spin"]
    assert spin_report["work"] > 0 and spin_report["ns_per_round"] > 0


def test_sweeps_past_eight_cores_scale_the_share_and_the_work():
    from experiments.runtime.calibration import (
        DEFAULT_WORK_US,
        SCALE_CORES_CPU,
        SCALE_WORK_US,
        scale_for,
    )

    assert scale_for(8, 0.1) == (0.1, DEFAULT_WORK_US)
    assert scale_for(1, 0.25) == (0.25, DEFAULT_WORK_US)
    assert scale_for(16, 0.1) == (0.05, SCALE_WORK_US)
    share12, _ = scale_for(12, 0.1)
    assert share12 == 0.066 and 12 * share12 <= SCALE_CORES_CPU
