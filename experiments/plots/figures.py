"""Drawing helpers every points figure shares: panels, series, markers, legend and caption.

A series is a line through :class:`~experiments.plots.common.Point` objects with filled
markers (:func:`draw`), each repeated point with an error bar from the smallest to the
largest of its repeats; unfaithful points are drawn hollow and reached by faint dotted
segments, so the line does not vouch for them, and points whose sequential-equivalence
check failed get a red x (:func:`mark`). :func:`finish` puts one legend for the whole
figure below the panels and a caption (:func:`caption_notes`: what is marked, what was left out)
under it, then saves the figure.

Caveat: the figure grows downwards to make room for the legend and the caption, so a long
caption makes a tall image; panels keep their size.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from experiments.plots.common import Point


def figure(panels: int):
    """A figure with ``panels`` axes: one row up to 4 panels, then rows of 3."""
    ncols = panels if panels <= 4 else 3
    nrows = math.ceil(panels / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(max(4.6 * ncols, 6.4), 3.6 * nrows + 0.5),
                             squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def finish(fig, axes, path: Path, points: list[Point], caption: list[str], title: str) -> Path:
    """One legend for the figure below the panels, the caption under it, then save.

    The figure grows downwards to make room, so panels keep their size however long the
    caption is. Labels starting with "SCR model" stay in their panel's own legend (t and c
    differ per NF)."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith(("_", "SCR model")):
                handles.setdefault(label, handle)
    if any(not p.faithful for p in points):
        handles["hollow: testbed was the bottleneck"] = Line2D(
            [], [], linestyle=":", marker="o", color="grey", markerfacecolor="white")
    if any(p.equivalent == "False" for p in points):
        handles["not sequentially equivalent"] = Line2D([], [], linestyle="none", marker="x",
                                                        color="red")
    width, height = fig.get_size_inches()
    lines = [wrapped for note in caption
             for wrapped in textwrap.wrap(note, int(width * 17), subsequent_indent="  ")]
    ncol = max(1, min(len(handles), int(width / 1.9)))
    legend_in = 0.3 * math.ceil(len(handles) / ncol) + 0.1 if handles else 0.0
    caption_in = 0.13 * len(lines) + 0.15 if lines else 0.05
    total = height + legend_in + caption_in
    fig.set_size_inches(width, total)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol,
                   fontsize=8, frameon=False, bbox_to_anchor=(0.5, caption_in / total))
    if lines:
        fig.text(0.01, 0.04 / total, "\n".join(lines), fontsize=7, va="bottom", ha="left")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, (legend_in + caption_in) / total, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw(ax, xs: list[float], points: list[Point], color: str, marker: str, label: str,
         linestyle: str = "-") -> None:
    """A line with filled markers; unfaithful points hollow and reached by faint dotted
    segments (so the line does not vouch for them), non-equivalent ones crossed."""
    ys = [p.throughput for p in points]
    ax.plot([], [], color=color, marker=marker, linestyle=linestyle, label=label, markersize=6)
    ranged = [(x, p) for x, p in zip(xs, points, strict=True) if p.low is not None]
    if ranged:  # the repeats' min-max around their median
        ax.errorbar([x for x, _p in ranged], [p.throughput for _x, p in ranged],
                    yerr=[[p.throughput - p.low for _x, p in ranged],
                          [p.high - p.throughput for _x, p in ranged]],
                    fmt="none", ecolor=color, elinewidth=1, capsize=3, alpha=0.8)
    ax.plot(xs, ys, color=color, marker=marker, linestyle="none", markersize=6)
    for i in range(len(points) - 1):
        trusted = points[i].faithful and points[i + 1].faithful
        ax.plot(xs[i:i + 2], ys[i:i + 2], color=color, linestyle=linestyle if trusted else ":",
                alpha=1 if trusted else 0.5)
    mark(ax, xs, points, color, marker)


def mark(ax, xs: list[float], points: list[Point], color: str, marker: str) -> None:
    """Unfaithful points hollow, non-equivalent ones crossed in red, over a drawn series."""
    hollow = [(x, p.throughput) for x, p in zip(xs, points, strict=True) if not p.faithful]
    if hollow:
        # White fill over the filled marker: the point reads as hollow, the line stays.
        ax.plot(*zip(*hollow, strict=True), linestyle="none", marker=marker, markersize=6,
                markerfacecolor="white", markeredgecolor=color, zorder=3)
    crossed = [(x, p.throughput) for x, p in zip(xs, points, strict=True)
               if p.equivalent == "False"]
    if crossed:
        ax.scatter(*zip(*crossed, strict=True), marker="x", s=70, color="red", zorder=4)


def caption_notes(points: list[Point], errors: int) -> list[str]:
    """Caption lines shared by every figure: what is marked, what was left out."""
    notes = []
    unfaithful = [p for p in points if not p.faithful]
    if unfaithful:
        where = Counter(name for p in unfaithful for name in p.bottleneck.split(";"))
        names = ", ".join(f"{name} {count}x" for name, count in sorted(where.items()))
        notes.append(f"hollow markers: {len(unfaithful)} point(s) where the testbed, not the NF, "
                     f"was the bottleneck ({names}); not NF capacity, left out of the model fit")
    crossed = sum(p.equivalent == "False" for p in points)
    if crossed:
        notes.append(f"red x: {crossed} point(s) whose replicas or verdicts differ from "
                     "sequential processing")
    if errors:
        notes.append(f"{errors} row(s) of results.csv with an error were skipped")
    runs = sorted({p.runs for p in points})
    if runs[-1] > 1:
        counts = "/".join(str(r) for r in runs)
        notes.append(f"each point: the median of its {counts} repeated searches; bars: their "
                     "min-max")
    elif any(p.mode == "mlffr" for p in points):
        notes.append("one search per point: no spread shown (run with --repeats 3 for it)")
    return notes


def skew_name(skew: float, share: float | None) -> str:
    """A skew's tick label, with its top flow's share of packets when known."""
    return f"{skew:g} ({percent(share)})" if share is not None else f"{skew:g}"


def percent(share: float) -> str:
    # Whole percents hide a near-uniform trace's top flow (0.5 % would read "0%").
    return f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"


def share_at(points: list[Point], skew: float) -> float | None:
    """The top flow's share of packets at ``skew``, from the first point that knows it."""
    return next((p.top_flow_share for p in points
                 if p.skew == skew and p.top_flow_share is not None), None)
