"""Plots and the SCR model fit, drawn from a synthetic results.csv: the fit recovers the
model's t and c, unfaithful and errored rows stay out of it, the figures and model_fit.csv
are written, and the command line reports a missing folder in one line. A loss sweep's CSV
gets loss.png, with each point's throughput relative to the same point without loss."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.analysis.model import fit_model
from experiments.analysis.tables import relative_to_no_loss
from experiments.plots.common import load_results
from experiments.plots.loss import plot_loss
from experiments.plots.plotting import plot_run
from experiments.runtime.results import REPO_ROOT, read_csv

COLUMNS = ["nf", "strategy", "cores", "skew", "top_flow_share", "mode", "throughput_pps",
           "offered_pps", "delivered_pps", "loss", "faithful", "bottleneck",
           "check_equivalent", "search_steps", "seconds", "error"]
# Per NF and skew, the SCR model's t and c in seconds per packet.
MODEL = {("ddos", 0.0): (20e-6, 1e-6), ("ddos", 1.5): (20e-6, 1.5e-6),
         ("knock", 0.0): (40e-6, 2e-6), ("knock", 1.5): (40e-6, 3e-6)}
SHARES = {0.0: 0.005, 1.5: 0.4}


def model(n: int, t: float, c: float) -> float:
    return n / (t + (n - 1) * c)


def row(nf, strategy, cores, skew, pps, **extra) -> dict:
    return {"nf": nf, "strategy": strategy, "cores": cores, "skew": skew,
            "top_flow_share": SHARES[skew], "mode": "mlffr", "throughput_pps": pps,
            "offered_pps": pps, "delivered_pps": pps, "loss": 0, "faithful": "True",
            "bottleneck": "", "check_equivalent": "True", "search_steps": 7, "seconds": 30,
            "error": "", **extra}


def write_results(run_dir: Path, rows: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return run_dir


def sweep_rows() -> list[dict]:
    """2 NFs x (scr, lock, shard at 1, 2, 4 cores + single) x 2 skews, with one unfaithful
    SCR point, one non-equivalent shard point and two error rows."""
    rows = []
    for (nf, skew), (t, c) in MODEL.items():
        rows.append(row(nf, "single", 1, skew, round(1 / t)))
        for cores in (1, 2, 4):
            scr = model(cores, t, c)
            extra = {}
            if (nf, skew, cores) == ("knock", 1.5, 4):
                # The generator could not offer more: a number far off the model that the
                # fit must not use.
                scr, extra = 1000.0, {"faithful": "False", "bottleneck": "generator;ovs"}
            rows.append(row(nf, "scr", cores, skew, scr, **extra))
            rows.append(row(nf, "lock", cores, skew, 0.8 / t))
            shard = {"check_equivalent": "False"} if (nf, skew, cores) == ("ddos", 1.5, 2) else {}
            rows.append(row(nf, "shard", cores, skew, cores * 0.9 / t / (1 + skew), **shard))
    # Error rows carry numbers that would break the exact fit if they were used.
    rows.append(row("ddos", "scr", 2, 0.0, 1.0, error="trial failed: generator died"))
    rows.append(row("knock", "scr", 8, 0.0, "", error="timeout"))
    return rows


def test_fit_model_recovers_t_and_c_exactly():
    t, c = 25e-6, 1.2e-6
    fit = fit_model([(n, model(n, t, c)) for n in (1, 2, 4, 8)])
    assert fit.t == pytest.approx(t, rel=1e-9)
    assert fit.c == pytest.approx(c, rel=1e-9)
    assert fit.max_rel_error < 1e-9
    assert fit.predict(16) == pytest.approx(model(16, t, c), rel=1e-9)
    assert (fit.t_us, fit.c_us) == (pytest.approx(25.0), pytest.approx(1.2))


def test_fit_model_is_exact_for_two_points():
    fit = fit_model([(2, 50_000.0), (4, 80_000.0)])
    assert fit.predict(2) == pytest.approx(50_000.0)
    assert fit.predict(4) == pytest.approx(80_000.0)
    assert fit.max_rel_error == pytest.approx(0.0, abs=1e-12)


def test_fit_model_reports_its_error_on_noisy_points():
    t, c = 25e-6, 1.2e-6
    noise = {1: 1.04, 2: 0.97, 4: 1.02, 8: 0.96}
    points = [(n, model(n, t, c) * k) for n, k in noise.items()]
    fit = fit_model(points)
    worst = max(abs(n / (fit.t + (n - 1) * fit.c) - pps) / pps for n, pps in points)
    assert fit.max_rel_error == pytest.approx(worst)
    assert 0.005 < fit.max_rel_error < 0.1
    assert fit.t == pytest.approx(t, rel=0.1)
    assert fit.c == pytest.approx(c, rel=0.5)


@pytest.mark.parametrize(("points", "message"), [
    ([(4, 1000.0)], "at least 2 different core counts"),
    ([(2, 1000.0), (2, 1100.0)], "at least 2 different core counts"),
    ([], "at least 2 different core counts"),
    ([(1, 1000.0), (2, 0.0)], "must be a finite number > 0"),
    ([(0, 1000.0), (2, 1500.0)], "cores must be an integer >= 1"),
])
def test_fit_model_rejects_points_that_cannot_fit(points, message):
    with pytest.raises(ValueError, match=message):
        fit_model(points)


def test_load_results_skips_error_rows_and_keeps_flags(tmp_path):
    points, errors = load_results(write_results(tmp_path, sweep_rows()))
    assert errors == 2
    assert len(points) == 4 * (1 + 3 * 3)
    unfaithful = [p for p in points if not p.faithful]
    assert [(p.nf, p.strategy, p.skew, p.cores, p.bottleneck) for p in unfaithful] == [
        ("knock", "scr", 1.5, 4, "generator;ovs")]
    crossed = [(p.nf, p.strategy, p.skew, p.cores) for p in points if p.equivalent == "False"]
    assert crossed == [("ddos", "shard", 1.5, 2)]


def test_plot_run_draws_every_figure_and_the_model_fit(tmp_path):
    run_dir = write_results(tmp_path / "run", sweep_rows())
    paths = plot_run(run_dir)
    names = sorted(p.name for p in paths)
    assert names == ["cores_skew0.png", "cores_skew1.5.png", "skew.png"]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    fits = {(r["nf"], r["skew"]): r for r in read_csv(run_dir / "model_fit.csv")}
    assert set(fits) == {("ddos", "0"), ("ddos", "1.5"), ("knock", "0"), ("knock", "1.5")}
    for (nf, skew), (t, c) in MODEL.items():
        fit = fits[(nf, f"{skew:g}")]
        # Exact although an error row and the unfaithful point were in the CSV.
        assert float(fit["t_us"]) == pytest.approx(t * 1e6, rel=1e-5)
        assert float(fit["c_us"]) == pytest.approx(c * 1e6, rel=1e-5)
        assert float(fit["max_rel_error"]) < 1e-5
        assert fit["points"] == ("2" if (nf, skew) == ("knock", 1.5) else "3")


def test_plot_run_with_one_skew_draws_only_the_cores_plot(tmp_path):
    rows = [r for r in sweep_rows() if r["skew"] == 0.0]
    assert [p.name for p in plot_run(write_results(tmp_path, rows))] == ["cores_skew0.png"]


def test_plot_run_with_nothing_to_plot_says_why(tmp_path):
    rows = [r for r in sweep_rows() if r["skew"] == 0.0 and r["cores"] == 4]
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_run(write_results(tmp_path, rows))


def test_plot_run_names_the_line_of_a_bad_value(tmp_path):
    rows = sweep_rows()
    rows[3]["throughput_pps"] = "fast"
    with pytest.raises(ValueError, match=r"results.csv line 5: throughput_pps must be a number"):
        plot_run(write_results(tmp_path, rows))


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)


def test_cli_reports_a_missing_folder_in_one_line(tmp_path):
    missing = tmp_path / "nope"
    for argv, prog in ((["-m", "experiments.plot"], "plot"),
                       ([str(REPO_ROOT / "experiments" / "plot.py")], "plot"),
                       (["-m", "experiments.plots.plotting"], "plotting")):
        result = run(*argv, str(missing))
        assert result.returncode == 2
        assert result.stderr.strip() == f"{prog}: no such folder: {missing}"


def test_cli_reports_a_folder_without_csv_in_one_line(tmp_path):
    result = run("-m", "experiments.plot", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"plot: no results.csv in {tmp_path}"


def test_cli_redraws_a_folder_and_prints_the_fit(tmp_path):
    run_dir = write_results(tmp_path / "run", sweep_rows())
    result = run("-m", "experiments.plot", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert str(run_dir / "skew.png") in result.stdout.splitlines()
    table = [[cell.strip() for cell in line.strip("|").split("|")]
             for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0] == ["nf", "skew", "t (µs)", "t 95 %", "c (µs)", "c 95 %", "max error %",
                        "searches"]
    # Two exact points: the model fits them exactly, with no interval to give.
    assert ["knock", "1.5", "40.000", "-", "3.000", "-", "0.0", "2"] in table


# --------------------------------------------------------------------------- loss plot

LOSS_COLUMNS = [*COLUMNS, "loss_rate", "check_complete"]


def loss_rows() -> list[dict]:
    """A loss sweep: 2 NFs x 3 injected loss rates, SCR on 4 cores; knock's 1.5 % point
    unfaithful, ddos's 1.5 % point incomplete, plus an error row that must not count."""
    rates = {"ddos": (2000.0, 1800.0, 1500.0), "knock": (1000.0, 950.0, 700.0)}
    rows = []
    for nf, pps in rates.items():
        for loss, rate in zip((0.0, 0.01, 0.015), pps, strict=True):
            extra = {"loss_rate": loss, "check_complete": "True"}
            if (nf, loss) == ("knock", 0.015):
                extra |= {"faithful": "False", "bottleneck": "ovs"}
            if (nf, loss) == ("ddos", 0.015):
                extra["check_complete"] = "False"
            rows.append(row(nf, "scr", 4, 1.5, rate, **extra))
    rows.append(row("ddos", "scr", 4, 1.5, 9999.0, loss_rate=0.0, error="timeout"))
    return rows


def write_loss_results(run_dir: Path, rows: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, LOSS_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return run_dir


def test_relative_to_no_loss_divides_by_the_same_points_loss_free_rate():
    rows = loss_rows()
    # CSV strings and numbers alike.
    as_text = [{k: str(v) for k, v in r.items()} for r in rows]
    for data in (rows, as_text):
        assert relative_to_no_loss(data) == [
            pytest.approx(100.0), pytest.approx(90.0), pytest.approx(75.0),
            pytest.approx(100.0), pytest.approx(95.0), pytest.approx(70.0),
            None]  # the error row: no ratio, and not a baseline (9999 would change ddos's)


def test_relative_to_no_loss_keeps_points_apart_and_averages_repeats():
    rows = [row("ddos", "scr", 4, 0.0, 1000.0, loss_rate=0),
            row("ddos", "scr", 4, 0.0, 3000.0, loss_rate=0),  # a repeat: baseline 2000
            row("ddos", "scr", 4, 0.0, 1000.0, loss_rate=0.01),
            row("ddos", "scr", 2, 0.0, 600.0, loss_rate=0.01),  # no loss-free 2-core row
            row("ddos", "lock", 4, 0.0, 500.0, loss_rate=0.01),  # nor a lock one
            row("knock", "scr", 4, 0.0, 0.0, loss_rate=0),  # a zero baseline
            row("knock", "scr", 4, 0.0, 10.0, loss_rate=0.01)]
    assert relative_to_no_loss(rows) == [50.0, 150.0, 50.0, None, None, None, None]


def test_relative_to_no_loss_rejects_a_bad_cell():
    with pytest.raises(ValueError, match="row 1: needs"):
        relative_to_no_loss([row("ddos", "scr", 4, 0.0, 10.0, loss_rate=0),
                             row("ddos", "scr", 4, 0.0, "fast", loss_rate=0.01)])


def test_plot_run_draws_the_loss_plot_for_a_loss_sweep(tmp_path):
    run_dir = write_loss_results(tmp_path / "run", loss_rows())
    paths = plot_run(run_dir)
    assert [p.name for p in paths] == ["loss.png"]
    data = paths[0].read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    # The loss points are their own series, never averaged with the loss-free point.
    points, errors = load_results(run_dir)
    assert errors == 1
    assert sorted(p.strategy for p in points if p.nf == "ddos") == [
        "scr", "scr loss 1%", "scr loss 1.5%"]


def test_plot_loss_needs_two_loss_rates(tmp_path):
    rows = [r for r in loss_rows() if r["loss_rate"] == 0.01]
    run_dir = write_loss_results(tmp_path, rows)
    with pytest.raises(ValueError, match="fewer than 2 injected loss rates"):
        plot_loss(run_dir)
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_run(run_dir)


def test_a_sweep_without_loss_gets_no_loss_plot(tmp_path):
    rows = [dict(r, loss_rate=0.0, check_complete="True") for r in sweep_rows()]
    names = sorted(p.name for p in plot_run(write_loss_results(tmp_path, rows)))
    assert names == ["cores_skew0.png", "cores_skew1.5.png", "skew.png"]
