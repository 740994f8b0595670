"""Paper-style plots and the SCR throughput model fit, drawn from a results folder's CSV.

Everything here reads ``RESULTS_DIR/results.csv`` (never in-memory results), so any run can
be redrawn later with ``python -m experiments.plot RESULTS_DIR`` (``python -m
experiments.plots.plotting RESULTS_DIR`` delegates to it).

- ``fit_model`` fits the paper's model ``MLFFR(n) = n / (t + (n-1) c)`` (t: time per packet
  on one core, c: time per packet to fast-forward a replica over one other packet's history).
- ``plot_cores`` draws Fig. 6 style throughput vs. cores, one figure per skew
  (``cores_skew<s>.png``), with the fitted SCR model, and writes ``model_fit.csv``.
- ``plot_skew`` draws throughput vs. flow skew at the largest core count (``skew.png``).
- ``plot_delay`` draws throughput and latency vs. the store latency injected into the
  ``service``/``remote`` strategies, one line per strategy (``store_delay.png``).
- ``plot_loss`` draws MLFFR vs. the loss injected at the dispatch stage, and the MLFFR
  relative to the same point without loss (``relative_to_no_loss``), one line per NF
  (``loss.png``).
- ``plot_run`` draws whatever the CSV supports; it is the entry point.

Caveats:
- Only faithful (``faithful`` not "False"), error-free SCR points measured in mode "mlffr"
  with a positive rate enter the model fit: a delivered rate at one fixed offered rate says
  nothing about capacity when nothing was lost, so fixed-mode data gets no model.
- Unfaithful points (the generator, OVS, shim or sink was the bottleneck) are drawn hollow,
  reached by faint dotted segments, and counted per bottleneck in the caption; an empty
  ``faithful`` cell is not a flag. Points whose sequential-equivalence check failed get a
  red ×. Rows with an ``error`` are skipped and counted in the caption.
- Repeated rows for one (mode, NF, strategy, skew, cores) are averaged; the mean is faithful
  only if every repeat was, and not equivalent if any repeat was not.
- Rows with an injected loss (``loss_rate`` > 0) are their own series in the cores and skew
  plots (``scr loss 1%``), never averaged with the loss-free point.
- A CSV mixing modes gets one figure per mode (``cores_skew<s>_<mode>.png``,
  ``skew_<mode>.png``): MLFFR and fixed-rate numbers never share an axis.
- CSVs written before these columns existed still load: ``throughput_pps`` falls back to
  ``delivered_pps``, a missing ``mode`` means "fixed", a missing ``faithful`` means not
  flagged (those runs did not check the infrastructure).
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a testbed machine
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from experiments.runtime.results import read_csv  # noqa: E402

RESULTS_CSV = "results.csv"
MODEL_FIT_CSV = "model_fit.csv"
SKEW_PLOT = "skew.png"
DELAY_PLOT = "store_delay.png"
LOSS_PLOT = "loss.png"
#: The loss sweep's acceptance line: MLFFR with recovery at least this % of no loss's.
LOSS_TARGET_PERCENT = 80.0
MODEL_FIT_COLUMNS = ["nf", "skew", "t_us", "c_us", "max_rel_error", "points"]
FIT_STRATEGY = "scr"
FIT_MODE = "mlffr"
SINGLE = "single"
Y_LABELS = {"mlffr": "MLFFR (pps)", "fixed": "delivered (pps)"}

# Fixed colors and markers per strategy, so a strategy looks the same in every figure.
# Red is kept for the "not sequentially equivalent" cross, so no strategy uses it.
STYLES = {
    "scr": ("tab:blue", "o"),
    "lock": ("tab:orange", "s"),
    "shard": ("tab:green", "^"),
    "single": ("black", "D"),
    "service": ("tab:purple", "v"),
    "service-blocking": ("tab:pink", "<"),
    "remote": ("tab:brown", "P"),
    "remote-blocking": ("tab:olive", ">"),
    "remote-naive": ("tab:gray", "X"),
}
EXTRA_STYLES = [("tab:cyan", "h"), ("gold", "*"), ("darkblue", "d"), ("lime", "p")]


# --------------------------------------------------------------------------- model fit


@dataclass(frozen=True)
class ModelFit:
    """``MLFFR(n) = n / (t + (n-1) c)`` fitted to measured points; t and c in s/packet."""

    t: float
    c: float
    max_rel_error: float
    points: tuple[tuple[int, float], ...]

    @property
    def t_us(self) -> float:
        return self.t * 1e6

    @property
    def c_us(self) -> float:
        return self.c * 1e6

    def predict(self, n: float) -> float:
        """Model throughput (pps) at ``n`` cores; nan where ``t + (n-1) c <= 0`` (a
        negative fitted c extrapolated far), where the model means nothing."""
        if not n >= 1:
            raise ValueError(f"core count must be >= 1, got {n}")
        seconds = self.t + (n - 1) * self.c
        return n / seconds if seconds > 0 else math.nan


def fit_model(points: Sequence[tuple[int, float]]) -> ModelFit:
    """Fit t and c by linear least squares on ``n / MLFFR(n) = t + (n-1) c``.

    ``points`` are (cores, measured pps). Exact for two points; at least two different core
    counts are needed, since one point cannot tell per-packet work t from history cost c.
    The fit is unconstrained: a negative c (superlinear scaling) is reported, not hidden.
    """
    clean: list[tuple[int, float]] = []
    for item in points:
        try:
            n, rate = item
        except (TypeError, ValueError):
            raise ValueError(f"a point must be (cores, pps), got {item!r}") from None
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"cores must be an integer >= 1, got {n!r}")
        if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"throughput must be a finite number > 0, got {rate!r} at {n} cores")
        clean.append((n, float(rate)))
    cores = sorted({n for n, _ in clean})
    if len(cores) < 2:
        raise ValueError(
            f"fit_model needs points at at least 2 different core counts to separate t from c "
            f"(got {len(clean)} point{'s' if len(clean) != 1 else ''}"
            f"{' at cores ' + str(cores[0]) if cores else ''})")
    xs = [n - 1 for n, _ in clean]
    ys = [n / rate for n, rate in clean]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    c = (sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True))
         / sum((x - x_mean) ** 2 for x in xs))
    t = y_mean - c * x_mean
    fit = ModelFit(t=t, c=c, max_rel_error=math.nan, points=tuple(clean))
    errors = [abs(fit.predict(n) - rate) / rate for n, rate in clean]
    worst = math.inf if any(math.isnan(e) for e in errors) else max(errors)
    return ModelFit(t=t, c=c, max_rel_error=worst, points=tuple(clean))


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Point:
    """One plotted point: the mean over the CSV rows that share its key."""

    nf: str
    strategy: str
    mode: str
    skew: float
    cores: int
    throughput: float
    faithful: bool
    bottleneck: str  # "" when faithful; else e.g. "ovs" or "shim;generator"
    equivalent: str  # "True", "False", or "" when not checked
    top_flow_share: float | None
    runs: int = 1
    ceiling: bool = False  # the search's first probe passed: a lower bound, not a measure


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _flag(text: str, column: str, where: str) -> bool | None:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value == "":
        return None
    raise ValueError(f"{where}: {column} must be True/False/empty, got {text!r}")


def _number(row: dict, column: str, where: str, kind: type = float):
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {column} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {column} must be finite, got {text!r}")
    if kind is int:
        if value != int(value):
            raise ValueError(f"{where}: {column} must be a whole number, got {text!r}")
        return int(value)
    return value


def load_results(run_dir: Path) -> tuple[list[Point], int]:
    """The points of ``run_dir/results.csv`` and how many rows were skipped for an error."""
    path = Path(run_dir) / RESULTS_CSV
    if not path.is_file():
        raise ValueError(f"no {RESULTS_CSV} in {Path(run_dir)}")
    try:
        rows = read_csv(path)
    except (csv.Error, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a readable CSV: {err}") from None
    if rows:
        missing = [c for c in ("nf", "strategy", "cores", "skew") if c not in rows[0]]
        if "throughput_pps" not in rows[0] and "delivered_pps" not in rows[0]:
            missing.append("throughput_pps")
        if missing:
            raise ValueError(f"{path} lacks column(s) {', '.join(missing)}")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    errors = 0
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{path} line {line}"
        if (row.get("error") or "").strip():
            errors += 1
            continue
        rate_column = "throughput_pps" if "throughput_pps" in row else "delivered_pps"
        cores = _number(row, "cores", where, int)
        if cores < 1:
            raise ValueError(f"{where}: cores must be >= 1, got {cores}")
        share = (row.get("top_flow_share") or "").strip()
        faithful = _flag(row.get("faithful") or "", "faithful", where)
        equivalent = _flag(row.get("check_equivalent") or "", "check_equivalent", where)
        parsed = {
            "throughput": _number(row, rate_column, where),
            "faithful": faithful is not False,
            "bottleneck": (row.get("bottleneck") or "").strip(),
            "equivalent": "" if equivalent is None else str(equivalent),
            "share": _number(row, "top_flow_share", where) if share else None,
            "ceiling": (row.get("ceiling") or "").strip().lower() in _TRUE,
        }
        strategy = (row.get("strategy") or "").strip() or "?"
        delay = (row.get("store_delay_us") or "").strip()
        if delay and _number(row, "store_delay_us", where):  # its own series per delay
            strategy = f"{strategy} +{_number(row, 'store_delay_us', where) / 1000:g} ms"
        loss = (row.get("loss_rate") or "").strip()
        if loss and _number(row, "loss_rate", where):  # likewise per injected loss
            strategy = f"{strategy} loss {100 * _number(row, 'loss_rate', where):g}%"
        key = ((row.get("nf") or "").strip() or "?", strategy,
               (row.get("mode") or "").strip() or "fixed", _number(row, "skew", where), cores)
        groups[key].append(parsed)
    points = []
    for (nf, strategy, mode, skew, cores), repeats in groups.items():
        checks = {r["equivalent"] for r in repeats}
        shares = [r["share"] for r in repeats if r["share"] is not None]
        faithful = all(r["faithful"] for r in repeats)
        points.append(Point(
            nf=nf, strategy=strategy, mode=mode, skew=skew, cores=cores,
            throughput=sum(r["throughput"] for r in repeats) / len(repeats),
            faithful=faithful,
            bottleneck="" if faithful else _join(r["bottleneck"] or "unnamed"
                                                  for r in repeats if not r["faithful"]),
            equivalent="False" if "False" in checks else ("True" if checks == {"True"} else ""),
            top_flow_share=shares[0] if shares else None,
            runs=len(repeats),
            ceiling=any(r["ceiling"] for r in repeats),
        ))
    points.sort(key=lambda p: (p.mode, p.nf, _strategy_order(p.strategy), p.skew, p.cores))
    return points, errors


def _join(parts: Iterable[str]) -> str:
    seen: list[str] = []
    for part in parts:
        for name in part.split(";"):
            if name and name not in seen:
                seen.append(name)
    return ";".join(seen)


def _strategy_order(strategy: str) -> tuple[int, str]:
    known = list(STYLES)
    return (known.index(strategy), "") if strategy in known else (len(known), strategy)


def _styles(strategies: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Color and marker per strategy: fixed for known ones, assigned in name order after."""
    styles = dict(STYLES)
    extras = sorted(s for s in set(strategies) if s not in STYLES)
    for number, name in enumerate(extras):
        styles[name] = EXTRA_STYLES[number % len(EXTRA_STYLES)]
    return styles


def _modes(points: list[Point], mode: str | None) -> str:
    present = sorted({p.mode for p in points})
    if mode is None:
        if len(present) > 1:
            raise ValueError(f"results.csv mixes modes {present}: pick one with mode=")
        return present[0]
    if mode not in present:
        raise ValueError(f"results.csv has no {mode!r} rows (modes: {present})")
    return mode


def _has_core_scaling(points: list[Point]) -> bool:
    cores: dict[tuple, set[int]] = defaultdict(set)
    for p in points:
        cores[(p.nf, p.strategy, p.skew)].add(p.cores)
    return any(len(c) >= 2 for c in cores.values())


# --------------------------------------------------------------------------- drawing


def _figure(panels: int):
    """A figure with ``panels`` axes: one row up to 4 panels, then rows of 3."""
    ncols = panels if panels <= 4 else 3
    nrows = math.ceil(panels / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(max(4.6 * ncols, 6.4), 3.6 * nrows + 0.5),
                             squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def _finish(fig, axes, path: Path, points: list[Point], caption: list[str], title: str) -> Path:
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


def _draw(ax, xs: list[float], points: list[Point], color: str, marker: str, label: str,
          linestyle: str = "-") -> None:
    """A line with filled markers; unfaithful points hollow and reached by faint dotted
    segments (so the line does not vouch for them), non-equivalent ones crossed."""
    ys = [p.throughput for p in points]
    ax.plot([], [], color=color, marker=marker, linestyle=linestyle, label=label, markersize=6)
    ax.plot(xs, ys, color=color, marker=marker, linestyle="none", markersize=6)
    for i in range(len(points) - 1):
        trusted = points[i].faithful and points[i + 1].faithful
        ax.plot(xs[i:i + 2], ys[i:i + 2], color=color, linestyle=linestyle if trusted else ":",
                alpha=1 if trusted else 0.5)
    _mark(ax, xs, points, color, marker)


def _mark(ax, xs: list[float], points: list[Point], color: str, marker: str) -> None:
    hollow = [(x, p.throughput) for x, p in zip(xs, points, strict=True) if not p.faithful]
    if hollow:
        # White fill over the filled marker: the point reads as hollow, the line stays.
        ax.plot(*zip(*hollow, strict=True), linestyle="none", marker=marker, markersize=6,
                markerfacecolor="white", markeredgecolor=color, zorder=3)
    crossed = [(x, p.throughput) for x, p in zip(xs, points, strict=True)
               if p.equivalent == "False"]
    if crossed:
        ax.scatter(*zip(*crossed, strict=True), marker="x", s=70, color="red", zorder=4)


def _notes(points: list[Point], errors: int) -> list[str]:
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
    if any(p.runs > 1 for p in points):
        notes.append("points with repeated rows show the mean of the repeats")
    return notes


def _skew_name(skew: float, share: float | None) -> str:
    return f"{skew:g} ({_percent(share)})" if share is not None else f"{skew:g}"


def _percent(share: float) -> str:
    # Whole percents hide a near-uniform trace's top flow (0.5 % would read "0%").
    return f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"


def _share(points: list[Point], skew: float) -> float | None:
    return next((p.top_flow_share for p in points
                 if p.skew == skew and p.top_flow_share is not None), None)


# --------------------------------------------------------------------------- cores plot


def _fit_for(points: list[Point], nf: str, skew: float) -> tuple[ModelFit | None, str]:
    """The SCR model fit for one NF and skew, or None with the reason."""
    used = [(p.cores, p.throughput) for p in points
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
            fit, _ = _fit_for(points, nf, skew)
            if fit is not None:
                writer.writerow([nf, f"{skew:g}", f"{fit.t_us:.6g}", f"{fit.c_us:.6g}",
                                 f"{fit.max_rel_error:.6g}", len(fit.points)])
    return path


def _cores_figure(path: Path, points: list[Point], mode: str, skew: float,
                  errors: int) -> Path:
    nfs = sorted({p.nf for p in points})
    styles = _styles(p.strategy for p in points)
    all_cores = sorted({p.cores for p in points})
    notes = _notes(points, errors)
    if mode != FIT_MODE:
        notes.append(f"mode {mode!r}: delivered rate at one offered rate, no model fit "
                     "(the model is for MLFFR)")
    fig, axes = _figure(len(nfs))
    for ax, nf in zip(axes, nfs, strict=True):
        mine = [p for p in points if p.nf == nf]
        for strategy in sorted({p.strategy for p in mine}, key=_strategy_order):
            color, marker = styles[strategy]
            series = sorted((p for p in mine if p.strategy == strategy), key=lambda p: p.cores)
            if strategy == SINGLE:
                # One core by definition: a reference level rather than a scaling line.
                ref = series[0]
                testbed = "" if ref.faithful else ", testbed-limited"
                ax.axhline(ref.throughput, color=color, linestyle=":",
                           label=f"single ({ref.cores} core{testbed})")
                ax.plot([ref.cores], [ref.throughput], color=color, marker=marker,
                        linestyle="none")
                _mark(ax, [ref.cores], [ref], color, marker)
                continue
            _draw(ax, [p.cores for p in series], series, color, marker, strategy)
        if mode == FIT_MODE:
            fit, why = _fit_for(mine, nf, skew)
            if fit is None:
                if any(p.strategy == FIT_STRATEGY for p in mine):
                    notes.append(f"{nf}: no SCR model: {why}")
            else:
                steps = 200
                xs = [1 + (all_cores[-1] - 1) * i / steps for i in range(steps + 1)]
                line, = ax.plot(xs, [fit.predict(x) for x in xs], color=STYLES["scr"][0],
                                linestyle="--", linewidth=1,
                                label=f"SCR model: t={fit.t_us:.3g} µs, c={fit.c_us:.3g} µs")
                # Upper left: throughput grows with cores, so that corner is usually empty.
                ax.legend(handles=[line], loc="upper left", fontsize=7)
                notes.append(f"{nf}: SCR model fitted on {len(fit.points)} point(s), max "
                             f"relative error {fit.max_rel_error:.1%}")
        ax.set(title=nf, xlabel="cores", ylabel=Y_LABELS.get(mode, f"{mode} (pps)"),
               xticks=all_cores, ylim=(0, None))
        ax.grid(alpha=0.3)
    share = _share(points, skew)
    title = f"throughput vs. cores, flow skew {skew:g}" + (
        f" (top flow {_percent(share)} of packets)" if share is not None else "")
    return _finish(fig, axes, path, points, notes, title)


def _plot_cores(run_dir: Path, points: list[Point], errors: int, mode: str,
                suffix: str) -> list[Path]:
    mine = [p for p in points if p.mode == mode]
    if not _has_core_scaling(mine):
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
    points, errors = load_results(run_dir)
    if not points:
        raise ValueError(f"{Path(run_dir) / RESULTS_CSV} has no rows without an error")
    mode = _modes(points, mode)
    return _plot_cores(Path(run_dir), points, errors, mode, "")


# --------------------------------------------------------------------------- skew plot


def _plot_skew(run_dir: Path, points: list[Point], errors: int, mode: str, suffix: str) -> Path:
    mine = [p for p in points if p.mode == mode]
    skews = sorted({p.skew for p in mine})
    if len(skews) < 2:
        raise ValueError(f"only one flow skew in {mode!r} mode: nothing to plot against skew")
    nfs = sorted({p.nf for p in mine})
    styles = _styles(p.strategy for p in mine)
    fig, axes = _figure(len(nfs))
    drawn: list[Point] = []  # the notes and legend speak of these points only
    for ax, nf in zip(axes, nfs, strict=True):
        for strategy in sorted({p.strategy for p in mine if p.nf == nf}, key=_strategy_order):
            cores = max(p.cores for p in mine if p.nf == nf and p.strategy == strategy)
            series = sorted((p for p in mine if p.nf == nf and p.strategy == strategy
                             and p.cores == cores), key=lambda p: p.skew)
            color, marker = styles[strategy]
            label = f"{strategy} ({cores} core{'s' if cores > 1 else ''})"
            _draw(ax, [p.skew for p in series], series, color, marker, label,
                  linestyle=":" if strategy == SINGLE else "-")
            drawn += series
        ax.set(title=nf, ylabel=Y_LABELS.get(mode, f"{mode} (pps)"), ylim=(0, None),
               xlabel="flow skew (Zipf exponent) (top flow's share of packets)")
        ax.set_xticks(skews, [_skew_name(s, _share(mine, s)) for s in skews], fontsize=8)
        ax.grid(alpha=0.3)
    notes = _notes(drawn, errors)
    notes.append("each strategy at its largest core count in the CSV (single: 1 core)")
    return _finish(fig, axes, Path(run_dir) / SKEW_PLOT.replace(".png", f"{suffix}.png"), drawn,
                   notes, "throughput vs. flow skew")


def plot_skew(run_dir: Path, mode: str | None = None) -> Path:
    """``skew.png``: throughput vs. skew, one panel per NF, one line per strategy at its
    largest core count. ``mode`` is needed only when the CSV mixes modes."""
    points, errors = load_results(run_dir)
    if not points:
        raise ValueError(f"{Path(run_dir) / RESULTS_CSV} has no rows without an error")
    mode = _modes(points, mode)
    return _plot_skew(Path(run_dir), points, errors, mode, "")


# --------------------------------------------------------------------------- store delay


def _delay_rows(run_dir: Path) -> list[dict]:
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
            "delay_ms": _number(row, "store_delay_us", where) / 1000,
            "pps": _number(row, "throughput_pps" if "throughput_pps" in row
                           else "delivered_pps", where),
            "p50_ms": float(p50) / 1000 if p50 else math.nan,
            "faithful": _flag(row.get("faithful") or "", "faithful", where) is not False,
        })
    return out


def plot_delay(run_dir: Path) -> Path:
    """``store_delay.png``: throughput (left) and median per-packet latency (right) vs. the
    store latency injected per round trip, one line per strategy and NF."""
    rows = _delay_rows(run_dir)
    if len({r["delay_ms"] for r in rows}) < 2:
        raise ValueError(f"{Path(run_dir) / RESULTS_CSV} has fewer than 2 store delays")
    styles = _styles(r["strategy"] for r in rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), squeeze=True)
    nfs = sorted({r["nf"] for r in rows})
    for nf in nfs:
        for strategy in sorted({r["strategy"] for r in rows if r["nf"] == nf},
                               key=_strategy_order):
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


# --------------------------------------------------------------------------- loss plot


def _loss_key(row: Mapping) -> tuple:
    """The point a row measures, whatever its injected loss (CSV strings or numbers)."""
    return (str(row["nf"]).strip(), str(row["strategy"]).strip(), int(float(row["cores"])),
            float(row["skew"]), float(row.get("store_delay_us") or 0))


def relative_to_no_loss(rows: Sequence[Mapping]) -> list[float | None]:
    """Each row's ``throughput_pps`` as a percentage of the same point's (NF, strategy,
    cores, skew, store delay) throughput at ``loss_rate`` 0; the mean of that point's
    loss-free rows if it has several.

    A pure function of the rows (CSV strings or numbers alike), for the sweep's table and
    ``loss.png``. None where the row has an ``error``, or the point has no error-free
    loss-free row, or that row's throughput is 0. ValueError on a row that lacks a column
    or holds a non-number."""
    parsed = []
    for number, row in enumerate(rows):
        try:
            key = _loss_key(row)
            loss = float(row.get("loss_rate") or 0)
            rate = float(row["throughput_pps"]) if not row.get("error") else math.nan
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"row {number}: needs nf, strategy, cores, skew and numeric "
                             f"loss_rate and throughput_pps ({err})") from None
        parsed.append((key, loss, rate))
    bases: dict[tuple, list[float]] = defaultdict(list)
    for key, loss, rate in parsed:
        if loss == 0 and not math.isnan(rate):
            bases[key].append(rate)
    out: list[float | None] = []
    for key, _loss, rate in parsed:
        base = sum(bases[key]) / len(bases[key]) if bases.get(key) else 0.0
        out.append(None if math.isnan(rate) or base <= 0 else 100 * rate / base)
    return out


def _loss_rows(run_dir: Path) -> list[dict]:
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
            _number(row, column, where)  # the error names the bad cell
        checks = [_flag(row.get(c) or "", c, where) for c in ("check_equivalent",
                                                              "check_consistent")]
        out.append({
            "nf": row["nf"].strip(), "strategy": row["strategy"].strip(),
            "cores": _number(row, "cores", where, int),
            "loss_pct": 100 * _number(row, "loss_rate", where)
            if (row.get("loss_rate") or "").strip() else 0.0,
            "pps": _number(row, "throughput_pps", where),
            "faithful": _flag(row.get("faithful") or "", "faithful", where) is not False,
            "failed": False in checks,
            "mode": (row.get("mode") or "").strip() or "fixed",
        })
    for row, relative in zip(out, relative_to_no_loss(rows), strict=True):
        row["relative"] = math.nan if relative is None else relative
    return out


def plot_loss(run_dir: Path) -> Path:
    """``loss.png``: MLFFR (left) and MLFFR relative to no loss (right, the 80 % target
    dashed) vs. the injected loss, one line per NF (and strategy, core count if several)."""
    rows = _loss_rows(run_dir)
    if len({r["loss_pct"] for r in rows}) < 2:
        raise ValueError(f"{Path(run_dir) / RESULTS_CSV} has fewer than 2 injected loss rates")
    strategies = sorted({r["strategy"] for r in rows}, key=_strategy_order)
    cores = sorted({r["cores"] for r in rows})
    series_keys = sorted({(r["nf"], r["strategy"], r["cores"]) for r in rows})
    colors = plt.get_cmap("tab10").colors
    nf_color = {nf: colors[i % len(colors)]
                for i, nf in enumerate(sorted({r["nf"] for r in rows}))}
    markers = "osv^D<>Ph*"
    dashes = ["-", "--", "-.", ":"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4), squeeze=True)
    for nf, strategy, count in series_keys:
        series = sorted((r for r in rows if (r["nf"], r["strategy"], r["cores"])
                         == (nf, strategy, count)), key=lambda r: r["loss_pct"])
        color = nf_color[nf]
        marker = markers[strategies.index(strategy) % len(markers)]
        label = " ".join([nf, *([strategy] if len(strategies) > 1 else []),
                          *([f"{count} cores"] if len(cores) > 1 else [])])
        xs = [r["loss_pct"] for r in series]
        for ax, key in ((left, "pps"), (right, "relative")):
            ys = [r[key] for r in series]
            ax.plot(xs, ys, color=color, marker=marker, label=label, markersize=6,
                    linestyle=dashes[cores.index(count) % len(dashes)])
            hollow = [(x, y) for x, y, r in zip(xs, ys, series, strict=True)
                      if not r["faithful"]]
            if hollow:
                ax.plot(*zip(*hollow, strict=True), linestyle="none", marker=marker,
                        markersize=6, markerfacecolor="white", markeredgecolor=color, zorder=3)
            crossed = [(x, y) for x, y, r in zip(xs, ys, series, strict=True) if r["failed"]]
            if crossed:
                ax.scatter(*zip(*crossed, strict=True), marker="x", s=70, color="red", zorder=4)
    right.axhline(LOSS_TARGET_PERCENT, color="grey", linestyle="--", linewidth=1,
                  label=f"target: {LOSS_TARGET_PERCENT:g} % of no loss")
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


# --------------------------------------------------------------------------- entry point


def plot_run(run_dir: Path) -> list[Path]:
    """Draw every plot ``run_dir/results.csv`` supports and write ``model_fit.csv``; return
    the figures' paths. ValueError when there is nothing to plot."""
    run_dir = Path(run_dir)
    points, errors = load_results(run_dir)
    if not points:
        raise ValueError(f"{run_dir / RESULTS_CSV} has no rows without an error "
                         f"({errors} skipped for an error)")
    modes = sorted({p.mode for p in points})
    paths: list[Path] = []
    if len({r["delay_ms"] for r in _delay_rows(run_dir)}) >= 2:
        paths.append(plot_delay(run_dir))
    if len({r["loss_pct"] for r in _loss_rows(run_dir)}) >= 2:
        paths.append(plot_loss(run_dir))
    for mode in modes:
        suffix = f"_{mode}" if len(modes) > 1 else ""
        mine = [p for p in points if p.mode == mode]
        if _has_core_scaling(mine):
            paths += _plot_cores(run_dir, points, errors, mode, suffix)
        if len({p.skew for p in mine}) >= 2:
            paths.append(_plot_skew(run_dir, points, errors, mode, suffix))
    if not paths:
        raise ValueError(
            f"nothing to plot in {run_dir / RESULTS_CSV}: needs 2 or more core counts for one "
            f"strategy, 2 or more skews, store delays or loss rates "
            f"(cores {sorted({p.cores for p in points})}, "
            f"skews {sorted({p.skew for p in points})})")
    write_model_fit(run_dir, points)  # always, so no stale fit outlives a redraw
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.plots.plotting DIR``: the same as ``python -m experiments.plot``."""
    from experiments.plot import main as plot_main  # here: experiments.plot imports us

    return plot_main(argv, prog="plotting")


if __name__ == "__main__":
    raise SystemExit(main())
