"""The fault experiments' figure: delivered rate over time, with the experiment's events.

:func:`plot_timeline` draws what every fault experiment shares, from its files: the three
rates of ``timeline.csv`` (offered, expected, delivered; ``experiments.analysis.faults``)
and the axes, grid, legend and file; the experiment adds its own marks (kills, rejoins,
the controller's actions) and title with a ``marks(ax, result)`` function
(``experiments.campaigns.failover``, ``experiments.campaigns.core_failover``).

Caveat: each bin is drawn at its middle, so the first and last half bin have no point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt

from experiments.analysis.faults import BIN_S, TIMELINE_CSV, read_timeline


def plot_rates(ax, rows: list[dict]) -> None:
    """The timeline's three rates on ``ax``, each bin drawn at its middle."""
    ts = [r["t_s"] + BIN_S / 2 for r in rows]
    ax.plot(ts, [r["offered_pps"] for r in rows], color="tab:gray", linestyle=":",
            label="offered (sequenced)")
    ax.plot(ts, [r["expected_pps"] for r in rows], color="black", linestyle="--",
            linewidth=1, label="expected (reference passes)")
    ax.plot(ts, [r["delivered_pps"] for r in rows], color="tab:blue", marker=".",
            markersize=3, label="delivered (sink)")


def plot_timeline(run_dir: Path, result_file: str, png: str, width: float,
                  marks: Callable[[object, dict], str]) -> Path:
    """``run_dir/png``: the rates of ``run_dir/timeline.csv``, then ``marks(ax, result)``
    (``result``: ``run_dir/result_file``), which draws the events and returns the title.
    ValueError if the timeline has no rows."""
    run_dir = Path(run_dir)
    rows = read_timeline(run_dir / TIMELINE_CSV)
    result = json.loads((run_dir / result_file).read_text())
    if not rows:
        raise ValueError(f"{run_dir / TIMELINE_CSV} has no rows")
    fig, ax = plt.subplots(figsize=(width, 4.2))
    plot_rates(ax, rows)
    title = marks(ax, result)
    ax.set(xlabel="time since the traffic started (s)",
           ylabel=f"packets/s ({BIN_S * 1000:g} ms bins)", ylim=(0, None), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    path = run_dir / png
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
