"""What every plot shares: reading ``results.csv`` into points, and one style per strategy.

:func:`load_results` reads ``RESULTS_DIR/results.csv`` (never in-memory results, so any run
can be redrawn later) into :class:`Point` objects, one per (mode, NF, strategy, skew,
cores); :func:`flag` and :func:`number` parse one cell with an error that names the file,
the line and the column. ``STYLES`` fixes a color and a marker per strategy, so a strategy
looks the same in every figure.

Caveats:
- Unfaithful points (the generator, OVS, shim or sink was the bottleneck) keep their
  bottlenecks; an empty ``faithful`` cell is not a flag. Rows with an ``error`` are skipped
  and counted, for the caption.
- Repeated rows for one (mode, NF, strategy, skew, cores) are the repeated searches of one
  point (``--repeats``): the point is their median, with their min and max (drawn as error
  bars) and every value (the model fit uses each); it is faithful only if every repeat
  was, and not equivalent if any repeat was not.
- Rows with an injected loss (``loss_rate`` > 0) or a store delay are their own series
  (``scr loss 1%``, ``service +1 ms``), never merged with the point without them; so are a
  lock's transfer costs when the CSV has several (``lock transfer 55 µs``).
- CSVs written before these columns existed still load: ``throughput_pps`` falls back to
  ``delivered_pps``, a missing ``mode`` means "fixed", a missing ``faithful`` means not
  flagged (those runs did not check the infrastructure).
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from experiments.runtime.results import read_csv

RESULTS_CSV = "results.csv"
SINGLE = "single"
Y_LABELS = {"mlffr": "MLFFR (pps)", "fixed": "delivered (pps)"}

# Fixed colors and markers per strategy, so a strategy looks the same in every figure.
# Red is kept for the "not sequentially equivalent" cross, so no strategy uses it.
STYLES = {
    "scr": ("tab:blue", "o"),
    "lock": ("tab:orange", "s"),
    "shard": ("tab:green", "^"),
    "rsspp": ("teal", "d"),
    "single": ("black", "D"),
    "service": ("tab:purple", "v"),
    "service-blocking": ("tab:pink", "<"),
    "remote": ("tab:brown", "P"),
    "remote-blocking": ("tab:olive", ">"),
    "remote-naive": ("tab:gray", "X"),
}
EXTRA_STYLES = [("tab:cyan", "h"), ("gold", "*"), ("darkblue", "d"), ("lime", "p")]


@dataclass(frozen=True)
class Point:
    """One plotted point: the median over the CSV rows that share its key."""

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
    low: float | None = None  # the smallest and largest of the repeats (None: one run)
    high: float | None = None
    values: tuple[float, ...] = ()  # every repeat's throughput


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def flag(text: str, column: str, where: str) -> bool | None:
    """A True/False cell (also 1/0, yes/no); None when empty; ValueError otherwise."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value == "":
        return None
    raise ValueError(f"{where}: {column} must be True/False/empty, got {text!r}")


def number(row: dict, column: str, where: str, kind: type = float):
    """A finite number cell (a whole one with ``kind=int``); ValueError naming the cell."""
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
    # A lock's transfer cost names its series only where the CSV has several of them.
    transfers: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        transfers[(row.get("strategy") or "").strip()].add(
            (row.get("transfer_work_us") or "").strip())
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        if (row.get("error") or "").strip():
            errors += 1
            continue
        strategy = (row.get("strategy") or "").strip()
        key, parsed = _parse_row(row, f"{path} line {line}", len(transfers[strategy]) > 1)
        groups[key].append(parsed)
    points = [_merge(key, repeats) for key, repeats in groups.items()]
    points.sort(key=lambda p: (p.mode, p.nf, strategy_order(p.strategy), p.skew, p.cores))
    return points, errors


def _parse_row(row: dict, where: str, name_transfer: bool = False) -> tuple[tuple, dict]:
    """An error-free row's point key (nf, series, mode, skew, cores) and its measures
    (``name_transfer``: the lock's transfer cost names the series)."""
    rate_column = "throughput_pps" if "throughput_pps" in row else "delivered_pps"
    cores = number(row, "cores", where, int)
    if cores < 1:
        raise ValueError(f"{where}: cores must be >= 1, got {cores}")
    share = (row.get("top_flow_share") or "").strip()
    faithful = flag(row.get("faithful") or "", "faithful", where)
    equivalent = flag(row.get("check_equivalent") or "", "check_equivalent", where)
    parsed = {
        "throughput": number(row, rate_column, where),
        "faithful": faithful is not False,
        "bottleneck": (row.get("bottleneck") or "").strip(),
        "equivalent": "" if equivalent is None else str(equivalent),
        "share": number(row, "top_flow_share", where) if share else None,
        "ceiling": (row.get("ceiling") or "").strip().lower() in _TRUE,
    }
    strategy = (row.get("strategy") or "").strip() or "?"
    delay = (row.get("store_delay_us") or "").strip()
    if delay and number(row, "store_delay_us", where):  # its own series per delay
        strategy = f"{strategy} +{number(row, 'store_delay_us', where) / 1000:g} ms"
    loss = (row.get("loss_rate") or "").strip()
    if loss and number(row, "loss_rate", where):  # likewise per injected loss
        strategy = f"{strategy} loss {100 * number(row, 'loss_rate', where):g}%"
    if name_transfer and (row.get("transfer_work_us") or "").strip():
        strategy = f"{strategy} transfer {number(row, 'transfer_work_us', where):g} µs"
    if flag(row.get("lock_quota_aware") or "", "lock_quota_aware", where):
        strategy = f"{strategy} quota-aware"  # the option that paces the cores
    key = ((row.get("nf") or "").strip() or "?", strategy,
           (row.get("mode") or "").strip() or "fixed", number(row, "skew", where), cores)
    return key, parsed


def _merge(key: tuple, repeats: list[dict]) -> Point:
    """One point from the repeated rows of its key (see the module docstring)."""
    nf, strategy, mode, skew, cores = key
    checks = {r["equivalent"] for r in repeats}
    shares = [r["share"] for r in repeats if r["share"] is not None]
    faithful = all(r["faithful"] for r in repeats)
    values = tuple(r["throughput"] for r in repeats)
    return Point(
        nf=nf, strategy=strategy, mode=mode, skew=skew, cores=cores,
        throughput=statistics.median(values),
        low=min(values) if len(values) > 1 else None,
        high=max(values) if len(values) > 1 else None, values=values,
        faithful=faithful,
        bottleneck="" if faithful else _join(r["bottleneck"] or "unnamed"
                                              for r in repeats if not r["faithful"]),
        equivalent="False" if "False" in checks else ("True" if checks == {"True"} else ""),
        top_flow_share=shares[0] if shares else None,
        runs=len(repeats),
        ceiling=any(r["ceiling"] for r in repeats),
    )


def _join(parts: Iterable[str]) -> str:
    seen: list[str] = []
    for part in parts:
        for name in part.split(";"):
            if name and name not in seen:
                seen.append(name)
    return ";".join(seen)


def strategy_order(strategy: str) -> tuple:
    """Sort key: the known strategies in ``STYLES`` order, then the others by name, numbers
    in a name by value (``lock transfer 55 µs`` before ``lock transfer 110 µs``)."""
    known = list(STYLES)
    if strategy in known:
        return (known.index(strategy), ())
    parts = tuple((0, float(part), "") if part.replace(".", "", 1).isdigit() else (1, 0.0, part)
                  for part in re.split(r"([\d.]+)", strategy) if part)
    return (len(known), parts)


def styles_for(strategies: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Color and marker per strategy: fixed for known ones, assigned in name order after."""
    styles = dict(STYLES)
    extras = sorted((s for s in set(strategies) if s not in STYLES), key=strategy_order)
    for index, name in enumerate(extras):
        styles[name] = EXTRA_STYLES[index % len(EXTRA_STYLES)]
    return styles


def pick_mode(points: list[Point], mode: str | None) -> str:
    """``mode`` if the points have it, or their only mode; ValueError otherwise."""
    present = sorted({p.mode for p in points})
    if mode is None:
        if len(present) > 1:
            raise ValueError(f"results.csv mixes modes {present}: pick one with mode=")
        return present[0]
    if mode not in present:
        raise ValueError(f"results.csv has no {mode!r} rows (modes: {present})")
    return mode


def has_core_scaling(points: list[Point]) -> bool:
    """Whether some (NF, strategy, skew) was measured at 2 or more core counts."""
    cores: dict[tuple, set[int]] = defaultdict(set)
    for p in points:
        cores[(p.nf, p.strategy, p.skew)].add(p.cores)
    return any(len(c) >= 2 for c in cores.values())


def load_points(run_dir: Path) -> tuple[list[Point], int]:
    """:func:`load_results`, with a ValueError when every row had an error."""
    points, errors = load_results(run_dir)
    if not points:
        raise ValueError(f"{Path(run_dir) / RESULTS_CSV} has no rows without an error")
    return points, errors
