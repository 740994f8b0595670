"""SCR loss recovery and core failover on a real network.

* Loss injected at the dispatch stage (1 %, seeded): with recovery on, every replica of
  every NF ends holding every update (nothing is lost at every core at this rate), so the
  run is strictly equivalent; without it the same loss leaves gaps, each backed by the
  ground truth (consistent, not equivalent).
* The controller's spray command, by packet-out through OVS, reaches the shim.
* A core SIGKILLed mid-run: the controller resprays over the survivors, they end equal to
  the reference, the rate comes back within 2 s, and a replacement that copied a peer's
  replica ends equal to its peers. The offered rate is 0.75 of what the three survivors
  carry, measured first; the rate and time checks are judged on a faithful run only (the
  run is repeated, at most twice more, when the fidelity monitor says the machine was the
  bottleneck), the state checks always.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from controller.dispatch import EVENTS_FILE
from experiments.campaigns.core_failover import DEFAULT_LOAD, Fault, run_with_faults
from experiments.core_failover import table
from experiments.runtime.capacity import measure_capacity
from experiments.runtime.config import TrialConfig
from experiments.runtime.testbed import Testbed
from experiments.runtime.trial import run_trial
from nfs import NF_CLASSES
from tests.emulation.conftest import rate_for

FAITHFUL_ATTEMPTS = 3


@pytest.mark.parametrize("nf", sorted(NF_CLASSES))
def test_one_percent_loss_is_recovered_for_every_nf(nf, tmp_path, trace_path, capacity):
    config = TrialConfig(nf=nf, cores=4, rate_pps=rate_for(capacity, 4), loss=0.01,
                         loss_seed=3, recovery=True)
    result = run_trial(config, trace_path, tmp_path)
    assert result["injected_loss"] >= 5  # 1 % of 1200 packets, seeded
    assert result["processed"] == result["sequenced"] - result["injected_loss"]
    assert result["recovered"] >= 4 * result["injected_loss"] - 4  # each core fetched
    assert result["lost_everywhere"] == 0 and result["lost_updates"] == 0
    assert result["check_equivalent"], result["check_problems"]
    assert result["fetch_us_p50"] is not None and result["fetch_us_p99"] is not None


def test_without_recovery_the_same_loss_leaves_gaps(tmp_path, trace_path, capacity):
    config = TrialConfig(nf="ddos", cores=4, rate_pps=rate_for(capacity, 4), loss=0.01,
                         loss_seed=3)
    result = run_trial(config, trace_path, tmp_path)
    assert result["injected_loss"] >= 5 and result["recovered"] == 0
    # Each lost packet's own record and the history it carried are missing somewhere.
    assert result["lost_updates"] >= result["injected_loss"]
    # The oracle knows exactly what each replica lacks, and the ground truth backs it...
    assert result["check_consistent"], result["check_problems"]
    assert result["check_unsupported_gaps"] == 0
    # ...but the states are not those of one core processing every packet.
    assert not result["check_equivalent"]


def test_a_dead_core_is_sprayed_around(tmp_path):
    config = TrialConfig(nf="ddos", cores=3, recovery=True, watch_cores=True,
                         failover_timeout_ms=150)
    with Testbed(config, tmp_path) as bed:
        time.sleep(0.5)
        killed = time.monotonic()
        bed.kill_core(2)
        while True:
            events = json.loads((tmp_path / EVENTS_FILE).read_text())
            if events["cores"] == [0, 1]:
                break
            assert time.monotonic() - killed < 3, events
            time.sleep(0.05)
        (event,) = events["events"]
        assert event["dead_ports"] == [bed.plan.core_port(2)]
        bed.replace_core(2)
        while json.loads((tmp_path / EVENTS_FILE).read_text())["cores"] != [0, 1, 2]:
            assert time.monotonic() - killed < 10
            time.sleep(0.05)


def test_kill_one_of_four_cores_and_replace_it(tmp_path, trace_path, costs):
    config = TrialConfig(nf="tb", nf_params=costs.nf_params(), cores=4, recovery=True,
                         watch_cores=True)
    found = measure_capacity(config, trace_path, tmp_path / "capacity")
    config = replace(config, rate_pps=round(found.rate(DEFAULT_LOAD, 3), 1))
    for attempt in range(FAITHFUL_ATTEMPTS):
        run_dir = tmp_path / f"run{attempt}"
        run_dir.mkdir()
        run_dir, result = run_with_faults("core_failover", config, [Fault(1, 1.5, 3.5)],
                                          6.0, run_dir)
        diagnostics = f"{found.to_json()}\n{table(result)}\n{result['check']}"
        # The state is judged on every run, faithful or not: a core may be slow, never wrong.
        for check in ("states_equal_reference", "consistent", "replicas_equal",
                      "every_fault_done", "every_kill_detected", "every_rejoin_sprayed"):
            assert result["checks"][check], f"{check} failed\n{diagnostics}"
        if result["check"]["faithful"]:
            break
        print(f"attempt {attempt}: not faithful ({result['check']['bottleneck']}), again")
    else:
        pytest.fail(f"no faithful run in {FAITHFUL_ATTEMPTS}: the machine, not the cores, "
                    f"was the bottleneck\n{diagnostics}")
    (kill,) = result["kills"]
    assert kill["detected_s"] < 1.0, diagnostics
    assert result["checks"]["rate_recovered"] and kill["recovery_s"] < 2.0, diagnostics
    (rejoin,) = result["rejoins"]
    assert rejoin["joined_at_seq"] > 0 and rejoin["processed_after"] > 0
    assert result["dropped"]["at_dead_core"] > 0  # the detection window's packets
    assert result["passed"], diagnostics
    assert (run_dir / "core_failover.png").stat().st_size > 0
    states = {json.dumps(json.loads((run_dir / "trial" / f"core{i}.json").read_text())
                         ["state"], sort_keys=True) for i in range(4)}
    assert len(states) == 1  # the replacement equals its peers
