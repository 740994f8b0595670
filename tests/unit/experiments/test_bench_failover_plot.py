"""``experiments.plots.bench_failover``: the figure is drawn from ``runs.csv`` alone."""

from __future__ import annotations

import csv

import pytest

from experiments.plots.bench_failover import PLOT, RUNS_CSV, plot_runs

COLUMNS = ["run", "passed", "recovery_s", "fetch_us_p99", "error"]


def write_runs(folder, rows) -> None:
    with open(folder / RUNS_CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_plot_is_drawn_from_the_runs(tmp_path):
    write_runs(tmp_path, [
        {"run": 1, "passed": True, "recovery_s": 0.3, "fetch_us_p99": 238, "error": ""},
        {"run": 2, "passed": False, "recovery_s": None, "fetch_us_p99": "", "error": ""},
        {"run": 3, "passed": "", "recovery_s": "", "fetch_us_p99": "", "error": "boom"},
    ])
    path = plot_runs(tmp_path)
    assert path == tmp_path / PLOT and path.stat().st_size > 10_000


def test_plot_needs_a_finished_run(tmp_path):
    write_runs(tmp_path, [{"run": 1, "passed": "", "recovery_s": "", "fetch_us_p99": "",
                           "error": "boom"}])
    with pytest.raises(ValueError, match="has no finished run"):
        plot_runs(tmp_path)
