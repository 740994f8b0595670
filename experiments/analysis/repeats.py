"""Repeated searches of one point, summed up: the median and its spread.

One MLFFR search is one sample: on this machine two searches of the same point differ by
10-20 %. So a sweep runs ``--repeats`` independent searches per point (each its own row of
``results.csv``, numbered by ``repeat``), and the point is their **median**, reported with
the **min-max range** of the searches (with 3 repeats, the range is the honest spread: a
bootstrap interval of 3 values says no more). :func:`aggregate` turns the rows of a sweep
into one row per point; the sweep's table, its summary and the README's tables use it, and
:func:`differ` says whether two points' ranges are apart.

A pure function of rows (numbers, or a CSV's strings for the columns it reads).

Caveats: the median of an even number of searches is the mean of the middle two, so the
point's other figures (loss, latency, the trial folder) come from the *lower* middle search
(``median_low``: one real search). A search that found no passing rate counts as 0; one
that broke (a trial error) is left out of the median and counted (``errors``); a point
whose every search broke keeps the last error.
The point's checks hold only if they held in every search.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping

#: A search's error when no rate passed (``tables.point_row``): a measurement of zero.
NO_RATE_PASSED = "no rate passed"
#: The columns that name a point (the rest are measures of one search).
KEY = ("nf", "strategy", "cores", "skew", "store_delay_us", "loss_rate", "mode",
       "transfer_work_us", "lock_quota_aware")


def point_key(row: Mapping) -> tuple:
    """The point a row measures, whatever its repeat (numbers or CSV strings alike)."""
    def norm(column: str):
        value = row.get(column, "")
        if column in ("nf", "strategy", "mode", "lock_quota_aware"):
            return str(value).strip()
        return float(value) if value not in ("", None) else 0.0

    return tuple(norm(column) for column in KEY)


def _truth(values: Iterable) -> bool | str:
    """All True: True; any False: False; nothing judged: "" (as the CSV writes them)."""
    marks = [str(v).strip().lower() for v in values if str(v).strip() not in ("", "None")]
    if not marks:
        return ""
    return all(m in ("true", "1") for m in marks)


def aggregate(rows: Iterable[Mapping]) -> list[dict]:
    """One row per point, in first-seen order: the lower-median search's row with
    ``throughput_pps`` the median over the point's error-free searches, and
    ``throughput_min``, ``throughput_max``, ``throughputs``, ``repeats`` (searches),
    ``errors``; ``faithful``, ``check_*`` and ``confirmed`` hold only if every search's
    did, ``ceiling`` if any search's did."""
    groups: dict[tuple, list[Mapping]] = defaultdict(list)
    for row in rows:
        groups[point_key(row)].append(row)
    out = []
    for searches in groups.values():
        # A search that found no passing rate measured 0 (below its lowest probe): it
        # counts in the median. Only a search that broke (a trial error) is left out.
        good = [{**r, "throughput_pps": 0.0} if r.get("error") == NO_RATE_PASSED else r
                for r in searches if not r.get("error") or r.get("error") == NO_RATE_PASSED]
        if not good:
            out.append({**searches[-1], "repeats": len(searches), "errors": len(searches),
                        "throughputs": [], "throughput_min": "", "throughput_max": ""})
            continue
        rates = [float(r["throughput_pps"]) for r in good]
        middle = statistics.median_low(rates)
        point = dict(next(r for r, rate in zip(good, rates, strict=True) if rate == middle))
        point.update({
            "throughput_pps": round(statistics.median(rates), 1),
            "throughput_min": round(min(rates), 1),
            "throughput_max": round(max(rates), 1),
            "throughputs": [round(rate, 1) for rate in rates],
            "repeats": len(searches),
            "errors": len(searches) - len(good),
            "faithful": _truth(r.get("faithful") for r in good),
            "ceiling": any(str(r.get("ceiling")).strip().lower() in ("true", "1")
                           for r in good),
        })
        for column in ("check_equivalent", "check_consistent", "check_access_order",
                       "confirmed"):
            if any(column in r for r in good):
                point[column] = _truth(r.get(column, "") for r in good)
        out.append(point)
    return out


def spread(point: Mapping) -> str:
    """The point's range as a table cell: ``min-max`` (or "" for a single search)."""
    if int(point.get("repeats") or 1) < 2 or point.get("throughput_min") in ("", None):
        return ""
    return f"{float(point['throughput_min']):.0f}–{float(point['throughput_max']):.0f}"


def differ(a: Mapping, b: Mapping) -> bool:
    """Whether two points' ranges (min-max of their searches) do not overlap: a difference
    beyond the spread. False when either has no range (one search has no spread)."""
    if int(a.get("repeats") or 1) < 2 or int(b.get("repeats") or 1) < 2:
        return False
    try:
        a_lo, a_hi = float(a["throughput_min"]), float(a["throughput_max"])
        b_lo, b_hi = float(b["throughput_min"]), float(b["throughput_max"])
    except (KeyError, TypeError, ValueError):
        return False
    return a_hi < b_lo or b_hi < a_lo
