"""The MLFFR search (``experiments.analysis.mlffr.find_mlffr``) against synthetic trials.

A synthetic trial has a known capacity ``C``: at an offered rate ``r`` the cores deliver
``min(r, C)`` and lose ``max(0, 1 - C/r)``. A rate then passes iff ``r <= C / (1 - threshold)``
(the true MLFFR). The search must land within ``precision`` below it, never report a rate
whose trial lost more than the threshold, say ``ceiling`` when its first probe passed,
stop at ``max_steps`` and refuse bad arguments. A noisy, non-monotone trial must still give
a rate that passed. No network: the trial is a plain function.
"""

from __future__ import annotations

import math
import random

import pytest

from experiments.analysis.mlffr import (
    DEFAULT_THRESHOLD,
    MAX_CONFIRMATIONS,
    find_mlffr,
    judged_loss,
)


def capacity_trial(capacity: float, calls: list[float] | None = None):
    """A trial whose cores process at most ``capacity`` packets per second."""

    def trial(rate: float) -> dict:
        if calls is not None:
            calls.append(rate)
        return {"loss": max(0.0, 1 - capacity / rate), "delivered_pps": min(rate, capacity)}

    return trial


def true_mlffr(capacity: float, threshold: float = DEFAULT_THRESHOLD) -> float:
    return capacity / (1 - threshold)


def assert_consistent(search, threshold: float = DEFAULT_THRESHOLD) -> None:
    """The reported rate is the highest passing probe whose confirmation did not fail,
    and ``best`` is its (first) result."""
    passing = [rate for rate, result in search.steps
               if judged_loss(result) <= threshold and rate not in search.refuted]
    if passing:
        assert search.mlffr == max(passing)
        assert search.best is next(r for rate, r in search.steps if rate == search.mlffr)
        assert search.best["loss"] <= threshold
    else:
        assert search.mlffr == 0.0
        assert search.best is None


@pytest.mark.parametrize("capacity", [150.0, 1_000.0, 7_321.0, 40_000.0])
@pytest.mark.parametrize("start_factor", [1.3, 2.0, 10.0])
@pytest.mark.parametrize("threshold", [0.0, DEFAULT_THRESHOLD, 0.2])
def test_converges_within_precision_below_capacity(capacity, start_factor, threshold):
    precision = 0.02
    search = find_mlffr(capacity_trial(capacity), capacity * start_factor,
                        threshold=threshold, precision=precision, max_steps=50)
    best = true_mlffr(capacity, threshold)
    assert not search.ceiling
    assert (1 - precision) * best <= search.mlffr <= best
    assert_consistent(search, threshold)
    # It stopped because the bracket closed, not because it ran out of steps.
    failing = [rate for rate, result in search.steps if result["loss"] > threshold]
    assert min(failing) - search.mlffr <= precision * min(failing)
    assert len(search.steps) < 50


@pytest.mark.parametrize("capacity", [500.0, 9_000.0])
def test_default_steps_get_close(capacity):
    """Six trials from twice the capacity: within 5 % of the true MLFFR."""
    calls: list[float] = []
    search = find_mlffr(capacity_trial(capacity, calls), 2 * capacity, confirm=False)
    assert len(calls) == len(search.steps) <= 6
    assert [rate for rate, _ in search.steps] == calls
    assert 0.95 * true_mlffr(capacity) <= search.mlffr <= true_mlffr(capacity)
    assert_consistent(search)


def test_second_probe_is_just_below_delivered_rate():
    calls: list[float] = []
    find_mlffr(capacity_trial(1_000.0, calls), 4_000.0, max_steps=2)
    assert calls[0] == 4_000.0
    assert 0.9 * 1_000.0 <= calls[1] < 1_000.0


def test_never_reports_a_failing_rate():
    for seed in range(20):
        rng = random.Random(seed)
        capacity = rng.uniform(50, 50_000)
        search = find_mlffr(capacity_trial(capacity), rng.uniform(1.01, 20) * capacity,
                            precision=rng.uniform(0.001, 0.5), max_steps=rng.randint(1, 12))
        assert search.mlffr <= true_mlffr(capacity)
        assert_consistent(search)


def test_ceiling_when_the_first_probe_passes():
    calls: list[float] = []
    search = find_mlffr(capacity_trial(1_000.0, calls), 800.0)
    assert search.ceiling and search.confirmed
    assert calls == [800.0, 800.0]  # the probe, and its confirmation
    assert search.mlffr == 800.0
    assert search.best == {"loss": 0.0, "delivered_pps": 800.0}


def test_no_ceiling_when_a_later_probe_passes():
    search = find_mlffr(capacity_trial(1_000.0), 3_000.0)
    assert not search.ceiling
    assert search.mlffr > 0


@pytest.mark.parametrize("max_steps", [1, 2, 3, 5])
def test_respects_max_steps(max_steps):
    calls: list[float] = []
    search = find_mlffr(capacity_trial(1_000.0, calls), 5_000.0, precision=1e-6,
                        max_steps=max_steps)
    # The bisection's steps, and one confirmation when something passed.
    assert len(calls) == len(search.steps) == max_steps + (search.mlffr > 0)
    assert_consistent(search)


def test_one_failing_step_reports_nothing():
    search = find_mlffr(capacity_trial(1_000.0), 5_000.0, max_steps=1)
    assert (search.mlffr, search.best, search.ceiling) == (0.0, None, False)


def test_never_probes_below_min_rate():
    """Cores that deliver nothing: the search gives up at ``min_rate`` with no MLFFR."""
    calls: list[float] = []

    def dead(rate: float) -> dict:
        calls.append(rate)
        return {"loss": 1.0, "delivered_pps": 0.0}

    search = find_mlffr(dead, 1_000.0, min_rate=100.0, max_steps=50)
    assert search.mlffr == 0.0
    assert search.best is None
    assert all(rate >= 100.0 for rate in calls)
    assert len(calls) < 50
    # Each probe is lower than the last: it does not retry a failed rate.
    assert calls == sorted(calls, reverse=True)
    assert len(set(calls)) == len(calls)


def test_trial_without_delivered_rate_halves():
    calls: list[float] = []

    def trial(rate: float) -> dict:
        calls.append(rate)
        return {"loss": 0.0 if rate <= 300 else 0.5}

    search = find_mlffr(trial, 1_000.0, max_steps=2)
    assert calls == [1_000.0, 500.0]
    assert search.mlffr == 0.0


def noisy_trial(capacity: float, seed: int):
    """Loss jumps around the capacity's, and now and then an outlier either way (a high
    rate passes by luck, a low one fails): not monotone in the rate."""
    rng = random.Random(seed)

    def trial(rate: float) -> dict:
        loss = max(0.0, 1 - capacity / rate) + rng.uniform(-0.06, 0.06)
        if rng.random() < 0.15:
            loss = rng.choice([0.0, 0.9])
        loss = min(max(loss, 0.0), 1.0)
        return {"loss": loss, "delivered_pps": rate * (1 - loss) * rng.uniform(0.8, 1.2)}

    return trial


def test_noisy_non_monotone_trial_still_returns_a_passing_rate():
    """Every reported rate must be one whose own trial passed."""
    found = 0
    for seed in range(30):
        search = find_mlffr(noisy_trial(2_000.0, seed), 6_000.0, max_steps=8)
        assert_consistent(search)
        assert len(search.steps) <= 8 + 2 * MAX_CONFIRMATIONS
        found += search.mlffr > 0
    assert found >= 20  # the noise does not keep it from finding something


def test_delivered_above_offered_does_not_loop_upwards():
    """A (buggy) trial claiming more delivered than offered: the next probe still goes down."""
    calls: list[float] = []

    def trial(rate: float) -> dict:
        calls.append(rate)
        return {"loss": 0.5 if rate > 100 else 0.0, "delivered_pps": 10 * rate}

    search = find_mlffr(trial, 1_000.0, max_steps=20)
    assert calls[1] < calls[0]
    assert 0 < search.mlffr <= 100
    assert_consistent(search)


@pytest.mark.parametrize(
    ("start", "kwargs"),
    [
        (5.0, {}),  # below min_rate
        (100.0, {"min_rate": 200.0}),
        (1_000.0, {"threshold": -0.1}),
        (1_000.0, {"threshold": 1.0}),
        (1_000.0, {"threshold": math.nan}),
        (1_000.0, {"precision": 0.0}),
        (1_000.0, {"precision": 1.0}),
        (1_000.0, {"precision": -0.5}),
        (1_000.0, {"max_steps": 0}),
        (1_000.0, {"max_steps": -3}),
    ],
)
def test_bad_arguments(start, kwargs):
    calls: list[float] = []
    with pytest.raises(ValueError, match=r"start rate|need 0 <= threshold"):
        find_mlffr(capacity_trial(100.0, calls), start, **kwargs)
    assert calls == []  # refused before any trial ran


def test_bad_argument_message_names_the_minimum():
    with pytest.raises(ValueError, match="start rate 5.0 is below the minimum 10.0"):
        find_mlffr(capacity_trial(100.0), 5.0)


@pytest.mark.parametrize(("start", "min_rate"), [(math.nan, 10.0), (math.inf, 10.0), (0.0, 0.0)],
                         ids=["nan", "inf", "zero"])
def test_non_finite_or_zero_start_is_refused(start, min_rate):
    """Bad input must be a ValueError up front, not a trial run at that rate."""
    calls: list[float] = []
    with pytest.raises(ValueError):
        find_mlffr(capacity_trial(100.0, calls), start, min_rate=min_rate)
    assert calls == []


def flaky_trial(capacity: float, unfaithful: dict[float, int], calls: list[float]):
    """A capacity trial whose first ``unfaithful[rate]`` trials at a rate are unfaithful
    (the machine, not the cores, was the limit), and pass whatever their loss."""

    def trial(rate: float) -> dict:
        calls.append(rate)
        key = round(rate)
        if unfaithful.get(key, 0) > 0:
            unfaithful[key] -= 1
            return {"loss": 0.0, "delivered_pps": rate, "faithful": False}
        return {"loss": max(0.0, 1 - capacity / rate), "delivered_pps": min(rate, capacity),
                "faithful": True}

    return trial


def test_an_unfaithful_trial_is_run_again_and_then_judged():
    calls: list[float] = []
    # The first probe (above capacity) is unfaithful once: its "pass" must not count.
    search = find_mlffr(flaky_trial(1_000.0, {1300: 1}, calls), 1300.0, max_steps=8)
    assert calls[:2] == [1300.0, 1300.0] and not search.ceiling
    assert search.unfaithful == []
    assert search.mlffr <= true_mlffr(1_000.0) and search.best["faithful"]


def test_a_rate_never_measured_faithfully_never_passes():
    calls: list[float] = []
    # Every trial at 1300 is unfaithful (and "passes"): the search must stay below it.
    search = find_mlffr(flaky_trial(1_000.0, {1300: 99}, calls), 1300.0, max_steps=8)
    assert search.unfaithful == [1300.0] and not search.ceiling
    assert 0 < search.mlffr < 1300.0
    assert all(result["faithful"] for rate, result in search.steps if rate == search.mlffr)


def test_a_retry_counts_as_a_step():
    calls: list[float] = []
    search = find_mlffr(flaky_trial(1_000.0, {1300: 99}, calls), 1300.0, max_steps=1)
    assert len(calls) == 1 and search.mlffr == 0.0 and search.unfaithful == [1300.0]


# --- the steady-state loss and the confirmation -----------------------------------------


def test_the_steady_state_deficit_fails_a_rate_whose_queue_hid_the_loss():
    """A trial whose queue absorbed the overload (no packet lost yet) but whose cores fell
    behind in the steady window fails: the judged loss is the larger of the two."""
    def trial(rate):
        return {"loss": 0.0, "steady_loss": max(0.0, 1 - 1_000.0 / rate),
                "delivered_pps": min(rate, 1_000.0)}

    search = find_mlffr(trial, 1_200.0, precision=0.01, max_steps=20)
    assert not search.ceiling
    assert search.mlffr <= true_mlffr(1_000.0)
    assert judged_loss({"loss": 0.01, "steady_loss": 0.2}) == 0.2
    assert judged_loss({"loss": 0.03, "steady_loss": -0.01}) == 0.03
    assert judged_loss({"loss": 0.03, "steady_loss": None}) == 0.03


def lucky_trial(capacity: float, lucky: float, calls: list[float]):
    """Passes at ``lucky`` (above capacity) the first time only: a noisy trial."""
    def trial(rate):
        calls.append(rate)
        if rate == lucky and calls.count(rate) == 1:
            return {"loss": 0.0, "delivered_pps": rate}
        return capacity_trial(capacity)(rate)

    return trial


def test_a_lucky_pass_is_refuted_by_its_confirmation():
    calls: list[float] = []
    search = find_mlffr(lucky_trial(1_000.0, 1_500.0, calls), 1_500.0, max_steps=8)
    assert search.refuted == [1_500.0]
    assert calls[:2] == [1_500.0, 1_500.0]
    assert not search.ceiling  # the first probe's pass did not stand
    assert search.confirmed
    assert 0.9 * true_mlffr(1_000.0) <= search.mlffr <= true_mlffr(1_000.0)
    assert_consistent(search)


def test_confirmations_are_bounded_and_the_last_pass_is_unconfirmed():
    """A trial that never passes twice: at most MAX_CONFIRMATIONS extra trials, and the
    rate left standing is reported unconfirmed."""
    seen: dict[float, int] = {}

    def fickle(rate):
        seen[rate] = seen.get(rate, 0) + 1
        return {"loss": 0.0 if seen[rate] == 1 and rate < 1_000 else 0.5,
                "delivered_pps": 900.0}

    search = find_mlffr(fickle, 2_000.0, max_steps=6)
    assert len(search.refuted) == MAX_CONFIRMATIONS
    assert not search.confirmed
    assert len(search.steps) <= 6 + 2 * MAX_CONFIRMATIONS
    assert_consistent(search)


def test_no_confirmation_when_asked_not_to():
    calls: list[float] = []
    search = find_mlffr(capacity_trial(1_000.0, calls), 800.0, confirm=False)
    assert calls == [800.0] and not search.confirmed


def test_a_refutation_buys_one_more_step_so_the_search_does_not_end_empty():
    calls: list[float] = []
    search = find_mlffr(lucky_trial(1_000.0, 1_500.0, calls), 1_500.0, max_steps=1)
    assert search.refuted == [1_500.0]
    assert search.mlffr > 0 and search.confirmed
    assert len(calls) == 4  # the probe, its confirmation, one step below, its confirmation
