"""A point's repeated searches summed up (``experiments.analysis.repeats``), the
steady-state loss of a trial (``collect.steady_result``), the model's intervals (checked
against scipy's own regression), and what the table and plots make of repeats."""

from __future__ import annotations

import csv
import math

import pytest
from scipy import stats

from experiments.analysis.collect import MIN_STEADY_S, steady_result
from experiments.analysis.model import fit_model
from experiments.analysis.repeats import aggregate, differ, point_key, spread
from experiments.analysis.tables import table
from experiments.plots.common import load_results


def search(strategy="scr", cores=4, pps=1000.0, **extra) -> dict:
    return {"nf": "ddos", "strategy": strategy, "cores": cores, "skew": 0.0,
            "store_delay_us": 0.0, "loss_rate": 0.0, "mode": "mlffr", "top_flow_share": 0.01,
            "throughput_pps": pps, "loss": 0.0, "faithful": True, "bottleneck": "",
            "check_equivalent": True, "check_consistent": True, "search_steps": 5,
            "trial": f"trials/{pps}", **extra}


# --- aggregate -------------------------------------------------------------------------


def test_a_point_is_the_median_of_its_searches_with_their_range():
    rows = [search(pps=900.0, repeat=0), search(pps=1200.0, repeat=1),
            search(pps=1000.0, repeat=2), search(strategy="lock", pps=700.0, repeat=0)]
    scr, lock = aggregate(rows)
    assert (scr["throughput_pps"], scr["throughput_min"], scr["throughput_max"]) == (
        1000.0, 900.0, 1200.0)
    assert scr["repeats"] == 3 and scr["errors"] == 0
    assert scr["trial"] == "trials/1000.0"  # the median search's own figures
    assert lock["repeats"] == 1 and spread(lock) == ""
    assert spread(scr) == "900–1200"


def test_an_even_count_reports_the_middle_mean_and_the_lower_search():
    point, = aggregate([search(pps=p) for p in (800.0, 1000.0, 1100.0, 1300.0)])
    assert point["throughput_pps"] == 1050.0
    assert point["trial"] == "trials/1000.0"  # median_low: one real search


def test_the_checks_hold_only_if_every_search_held_them():
    point, = aggregate([search(pps=1000.0), search(pps=1100.0, check_equivalent=False),
                        search(pps=900.0, faithful=False)])
    assert point["check_equivalent"] is False
    assert point["faithful"] is False
    assert point["check_consistent"] is True


def test_failed_searches_are_counted_not_medianed():
    point, = aggregate([search(pps=0.0, error="boom"), search(pps=1000.0),
                        search(pps=1200.0)])
    assert point["errors"] == 1 and point["repeats"] == 3
    assert point["throughput_pps"] == 1100.0
    every, = aggregate([search(pps=0.0, error="first"), search(pps=0.0, error="last")])
    assert every["error"] == "last" and every["errors"] == 2


def test_csv_strings_and_numbers_name_the_same_point():
    as_csv = {k: str(v) for k, v in search().items()}
    assert point_key(as_csv) == point_key(search())
    assert point_key(search(transfer_work_us=55.0)) != point_key(search(transfer_work_us=0.0))


def test_differ_is_about_ranges_not_medians():
    a = {"throughput_min": 900, "throughput_max": 1000, "repeats": 3}
    assert differ(a, {"throughput_min": 1001, "throughput_max": 1100, "repeats": 3})
    assert not differ(a, {"throughput_min": 1000, "throughput_max": 1100, "repeats": 3})
    assert not differ(a, {"throughput_min": "", "throughput_max": "", "repeats": 3})
    # One search has no spread: nothing is beyond it.
    assert not differ(a, {"throughput_min": 2000, "throughput_max": 2000, "repeats": 1})


def test_a_search_that_found_no_rate_counts_as_zero():
    point, = aggregate([search(pps=0.0, error="no rate passed"), search(pps=1000.0),
                        search(pps=1200.0)])
    assert point["throughput_pps"] == 1000.0 and point["throughput_min"] == 0.0
    assert point["errors"] == 0


def test_the_table_shows_the_range_and_the_searches():
    text = table(aggregate([search(pps=900.0), search(pps=1100.0), search(pps=1000.0)]))
    assert "900–1100" in text and "range pps" in text
    assert "range pps" not in table(aggregate([search()]))  # one search: no range column


def test_the_table_names_each_lock_transfer_cost_and_quota_aware_locking():
    rows = [search("lock", transfer_work_us=0.0), search("lock", transfer_work_us=55.0),
            search("lock", transfer_work_us=55.0, lock_quota_aware=True)]
    text = table(aggregate(rows))
    assert "lock (0 µs)" in text and "lock (55 µs)" in text
    assert "lock (55 µs) quota-aware" in text


# --- the plots' points -----------------------------------------------------------------


def test_plots_take_the_median_and_keep_every_value(tmp_path):
    rows = [search(pps=p, repeat=i) for i, p in enumerate((900.0, 1300.0, 1000.0))]
    with open(tmp_path / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (point,), errors = load_results(tmp_path)
    assert (point.throughput, point.low, point.high) == (1000.0, 900.0, 1300.0)
    assert sorted(point.values) == [900.0, 1000.0, 1300.0] and point.runs == 3


# --- the steady-state loss -------------------------------------------------------------

MS = 1_000_000


def test_steady_loss_sees_an_overload_the_queue_absorbed():
    """1000 pps offered for 2 s, the cores done at 800 pps from the start: no packet lost
    yet (all queued), but 20 % short in the steady window."""
    sequenced = [i * MS for i in range(2000)]
    done = [int(i * 1.25 * MS) for i in range(2000)]  # the last ones after the window
    steady = steady_result(sequenced, done, warmup_s=0.5)
    assert steady["steady_loss"] == pytest.approx(0.2, abs=0.01)
    assert steady["steady_pps"] == pytest.approx(800, rel=0.02)
    assert steady["steady_s"] == pytest.approx(1.499, abs=0.002)


def test_steady_loss_is_near_zero_below_capacity():
    sequenced = [i * MS for i in range(2000)]
    done = [t + 3 * MS for t in sequenced]  # a steady 3 ms behind
    assert abs(steady_result(sequenced, done, warmup_s=0.5)["steady_loss"]) < 0.005


def test_a_window_too_short_gives_no_steady_figures():
    sequenced = [i * MS for i in range(600)]
    steady = steady_result(sequenced, sequenced, warmup_s=0.5)
    assert steady["steady_loss"] is None and steady["steady_s"] < MIN_STEADY_S
    assert steady_result([], [], warmup_s=0.5)["steady_loss"] is None


# --- the model's intervals -------------------------------------------------------------


def test_the_model_intervals_are_ordinary_least_squares():
    points = [(1, 600.0), (1, 650.0), (2, 1200.0), (2, 1100.0), (4, 2300.0), (4, 2500.0),
              (8, 4300.0)]
    fit = fit_model(points)
    reg = stats.linregress([n - 1 for n, _ in points], [n / r for n, r in points])
    q = stats.t.ppf(0.975, len(points) - 2)
    assert fit.c_us == pytest.approx(reg.slope * 1e6)
    lo, hi = fit.c_ci_us
    assert (hi - lo) / 2 == pytest.approx(q * reg.stderr * 1e6)
    lo, hi = fit.t_ci_us
    assert (hi - lo) / 2 == pytest.approx(q * reg.intercept_stderr * 1e6)
    for n in (1, 3, 8):
        low, high = fit.band(n)
        assert low < fit.predict(n) < high


def test_two_points_fit_exactly_and_have_no_interval():
    fit = fit_model([(1, 600.0), (4, 2000.0)])
    assert fit.t_ci_us is None and fit.c_ci_us is None and fit.band(2) is None


def test_a_band_whose_time_reaches_zero_is_open_above():
    fit = fit_model([(1, 100.0), (2, 50_000.0), (3, 90.0)])
    low, high = fit.band(2)
    assert math.isnan(high) or high > low
