"""Where the cores run, live: real cores on CPUs of their own (placement ``cpus``), and
the switch's AF_XDP ports with the fall-back to packet sockets.

This machine has 2 CPUs, so placement ``cpus`` runs one real core here (CPU 1, the
infrastructure on CPU 0): the test checks, while the traffic runs, that the core process
may only run on its CPU, that the shim and ovs-vswitchd's threads may not run there, and
afterwards that OVS has its old affinity back, that no cpuset is left and that the trial
was still correct. On a machine with more CPUs it runs as many cores as fit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from experiments.analysis.collect import collect
from experiments.runtime.config import TrialConfig
from experiments.runtime.ovs import ovs_pid
from experiments.runtime.placement import INFRA_CPUS, PlacementError
from experiments.runtime.testbed import Testbed
from experiments.runtime.trial import run_trial
from tests.emulation.conftest import rate_for


def _allowed(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


def _ovs_affinity() -> dict[int, set[int]]:
    pid = ovs_pid()
    return {int(t): os.sched_getaffinity(int(t)) for t in os.listdir(f"/proc/{pid}/task")}


def test_real_cores_run_alone_on_their_cpus_and_everything_is_put_back(
        tmp_path, trace_path, trace_frames, capacity):
    cores = min(2, len(os.sched_getaffinity(0)) - INFRA_CPUS)
    config = TrialConfig(nf="ddos", cores=cores, strategy="scr" if cores > 1 else "single",
                         rate_pps=rate_for(capacity, 1), placement="cpus")
    assert config.core_share is None  # a real core has no quota
    ovs_before = _ovs_affinity()
    seen = {}
    with Testbed(config, tmp_path) as bed:
        def look():  # while the traffic runs
            seen["cores"] = [_allowed(w.pid) for w in bed.workers]
            seen["shim"] = _allowed(next(p for p in bed.processes if p.name == "shim").pid)
            seen["ovs"] = _ovs_affinity()
            seen["plan"] = bed.cpus.plan
        bed.send_trace(trace_path, on_start=look)
    result = collect(config, trace_path, tmp_path, bed.window)
    plan = seen["plan"]
    assert seen["cores"] == [{cpu} for cpu in plan.cores]
    assert not seen["shim"] & set(plan.cores)
    assert all(not cpus & set(plan.cores) for cpus in seen["ovs"].values()), seen["ovs"]
    assert result["placement"] == plan.to_json()
    assert result["check_equivalent"], result["check_problems"]
    assert result["processed"] == len(trace_frames)
    # Put back: OVS's threads have their old affinity, no cpuset is left.
    after = _ovs_affinity()
    assert {t: after[t] for t in ovs_before if t in after} == \
        {t: a for t, a in ovs_before.items() if t in after}
    assert not list(Path("/sys/fs/cgroup/cpuset").glob("scr-testbed-*"))


def test_more_real_cores_than_cpus_is_refused_before_anything_starts():
    too_many = len(os.sched_getaffinity(0))
    with pytest.raises(PlacementError, match=f"needs {too_many + INFRA_CPUS} CPUs"):
        TrialConfig(nf="ddos", cores=too_many, placement="cpus")


@pytest.mark.parametrize("port_type", ["afxdp-nonpmd", "system"])
def test_the_switch_ports_are_of_the_type_asked_and_trial_json_says_so(
        tmp_path, trace_path, trace_frames, capacity, port_type):
    """AF_XDP ports carry a correct trial as packet sockets do; ``auto`` (the default)
    is AF_XDP on this kernel, and the trial says which type it used."""
    config = TrialConfig(nf="ddos", cores=2, strategy="scr", rate_pps=rate_for(capacity, 2),
                         port_type=port_type)
    result = run_trial(config, trace_path, tmp_path)
    assert result["port_type"] == port_type
    assert result["check_equivalent"], result["check_problems"]
    assert result["processed"] == len(trace_frames)
    saved = json.loads((tmp_path / "trial.json").read_text())
    assert saved["result"]["port_type"] == port_type
    assert saved["config"]["port_type"] == port_type
