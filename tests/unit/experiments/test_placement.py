"""Real cores (``experiments.runtime.placement``): the CPU plan and its refusal.

``plan_cpus`` is pure given the CPUs; the cpusets themselves are made in the emulation
test ``tests/emulation/test_placement_live.py`` (root, a real trial).
"""

from __future__ import annotations

import os

import pytest

from experiments.runtime.config import TrialConfig
from experiments.runtime.placement import CpuPlan, PlacementError, plan_cpus


def test_cores_take_the_highest_cpus_and_the_infrastructure_the_rest():
    plan = plan_cpus(4, cpus=list(range(8)), infra=2)
    assert plan == CpuPlan(cores=(4, 5, 6, 7), infra=(0, 1, 2, 3))
    assert plan.to_json() == {"mode": "cpus", "core_cpus": [4, 5, 6, 7],
                              "infra_cpus": [0, 1, 2, 3]}


def test_only_the_cpus_we_may_use_are_planned():
    plan = plan_cpus(2, cpus=[3, 9, 5, 7], infra=1)
    assert plan.cores == (7, 9) and plan.infra == (3, 5)
    assert not set(plan.cores) & set(plan.infra)


@pytest.mark.parametrize(("cores", "cpus", "infra"), [(2, 2, 1), (16, 16, 1), (3, 4, 2),
                                                      (1, 1, 1)])
def test_too_few_cpus_is_refused_in_one_line(cores, cpus, infra):
    with pytest.raises(PlacementError) as info:
        plan_cpus(cores, cpus=list(range(cpus)), infra=infra)
    message = str(info.value)
    assert "\n" not in message
    assert f"needs {cores + infra} CPUs" in message and f"use {cpus}" in message


def test_a_trial_with_real_cores_has_no_quota_and_checks_this_machine():
    usable = len(os.sched_getaffinity(0))
    config = TrialConfig(cores=usable - 1, placement="cpus") if usable > 1 else None
    if config is not None:
        assert config.core_share is None
    with pytest.raises(ValueError, match=f"needs {usable + 1} CPUs"):
        TrialConfig(cores=usable, placement="cpus")
    with pytest.raises(ValueError, match="placement must be one of"):
        TrialConfig(placement="pinned")


def test_the_state_service_needs_a_cpu_of_its_own_too():
    usable = len(os.sched_getaffinity(0))
    with pytest.raises(PlacementError, match=f"needs {usable + 1} CPUs"):
        TrialConfig(cores=usable - 1, strategy="service", placement="cpus")
