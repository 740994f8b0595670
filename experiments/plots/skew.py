"""Throughput vs. flow skew at the largest core count: ``skew.png``.

:func:`plot_skew` draws one panel per NF, one line per strategy at its largest core count
in the CSV (``single``: 1 core, dotted), the x ticks naming each Zipf exponent with the top
flow's share of packets. With a CSV that mixes modes, ``skew_<mode>.png`` per mode.

Caveat: a strategy measured at several core counts shows only its largest here; the
others are in the cores figures (``experiments.plots.cores``).
"""

from __future__ import annotations

from pathlib import Path

from experiments.plots.common import (
    SINGLE,
    Y_LABELS,
    Point,
    load_points,
    pick_mode,
    strategy_order,
    styles_for,
)
from experiments.plots.figures import caption_notes, draw, figure, finish, share_at, skew_name

SKEW_PLOT = "skew.png"


def draw_skew(run_dir: Path, points: list[Point], errors: int, mode: str, suffix: str) -> Path:
    """The skew figure of ``mode``'s points (its file name ends in ``suffix``); ValueError
    with fewer than 2 skews."""
    mine = [p for p in points if p.mode == mode]
    skews = sorted({p.skew for p in mine})
    if len(skews) < 2:
        raise ValueError(f"only one flow skew in {mode!r} mode: nothing to plot against skew")
    nfs = sorted({p.nf for p in mine})
    styles = styles_for(p.strategy for p in mine)
    fig, axes = figure(len(nfs))
    drawn: list[Point] = []  # the notes and legend speak of these points only
    for ax, nf in zip(axes, nfs, strict=True):
        for strategy in sorted({p.strategy for p in mine if p.nf == nf}, key=strategy_order):
            cores = max(p.cores for p in mine if p.nf == nf and p.strategy == strategy)
            series = sorted((p for p in mine if p.nf == nf and p.strategy == strategy
                             and p.cores == cores), key=lambda p: p.skew)
            color, marker = styles[strategy]
            label = f"{strategy} ({cores} core{'s' if cores > 1 else ''})"
            draw(ax, [p.skew for p in series], series, color, marker, label,
                 linestyle=":" if strategy == SINGLE else "-")
            drawn += series
        ax.set(title=nf, ylabel=Y_LABELS.get(mode, f"{mode} (pps)"), ylim=(0, None),
               xlabel="flow skew (Zipf exponent) (top flow's share of packets)")
        ax.set_xticks(skews, [skew_name(s, share_at(mine, s)) for s in skews], fontsize=8)
        ax.grid(alpha=0.3)
    notes = caption_notes(drawn, errors)
    notes.append("each strategy at its largest core count in the CSV (single: 1 core)")
    return finish(fig, axes, Path(run_dir) / SKEW_PLOT.replace(".png", f"{suffix}.png"), drawn,
                  notes, "throughput vs. flow skew")


def plot_skew(run_dir: Path, mode: str | None = None) -> Path:
    """``skew.png``: throughput vs. skew, one panel per NF, one line per strategy at its
    largest core count. ``mode`` is needed only when the CSV mixes modes."""
    points, errors = load_points(run_dir)
    return draw_skew(Path(run_dir), points, errors, pick_mode(points, mode), "")
