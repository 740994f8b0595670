"""SCR loss recovery and core failover on a real network.

* Loss injected at the dispatch stage (1 %, seeded): with recovery on, every replica of
  every NF ends holding every update (nothing is lost at every core at this rate), so each
  equals one core processing all sequenced packets; without it the same loss leaves gaps.
* The controller's spray command, by packet-out through OVS, reaches the shim.
* A core SIGKILLed mid-run: the controller resprays over the survivors, they end equal to
  the reference, the rate comes back within 2 s, and a replacement that copied a peer's
  replica ends equal to its peers.
"""

from __future__ import annotations

import json
import time

import pytest

from controller.dispatch import EVENTS_FILE
from experiments.core_failover import Fault, run_with_faults
from experiments.trial import Testbed, TrialConfig, run_trial
from nfs import NF_CLASSES


@pytest.mark.parametrize("nf", sorted(NF_CLASSES))
def test_one_percent_loss_is_recovered_for_every_nf(nf, tmp_path, trace_path):
    config = TrialConfig(nf=nf, cores=4, rate_pps=1200, loss=0.01, loss_seed=3,
                         recovery=True)
    result = run_trial(config, trace_path, tmp_path)
    assert result["injected_loss"] >= 5  # 1 % of 1200 packets, seeded
    assert result["processed"] == result["sequenced"] - result["injected_loss"]
    assert result["recovered"] >= 4 * result["injected_loss"] - 4  # each core fetched
    assert result["lost_everywhere"] == 0 and result["lost_updates"] == 0
    assert result["check_equivalent"], result["check_first_mismatches"]
    assert result["check_complete"]


def test_without_recovery_the_same_loss_leaves_gaps(tmp_path, trace_path):
    config = TrialConfig(nf="ddos", cores=4, rate_pps=1200, loss=0.01, loss_seed=3)
    result = run_trial(config, trace_path, tmp_path)
    assert result["injected_loss"] >= 5 and result["recovered"] == 0
    # Each lost packet's own record and the history it carried are missing somewhere.
    assert result["lost_updates"] >= result["injected_loss"]
    assert result["check_equivalent"]  # the oracle knows exactly what each replica lacks
    assert not result["check_strict"]


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


def test_kill_one_of_four_cores_and_replace_it(tmp_path):
    config = TrialConfig(nf="tb", nf_params={"work": 1500}, cores=4, rate_pps=1000,
                         recovery=True, watch_cores=True)
    run_dir, result = run_with_faults("core_failover", config, [Fault(1, 1.5, 3.5)], 6.0,
                                      results_dir=tmp_path)
    assert result["passed"], result["checks"]
    (kill,) = result["kills"]
    assert kill["detected_s"] < 1.0 and kill["recovery_s"] < 2.0
    (rejoin,) = result["rejoins"]
    assert rejoin["joined_at_seq"] > 0 and rejoin["processed_after"] > 0
    assert result["dropped"]["at_dead_core"] > 0  # the detection window's packets
    assert (run_dir / "core_failover.png").stat().st_size > 0
    states = {json.dumps(json.loads((run_dir / "trial" / f"core{i}.json").read_text())
                         ["state"], sort_keys=True) for i in range(4)}
    assert len(states) == 1  # the replacement equals its peers
