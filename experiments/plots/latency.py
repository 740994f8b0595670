"""Outside state: throughput and latency vs. the store latency injected, ``store_delay.png``.

:func:`plot_delay` draws, for the ``service``/``remote`` strategies of an async-latency
sweep, throughput (left) and median per-packet latency (right) against the latency injected
before each round trip to the store, one line per strategy and NF; blocking runtimes
dashed.

Caveats: only rows with a ``store_delay_us`` cell and no error are drawn; the latency is
the slowest core's median (``latency_us_p50``; a missing one is not drawn). Unfaithful
points are hollow but, unlike the points figures, their segments are not dotted.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from experiments.plots.common import (
    RESULTS_CSV,
    Y_LABELS,
    flag,
    number,
    strategy_order,
    styles_for,
)
from experiments.runtime.results import read_csv

DELAY_PLOT = "store_delay.png"


def delay_rows(run_dir: Path) -> list[dict]:
    """Error-free rows of the store strategies, with numbers parsed."""
    path = Path(run_dir) / RESULTS_CSV
    out = []
    for line, row in enumerate(read_csv(path), start=2):
        if (row.get("error") or "").strip() or not (row.get("store_delay_us") or "").strip():
            continue
        where = f"{path} line {line}"
        p50 = (row.get("latency_us_p50") or "").strip()
        out.append({
            "nf": row["nf"], "strategy": row["strategy"],
            "delay_ms": number(row, "store_delay_us", where) / 1000,
            "pps": number(row, "throughput_pps" if "throughput_pps" in row
                           else "delivered_pps", where),
            "p50_ms": float(p50) / 1000 if p50 else math.nan,
            "faithful": flag(row.get("faithful") or "", "faithful", where) is not False,
        })
    return out


def plot_delay(run_dir: Path) -> Path:
    """``store_delay.png``: throughput (left) and median per-packet latency (right) vs. the
    store latency injected per round trip, one line per strategy and NF."""
    rows = delay_rows(run_dir)
    if len({r["delay_ms"] for r in rows}) < 2:
        raise ValueError(f"{Path(run_dir) / RESULTS_CSV} has fewer than 2 store delays")
    styles = styles_for(r["strategy"] for r in rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), squeeze=True)
    nfs = sorted({r["nf"] for r in rows})
    for nf in nfs:
        for strategy in sorted({r["strategy"] for r in rows if r["nf"] == nf},
                               key=strategy_order):
            series = sorted((r for r in rows if r["nf"] == nf and r["strategy"] == strategy),
                            key=lambda r: r["delay_ms"])
            color, marker = styles[strategy]
            label = strategy if len(nfs) == 1 else f"{nf} {strategy}"
            xs = [r["delay_ms"] for r in series]
            for ax, key in ((left, "pps"), (right, "p50_ms")):
                ax.plot(xs, [r[key] for r in series], color=color, marker=marker, label=label,
                        linestyle="--" if "blocking" in strategy else "-")
                hollow = [r for r in series if not r["faithful"]]
                ax.scatter([r["delay_ms"] for r in hollow], [r[key] for r in hollow], s=90,
                           facecolors="white", edgecolors=color, zorder=3)
    left.set_ylabel(Y_LABELS.get("mlffr"))
    right.set_ylabel("median latency per packet (ms)")
    for ax in (left, right):
        ax.set_xlabel("injected store latency per query (ms)")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    left.legend(fontsize=8)
    fig.suptitle("outside state: async vs. blocking runtime as the store gets farther")
    fig.text(0.01, 0.01, "hollow: not faithful (the testbed, not the core, was the limit); "
             "dashed: blocking runtime", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    path = Path(run_dir) / DELAY_PLOT
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
