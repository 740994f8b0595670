"""Throughput under injected loss: ``loss.png``, for the loss sweep.

:func:`plot_loss` draws MLFFR (left) and MLFFR relative to the same point without loss
(right, ``experiments.analysis.tables.relative_to_no_loss``, with the ``LOSS_TARGET_PERCENT``
acceptance line dashed) vs. the loss injected at the dispatch stage, one line per NF (and
per strategy and core count when the CSV has several: markers and dashes tell them apart).

Caveats: a CSV without a ``loss_rate`` column has no loss figure; a point without an
error-free loss-free row has no relative value (a gap on the right). Unfaithful points are
hollow, points that failed a check (strict equivalence or consistency in some trial) are
crossed in red.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from experiments.analysis.tables import relative_to_no_loss
from experiments.plots.common import (
    RESULTS_CSV,
    Y_LABELS,
    flag,
    number,
    strategy_order,
)
from experiments.runtime.results import read_csv

LOSS_PLOT = "loss.png"
#: The loss sweep's acceptance line: MLFFR with recovery at least this % of no loss's.
LOSS_TARGET_PERCENT = 80.0
MARKERS = "osv^D<>Ph*"  # one per strategy
DASHES = ["-", "--", "-.", ":"]  # one per core count


def loss_rows(run_dir: Path) -> list[dict]:
    """Error-free rows with their injected loss (%), throughput, flags and the throughput
    relative to no loss; empty for a CSV without ``loss_rate``."""
    path = Path(run_dir) / RESULTS_CSV
    rows, out = [], []
    for line, row in enumerate(read_csv(path), start=2):  # line 1 is the header
        if "loss_rate" not in row:
            return []
        if (row.get("error") or "").strip():
            continue
        rows.append(row)
        where = f"{path} line {line}"
        if "throughput_pps" not in row:
            row["throughput_pps"] = row.get("delivered_pps", "")
        for column in ("cores", "skew", "throughput_pps"):
            number(row, column, where)  # the error names the bad cell
        checks = [flag(row.get(c) or "", c, where) for c in ("check_equivalent",
                                                             "check_consistent")]
        out.append({
            "nf": row["nf"].strip(), "strategy": row["strategy"].strip(),
            "cores": number(row, "cores", where, int),
            "loss_pct": 100 * number(row, "loss_rate", where)
            if (row.get("loss_rate") or "").strip() else 0.0,
            "pps": number(row, "throughput_pps", where),
            "faithful": flag(row.get("faithful") or "", "faithful", where) is not False,
            "failed": False in checks,
            "mode": (row.get("mode") or "").strip() or "fixed",
        })
    for row, relative in zip(out, relative_to_no_loss(rows), strict=True):
        row["relative"] = math.nan if relative is None else relative
    return out


def _draw_series(ax, xs: list[float], ys: list[float], series: list[dict], color,
                 marker: str, label: str, linestyle: str) -> None:
    """One line; unfaithful points hollow, failed ones crossed in red."""
    ax.plot(xs, ys, color=color, marker=marker, label=label, markersize=6,
            linestyle=linestyle)
    hollow = [(x, y) for x, y, r in zip(xs, ys, series, strict=True) if not r["faithful"]]
    if hollow:
        ax.plot(*zip(*hollow, strict=True), linestyle="none", marker=marker,
                markersize=6, markerfacecolor="white", markeredgecolor=color, zorder=3)
    crossed = [(x, y) for x, y, r in zip(xs, ys, series, strict=True) if r["failed"]]
    if crossed:
        ax.scatter(*zip(*crossed, strict=True), marker="x", s=70, color="red", zorder=4)


def _draw_lines(left, right, rows: list[dict]) -> None:
    """Every (NF, strategy, cores) series, on both axes: color per NF, marker per
    strategy, dashes per core count."""
    strategies = sorted({r["strategy"] for r in rows}, key=strategy_order)
    cores = sorted({r["cores"] for r in rows})
    colors = plt.get_cmap("tab10").colors
    nf_color = {nf: colors[i % len(colors)]
                for i, nf in enumerate(sorted({r["nf"] for r in rows}))}
    for nf, strategy, count in sorted({(r["nf"], r["strategy"], r["cores"]) for r in rows}):
        series = sorted((r for r in rows if (r["nf"], r["strategy"], r["cores"])
                         == (nf, strategy, count)), key=lambda r: r["loss_pct"])
        label = " ".join([nf, *([strategy] if len(strategies) > 1 else []),
                          *([f"{count} cores"] if len(cores) > 1 else [])])
        xs = [r["loss_pct"] for r in series]
        for ax, key in ((left, "pps"), (right, "relative")):
            _draw_series(ax, xs, [r[key] for r in series], series, nf_color[nf],
                         MARKERS[strategies.index(strategy) % len(MARKERS)], label,
                         DASHES[cores.index(count) % len(DASHES)])


def _label_axes(left, right, rows: list[dict]) -> None:
    """Axis labels, ticks at the injected rates, limits with room for the legends."""
    losses = sorted({r["loss_pct"] for r in rows})
    modes = sorted({r["mode"] for r in rows})
    left.set_ylabel(Y_LABELS.get(modes[0], "throughput (pps)") if len(modes) == 1
                    else "throughput (pps)")
    right.set_ylabel("throughput relative to no loss (%)")
    for ax in (left, right):
        ax.set_xlabel("injected loss (% of packets)")
        ax.set_xticks(losses, [f"{x:g}" for x in losses])
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    left.set_ylim(top=1.12 * max([1.0, *(r["pps"] for r in rows)]))  # room for the legend
    right.set_ylim(top=max([110.0, *(r["relative"] + 5 for r in rows
                                     if math.isfinite(r["relative"]))]))
    left.legend(fontsize=8)
    right.legend(handles=right.get_legend_handles_labels()[0][-1:], fontsize=8,
                 loc="lower left")


def plot_loss(run_dir: Path) -> Path:
    """``loss.png``: MLFFR (left) and MLFFR relative to no loss (right, the 80 % target
    dashed) vs. the injected loss, one line per NF (and strategy, core count if several)."""
    rows = loss_rows(run_dir)
    if len({r["loss_pct"] for r in rows}) < 2:
        raise ValueError(f"{Path(run_dir) / RESULTS_CSV} has fewer than 2 injected loss rates")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4), squeeze=True)
    _draw_lines(left, right, rows)
    right.axhline(LOSS_TARGET_PERCENT, color="grey", linestyle="--", linewidth=1,
                  label=f"target: {LOSS_TARGET_PERCENT:g} % of no loss")
    _label_axes(left, right, rows)
    fig.suptitle("throughput under loss injected at the dispatch stage")
    notes = ["hollow: not faithful (the testbed, not the cores, was the limit)"]
    if any(r["failed"] for r in rows):
        notes.append("red x: in some trial of the point, a state or verdict differs from "
                     "the reference, or a replica lacks an update some core had")
    fig.text(0.01, 0.01, "; ".join(notes), fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    path = Path(run_dir) / LOSS_PLOT
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
