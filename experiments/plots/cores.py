"""Fig. 6 style: throughput vs. cores, with the SCR model fitted, and ``model_fit.csv``.

:func:`plot_cores` draws one figure per flow skew (``cores_skew<s>.png``; with a CSV that
mixes modes, ``cores_skew<s>_<mode>.png``), one panel per NF, one line per strategy
(``single``: a dotted reference level at its one core), and in MLFFR mode the SCR model
``MLFFR(n) = n / (t + (n-1) c)`` fitted on the panel's SCR points, every repeated search
its own point, drawn with its 95 % confidence band (the fit and its intervals are
``experiments.analysis.model``). :func:`write_model_fit` writes ``model_fit.csv``: one row
per (NF, skew) whose points fit, with t's and c's intervals.

Caveats: only faithful (``faithful`` not "False"), error-free SCR points measured in mode
"mlffr" with a positive rate, and not a search's ceiling (a lower bound), enter the model
fit: a delivered rate at one fixed offered rate says nothing about capacity when nothing
was lost, so fixed-mode data gets no model. The fitted curve is drawn from 1 core to the
largest core count in the figure, extrapolated where a panel has fewer.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from experiments.analysis.model import ModelFit, fit_model
from experiments.plots.common import (
    SINGLE,
    STYLES,
    Y_LABELS,
    Point,
    has_core_scaling,
    load_points,
    pick_mode,
    strategy_order,
    styles_for,
)
from experiments.plots.figures import (
    caption_notes,
    draw,
    figure,
    finish,
    mark,
    percent,
    share_at,
)

MODEL_FIT_CSV = "model_fit.csv"
MODEL_FIT_COLUMNS = ["nf", "skew", "t_us", "t_us_low", "t_us_high", "c_us", "c_us_low",
                     "c_us_high", "max_rel_error", "points"]
FIT_STRATEGY = "scr"
FIT_MODE = "mlffr"
FIT_STEPS = 200  # segments of the drawn model curve


def fit_for(points: list[Point], nf: str, skew: float) -> tuple[ModelFit | None, str]:
    """The SCR model fit for one NF and skew, or None with the reason."""
    used = [(p.cores, value) for p in points for value in (p.values or (p.throughput,))
            if p.nf == nf and p.skew == skew and p.strategy == FIT_STRATEGY
            and p.mode == FIT_MODE and p.faithful and p.throughput > 0
            and not p.ceiling]  # a lower bound (the search's ceiling) would bend the fit
    if not used:
        return None, "no faithful SCR MLFFR point"
    try:
        return fit_model(used), ""
    except ValueError as err:
        return None, str(err)


def write_model_fit(run_dir: Path, points: list[Point]) -> Path:
    """``model_fit.csv``: one row per (NF, skew) whose SCR MLFFR points fit the model."""
    path = Path(run_dir) / MODEL_FIT_CSV
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MODEL_FIT_COLUMNS)
        for nf, skew in sorted({(p.nf, p.skew) for p in points if p.strategy == FIT_STRATEGY}):
            fit, _ = fit_for(points, nf, skew)
            if fit is not None:
                t_ci, c_ci = fit.t_ci_us or ("", ""), fit.c_ci_us or ("", "")
                writer.writerow([nf, f"{skew:g}", *(f"{v:.6g}" if v != "" else "" for v in (
                    fit.t_us, *t_ci, fit.c_us, *c_ci, fit.max_rel_error)), len(fit.points)])
    return path


def _draw_single(ax, series: list[Point], color: str, marker: str) -> None:
    """One core by definition: a reference level rather than a scaling line."""
    ref = series[0]
    testbed = "" if ref.faithful else ", testbed-limited"
    ax.axhline(ref.throughput, color=color, linestyle=":",
               label=f"single ({ref.cores} core{testbed})")
    ax.plot([ref.cores], [ref.throughput], color=color, marker=marker, linestyle="none")
    mark(ax, [ref.cores], [ref], color, marker)


def _draw_fit(ax, mine: list[Point], nf: str, skew: float, max_cores: int,
              notes: list[str]) -> None:
    """The SCR model's curve in the panel of ``nf`` (or why none), noted in the caption."""
    fit, why = fit_for(mine, nf, skew)
    if fit is None:
        if any(p.strategy == FIT_STRATEGY for p in mine):
            notes.append(f"{nf}: no SCR model: {why}")
        return
    xs = [1 + (max_cores - 1) * i / FIT_STEPS for i in range(FIT_STEPS + 1)]
    t_ci, c_ci = fit.t_ci_us, fit.c_ci_us

    def us(x: float) -> str:  # whole µs from 100 on: no 1.71e+03 in a legend
        return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"

    label = (f"SCR model: t={us(fit.t_us)} [{us(t_ci[0])}, {us(t_ci[1])}] µs, "
             f"c={us(fit.c_us)} [{us(c_ci[0])}, {us(c_ci[1])}] µs" if t_ci and c_ci else
             f"SCR model: t={us(fit.t_us)} µs, c={us(fit.c_us)} µs")
    line, = ax.plot(xs, [fit.predict(x) for x in xs], color=STYLES["scr"][0],
                    linestyle="--", linewidth=1, label=label)
    if fit.band(1) is not None:
        bands = [fit.band(x) for x in xs]
        top = max(p.high or p.throughput for p in mine) * 1.5  # an unbounded band is clipped
        ax.fill_between(xs, [lo for lo, _hi in bands],
                        [top if math.isnan(hi) else min(hi, top) for _lo, hi in bands],
                        color=STYLES["scr"][0], alpha=0.12, linewidth=0)
    # Upper left: throughput grows with cores, so that corner is usually empty.
    ax.legend(handles=[line], loc="upper left", fontsize=7)
    notes.append(f"{nf}: SCR model fitted on {len(fit.points)} search(es), max "
                 f"relative error {fit.max_rel_error:.1%}"
                 + ("; shaded: its 95 % confidence band, brackets: 95 % intervals"
                    if t_ci else ""))


def _cores_figure(path: Path, points: list[Point], mode: str, skew: float,
                  errors: int) -> Path:
    nfs = sorted({p.nf for p in points})
    styles = styles_for(p.strategy for p in points)
    all_cores = sorted({p.cores for p in points})
    notes = caption_notes(points, errors)
    if mode != FIT_MODE:
        notes.append(f"mode {mode!r}: delivered rate at one offered rate, no model fit "
                     "(the model is for MLFFR)")
    fig, axes = figure(len(nfs))
    for ax, nf in zip(axes, nfs, strict=True):
        mine = [p for p in points if p.nf == nf]
        for strategy in sorted({p.strategy for p in mine}, key=strategy_order):
            color, marker = styles[strategy]
            series = sorted((p for p in mine if p.strategy == strategy), key=lambda p: p.cores)
            if strategy == SINGLE:
                _draw_single(ax, series, color, marker)
            else:
                draw(ax, [p.cores for p in series], series, color, marker, strategy)
        if mode == FIT_MODE:
            _draw_fit(ax, mine, nf, skew, all_cores[-1], notes)
        ax.set(title=nf, xlabel="cores", ylabel=Y_LABELS.get(mode, f"{mode} (pps)"),
               xticks=all_cores, ylim=(0, None))
        ax.grid(alpha=0.3)
    share = share_at(points, skew)
    title = f"throughput vs. cores, flow skew {skew:g}" + (
        f" (top flow {percent(share)} of packets)" if share is not None else "")
    return finish(fig, axes, path, points, notes, title)


def draw_cores(run_dir: Path, points: list[Point], errors: int, mode: str,
               suffix: str) -> list[Path]:
    """The cores figures of ``mode``'s points (file names end in ``suffix``), and
    ``model_fit.csv``; ValueError when no strategy has 2 or more core counts."""
    mine = [p for p in points if p.mode == mode]
    if not has_core_scaling(mine):
        raise ValueError(f"no strategy has 2 or more core counts in {mode!r} mode: "
                         "nothing to plot against cores")
    paths = [
        _cores_figure(Path(run_dir) / f"cores_skew{skew:g}{suffix}.png",
                      [p for p in mine if p.skew == skew], mode, skew, errors)
        for skew in sorted({p.skew for p in mine})
    ]
    write_model_fit(run_dir, points)
    return paths


def plot_cores(run_dir: Path, mode: str | None = None) -> list[Path]:
    """Throughput vs. cores, one ``cores_skew<s>.png`` per skew, one panel per NF; also
    writes ``model_fit.csv``. ``mode`` is needed only when the CSV mixes modes."""
    points, errors = load_points(run_dir)
    return draw_cores(Path(run_dir), points, errors, pick_mode(points, mode), "")
