"""The fault experiments' one pass rule and their timeline reading, without a network: each
part of the rule (state, strict state, rate, faithful) fails a run on its own, each
experiment's rule requires what its old verdict did, and a run's traffic read on one clock
gives the timeline, each fault's detection and recovery, and the packets lost at a dead
core."""

from __future__ import annotations

import pytest

from experiments.analysis import faults
from experiments.analysis.faults import FAITHFUL, RATE, STATE, STRICT, PassRule, Traffic
from experiments.campaigns import core_failover, failover
from nfs.base import DROP, PASS

CORE_CHECKS = list(core_failover.CHECK_PARTS)


def all_ok(names) -> dict[str, bool]:
    return dict.fromkeys(names, True)


def core_run(**failed: bool) -> dict[str, bool]:
    """A core-failover run's checks, all held but those named."""
    return {**all_ok(CORE_CHECKS), **failed}


# --- the pass rule -------------------------------------------------------------------------


def test_a_run_that_holds_everything_passes_and_reports_each_part():
    verdict = PassRule(faithful=True).verdict(core_run(), core_failover.CHECK_PARTS, True)
    assert verdict["passed"]
    assert verdict["parts"] == {STATE: True, STRICT: True, RATE: True, FAITHFUL: True}
    assert verdict["required"] == CORE_CHECKS
    assert verdict["rule"] == {"strict": True, "rate": True, "faithful": True, "limit_s": 2.0}


@pytest.mark.parametrize("name", ["every_fault_done", "consistent", "replicas_equal",
                                  "every_kill_detected", "every_rejoin_sprayed"])
def test_the_state_part_fails_a_run_under_every_rule(name):
    for rule in (core_failover.RULE, core_failover.OVERLOAD_RULE, core_failover.SOAK_RULE,
                 PassRule(strict=False, rate=False, faithful=False)):
        verdict = rule.verdict(core_run(**{name: False}), core_failover.CHECK_PARTS, True)
        assert not verdict["passed"], rule
        assert verdict["parts"][STATE] is False and name in verdict["required"]


def test_the_strict_part_fails_a_run_only_when_the_rule_is_strict():
    checks = core_run(states_equal_reference=False)
    strict = PassRule().verdict(checks, core_failover.CHECK_PARTS)
    lenient = PassRule(strict=False).verdict(checks, core_failover.CHECK_PARTS)
    assert not strict["passed"] and lenient["passed"]
    assert strict["parts"][STRICT] is False and lenient["parts"][STRICT] is False  # reported
    assert "states_equal_reference" not in lenient["required"]


@pytest.mark.parametrize(("recoveries", "back"), [
    ([0.4], True), ([0.4, 1.99], True), ([], True),
    ([None], False),  # never back
    ([2.0], False),  # the limit itself is too late
    ([0.3, 2.5], False),  # every fault counts
])
def test_the_rate_is_back_within_the_stated_time_of_every_fault(recoveries, back):
    assert PassRule().rate_back(recoveries) is back


def test_the_rate_part_fails_a_run_only_when_the_rule_requires_it():
    rule = PassRule(limit_s=1.0)
    checks = core_run(rate_recovered=rule.rate_back([1.5]))
    assert not checks["rate_recovered"]  # back, but not within the stated 1 s
    assert not rule.verdict(checks, core_failover.CHECK_PARTS)["passed"]
    soak = core_failover.SOAK_RULE.verdict(checks, core_failover.CHECK_PARTS)
    assert soak["passed"] and soak["parts"][RATE] is False  # reported, not required


@pytest.mark.parametrize("faithful", [False, None])
def test_the_faithful_part_fails_a_run_only_when_the_rule_requires_it(faithful):
    assert not PassRule(faithful=True).verdict(core_run(), core_failover.CHECK_PARTS,
                                               faithful)["passed"]
    verdict = PassRule().verdict(core_run(), core_failover.CHECK_PARTS, faithful)
    assert verdict["passed"] and verdict["parts"][FAITHFUL] is faithful


def test_a_check_with_no_part_and_a_bad_limit_are_refused():
    with pytest.raises(ValueError, match="no part of the rule: surprise"):
        PassRule().verdict({"surprise": True}, {})
    with pytest.raises(ValueError, match="must be > 0 s"):
        PassRule(limit_s=0)


def test_each_experiment_requires_what_its_own_verdict_did():
    # core_failover and bench_failover: every check; under overload, all but strict
    # equivalence and the rate.
    assert core_failover.rule_for(False).verdict(
        core_run(), core_failover.CHECK_PARTS)["required"] == CORE_CHECKS
    assert core_failover.rule_for(True).verdict(
        core_run(), core_failover.CHECK_PARTS)["required"] == [
        c for c in CORE_CHECKS if c not in ("states_equal_reference", "rate_recovered")]
    # soak: its five state checks (and consistency, which strict equivalence implies).
    soak = core_failover.SOAK_RULE.verdict(core_run(), core_failover.CHECK_PARTS)
    assert set(soak["required"]) == {"every_fault_done", "states_equal_reference",
                                     "consistent", "replicas_equal", "every_kill_detected",
                                     "every_rejoin_sprayed"}
    # failover: every check, the rate included; it has no strict one.
    checks = all_ok(failover.CHECK_PARTS)
    verdict = failover.RULE.verdict(checks, failover.CHECK_PARTS)
    assert verdict["required"] == list(checks) and verdict["parts"][STRICT] is None
    for name in checks:
        assert not failover.RULE.verdict({**checks, name: False},
                                         failover.CHECK_PARTS)["passed"], name


def test_overload_is_load_above_one_of_a_measured_capacity():
    assert not core_failover.overloaded(None, 1.5)  # --rate given: not judged an overload
    assert core_failover.overloaded(object(), 1.5)
    assert not core_failover.overloaded(object(), 1.0)


# --- the timeline --------------------------------------------------------------------------


def steady_traffic() -> Traffic:
    """1000 packets/s for 3 s from t = 1 s (start_ns = 1e9), every other one passed by the
    reference; the sink gets the passed ones 1 ms later, except in [1.5 s, 1.8 s)."""
    start = 10**9
    times = [start + i * 10**6 for i in range(3000)]
    verdicts = [PASS if i % 2 == 0 else DROP for i in range(3000)]
    arrivals = [(100 + i, t + 10**6) for i, t in enumerate(times)
                if verdicts[i] == PASS and not 1.5e9 <= t - start < 1.8e9]
    return Traffic.of_run(start, [100 + i for i in range(3000)],
                          [(None, t) for t in times], verdicts, arrivals)


def test_traffic_rows_and_recovery_on_one_clock():
    traffic = steady_traffic()
    assert traffic.to_s(traffic.start_ns + 5 * 10**8) == 0.5
    assert traffic.end_ns == traffic.start_ns + 2999 * 10**6
    rows = traffic.rows(1.5)
    by_start = {round(r["t_s"], 2): r for r in rows}
    assert by_start[0.5] == {"t_s": 0.5, "offered_pps": 1000.0, "expected_pps": 500.0,
                             "delivered_pps": 500.0}
    assert by_start[1.5]["delivered_pps"] == 0 and by_start[1.7]["delivered_pps"] == 0
    assert faults.recovery_time(rows, 1.5) == pytest.approx(0.4)  # [1.8, 1.9) is back
    assert faults.pre_fault_ratio(rows, 1.5) == pytest.approx(1.0, abs=0.01)
    assert faults.pre_fault_ratio(rows, 0.0) is None  # no whole bin before
    assert traffic.first_arrival(traffic.start_ns + 1.6e9) == traffic.start_ns + 1801 * 10**6
    assert traffic.first_arrival(traffic.start_ns + 10e9) is None


def test_kills_are_detected_and_rejoins_sprayed_by_the_first_matching_event():
    traffic = steady_traffic()
    start_s = traffic.start_ns / 1e9
    events = traffic.events([
        {"t_monotonic": start_s + 1.2, "dead_ports": [12], "joined_ports": []},
        {"t_monotonic": start_s + 1.7, "dead_ports": [11], "joined_ports": []},
        {"t_monotonic": start_s + 2.6, "dead_ports": [], "joined_ports": [11]},
        {"t_monotonic": start_s + 9.0, "dead_ports": [10], "joined_ports": []},
    ], until_ns=traffic.end_ns)
    assert [e["t_s"] for e in events] == [1.2, 1.7, 2.6]  # not after the traffic
    port_of = {0: 10, 1: 11, 2: 12}
    kill = {"core": 1, "t_ns": traffic.start_ns + 15 * 10**8}
    (report,) = faults.kill_reports(traffic, traffic.rows(1.5), events, [kill], port_of)
    assert report == {"core": 1, "kill_s": 1.5, "detected_s": 0.2, "recovery_s": 0.4}
    rejoin = {"core": 1, "t_ns": traffic.start_ns + 24 * 10**8,
              "ready_ns": traffic.start_ns + 25 * 10**8}
    (back,) = faults.rejoin_reports(traffic, events, [rejoin], port_of,
                                    {1: {"recovery": {"joined_at": 2400},
                                         "stats": {"processed": 280}}})
    assert back == {"core": 1, "start_s": 2.4, "ready_s": 0.1, "sprayed_again_s": 0.2,
                    "joined_at_seq": 2400, "processed_after": 280}
    never = {"core": 2, "t_ns": traffic.start_ns + 25 * 10**8}
    assert faults.kill_reports(traffic, traffic.rows(1.5), events, [never],
                               port_of)[0]["detected_s"] is None


def test_packets_lost_at_a_dead_core_are_those_sprayed_to_it_until_it_is_back():
    traffic = steady_traffic()
    sprayed = [seq % 4 for seq in range(3000)]
    kill = {"core": 1, "t_ns": traffic.start_ns + 10**9}
    rejoin = {"core": 1, "t_ns": traffic.start_ns + 2 * 10**9,
              "ready_ns": traffic.start_ns + 2 * 10**9 + 10**8}
    # seqs 1000..2099 were sprayed while core 1 was dead: a quarter of them to it.
    assert faults.lost_at_dead_cores(traffic, sprayed, {}, [kill], [rejoin]) == 275
    assert faults.lost_at_dead_cores(traffic, sprayed, {1001: "loss"}, [kill], [rejoin]) == 274
    # Never replaced: dead until the end.
    assert faults.lost_at_dead_cores(traffic, sprayed, {}, [kill], []) == 500
