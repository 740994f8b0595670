"""The core-failover benchmark's figure: each run's recovery time and fetch p99.

``experiments/bench_failover.py`` repeats a core failover and logs one row per run in
``runs.csv``; :func:`plot_runs` draws ``bench_failover.png`` from it, failed runs in red.

Caveat: a run whose rate never came back within the run has no recovery time; it is
marked with a cross above the 2 s limit, not drawn as a zero-high bar.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt

from experiments.analysis.faults import RECOVERY_LIMIT_S

RUNS_CSV = "runs.csv"
PLOT = "bench_failover.png"


def plot_runs(run_dir: Path) -> Path:
    """Recovery time and fetch p99 of each run (``runs.csv``), failed runs in red."""
    with open(Path(run_dir) / RUNS_CSV, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r.get("error")]
    if not rows:
        raise ValueError(f"{run_dir / RUNS_CSV} has no finished run")
    runs = [int(r["run"]) for r in rows]
    colors = ["tab:blue" if r["passed"] == "True" else "tab:red" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    times = [float(r["recovery_s"]) if r["recovery_s"] not in ("", "None") else None
             for r in rows]
    left.bar(runs, [t or 0 for t in times], color=colors)
    never = [run for run, t in zip(runs, times, strict=True) if t is None]
    if never:  # the rate never came back within the run: say so, not a zero-high bar
        left.scatter(never, [RECOVERY_LIMIT_S * 1.05] * len(never),
                     marker="x", color="tab:red", label="never back")
    left.axhline(RECOVERY_LIMIT_S, color="k", linestyle="--",
                 label="2 s limit")
    left.set(xlabel="run", ylabel="rate back to 90 % (s)", title="recovery after the kill")
    left.legend(fontsize=8)
    right.bar(runs, [float(r["fetch_us_p99"]) / 1000 if r["fetch_us_p99"] not in ("", "None")
                     else 0 for r in rows], color=colors)
    right.set(xlabel="run", ylabel="fetch p99 (ms)", title="record fetch latency")
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path = Path(run_dir) / PLOT
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
