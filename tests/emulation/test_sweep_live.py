"""A sweep end to end on real networks, as a user runs it: repeated searches of one point
(its median and range in the table, one row per search in results.csv), a latency trial at
a stated fraction of the point's median MLFFR (latency.csv), the sweep's table and plots
drawn from those CSVs, and the switch ports' type in trials.csv and config.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from experiments.runtime.results import REPO_ROOT, read_csv
from tests.emulation.conftest import leftovers


def test_repeated_searches_and_latency_at_a_stated_load(tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "experiments" / "core_sweep.py"), "--strategies",
         "scr", "--cores", "1", "2", "--skews", "0", "--repeats", "2", "--latency-loads",
         "0.5", "--duration", "1.5", "--max-steps", "4", "--precision", "0.3",
         "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    (folder,) = Path(tmp_path, "core_sweep").glob("*")
    searches = read_csv(folder / "results.csv")
    assert sorted((r["cores"], r["repeat"]) for r in searches) == [
        ("1", "0"), ("1", "1"), ("2", "0"), ("2", "1")]
    assert all(r["confirmed"] in ("True", "False") and r["steady_loss"] for r in searches)
    # The printed table has one line per point: its median and its searches' range.
    lines = [line for line in run.stdout.splitlines() if line.startswith("| ddos")]
    assert len(lines) == 2 and all("–" in line for line in lines), run.stdout
    latency = read_csv(folder / "latency.csv")
    assert [(r["cores"], r["load"]) for r in latency] == [("1", "0.5"), ("2", "0.5")]
    for row in latency:
        median = sorted(float(r["throughput_pps"]) for r in searches
                        if r["cores"] == row["cores"])
        assert abs(float(row["mlffr_pps"]) - sum(median) / 2) < 1  # two searches' median
        assert float(row["e2e_us_p50"]) > 0 and row["check_equivalent"] == "True"
    assert (folder / "cores_skew0.png").is_file() and (folder / "model_fit.csv").is_file()
    # Which switch ports the trials ran on: per trial, and counted in config.json.
    trials = read_csv(folder / "trials.csv")
    used = {r["port_type"] for r in trials}
    assert used <= {"afxdp-nonpmd", "system"} and used, used
    config = json.loads((folder / "config.json").read_text())
    assert config["port_types"] == {t: sum(r["port_type"] == t for r in trials) for t in used}
    assert leftovers() == {}
