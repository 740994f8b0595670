"""A sweep's rows, judged and printed: a point's row from its trials, the table, the summary.

The sweep engine (``experiments.campaigns.sweep``) runs the trials; this module turns them
into what it records and prints, as pure functions of rows (dicts, or a CSV's strings):

* :func:`point_row`: what a point's row says from its trials (the reported trial's figures,
  the point's two checks over every trial, the search's steps);
* :func:`relative_to_no_loss`: each row's throughput relative to the same point without
  injected loss (the loss sweep's table and ``loss.png``);
* :func:`equivalence_mark`, :func:`summary_line`, :func:`table`: a row in a word, in a
  progress line, and every row as a GitHub-style table;
* :func:`sweep_summary`: ``summary.json``'s content.

Caveats: a point's checks judge the trials the search accepted (strict equivalence) and
every trial (consistency), while its figures are the reported trial's alone; a search that
stopped at its first probe reports a lower bound (``ceiling``), shown as ``≥`` in the table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from tabulate import tabulate

from experiments.analysis.mlffr import judged_loss
from experiments.analysis.repeats import spread
from nfs.strategies import get as get_strategy

#: Figures of the reported trial that a point's row repeats as they are ("" if absent).
REPORTED = ("offered_pps", "delivered_pps", "loss", "steady_loss", "faithful", "bottleneck",
            "e2e_us_p50", "e2e_us_p99", "lock_stalls", "lock_stall_share", "migrations")
RECOVERY = ("injected_loss", "recovered", "lost_everywhere", "fetches", "fetch_us_p50",
            "fetch_us_p99", "fetch_s")


# --- a point's row ---------------------------------------------------------------------


def point_checks(steps: list[tuple[float, dict]], threshold: float, fixed: bool) -> dict:
    """The point's checks over its trials (``steps``: (rate, trial row) in search order).

    The trials the search accepted (judged loss within the threshold; in fixed mode, the one
    trial) must be strictly equivalent; every trial, overloaded ones too, must be
    consistent: an overloaded core may drop packets, never let a state go wrong."""
    checks = [r for _rate, r in steps if not r.get("error")]
    accepted = [r for r in checks if judged_loss(r) <= threshold or fixed]
    # What the point's two checks judged and found wrong: an accepted trial that was not
    # strictly equivalent, or any trial that was not consistent.
    problems = [p for r in checks
                if (r in accepted and not r["check_equivalent"])
                or not r["check_consistent"] for p in r.get("check_problems", [])]
    order_checks = [r["check_access_order"] for _rate, r in steps
                    if "check_access_order" in r]
    return {
        "check_equivalent": all(r["check_equivalent"] for r in accepted) if accepted else "",
        "check_consistent": all(r["check_consistent"] for r in checks) if checks else "",
        "check_problem": problems[0] if problems else "",
        # Store strategies: the store's state and every verdict equal a replay of the
        # order the store applied operations in (again in every trial of the point).
        "check_access_order": all(order_checks) if order_checks else "",
    }


def point_row(steps: list[tuple[float, dict]], best: dict | None, throughput: float,
              ceiling: bool, *, threshold: float, fixed: bool) -> dict:
    """A point's measured columns, from its trials: ``best`` is the reported trial (None
    when no rate passed), ``throughput`` the point's (MLFFR, or the delivered rate in
    ``fixed`` mode). ``error`` is set when the reported trial failed or none passed."""
    row: dict = {}
    errors = [r["error"] for _rate, r in steps if r.get("error")]
    if best is None or best.get("error"):
        row["error"] = errors[-1] if errors else "no rate passed"
        best = best or {}
    fid = best.get("fidelity", {})
    checks = point_checks(steps, threshold, fixed)
    row.update({
        "throughput_pps": round(throughput, 1),
        **{key: best.get(key, "") for key in REPORTED},
        **{key: checks[key] for key in ("check_equivalent", "check_consistent",
                                        "check_problem")},
        "search_steps": len(steps),
        "rates_tried": [round(rate) for rate, _r in steps],
        "ceiling": ceiling,
        "per_core": best.get("per_core", ""),
        "lost_updates": best.get("lost_updates", ""),
        "busy": fid.get("busy", ""),
        "machine_idle": fid.get("machine_idle", ""),
        "check_access_order": checks["check_access_order"],
        "store_retries": best.get("store_retries", ""),
        "latency_us_p50": best.get("latency_us_p50", ""),
        "latency_us_p99": best.get("latency_us_p99", ""),
        **{key: best.get(key, "") for key in RECOVERY},
        "trial": next((r["trial"] for _rate, r in steps if r is best), ""),
    })
    return row


# --- throughput relative to no loss ----------------------------------------------------


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


# --- printing --------------------------------------------------------------------------


def equivalence_mark(row: dict) -> str:
    """A point's equivalence in a word: ``yes`` (strictly equivalent), ``modulo gaps``
    (consistent only: equal without updates the ground truth shows lost), ``NO``."""
    if row.get("check_equivalent") is True:
        return "yes"
    if row.get("check_consistent") is True:
        return "modulo gaps"
    return "NO" if row.get("check_consistent") is False else "-"


def summary_line(row: dict) -> str:
    """A finished point in one progress line."""
    name = f"{row['nf']:>9} {row['strategy']:>7} cores={row['cores']} skew={row['skew']:g}"
    if row.get("transfer_work_us") not in ("", None):
        name += f" transfer={row['transfer_work_us']:g}µs"
    if row.get("lock_quota_aware") is True:
        name += " quota-aware"
    if row.get("repeat") not in ("", None):
        name += f" #{row['repeat']}"
    if row.get("error"):
        return f"{name}: error: {row['error']}"
    mark = "" if row["faithful"] is True else f"  NOT FAITHFUL ({row['bottleneck']})"
    return (f"{name}: {row['throughput_pps']:.0f} pps ({row['mode']}, loss "
            f"{100 * row['loss']:.1f} %, equivalent: {equivalence_mark(row)}){mark}")


def _lossy(rows: list[dict]) -> bool:
    return any(float(r.get("loss_rate") or 0) > 0 for r in rows)


def _recovering(rows: list[dict]) -> bool:
    return any(float(r.get("fetches") or 0) > 0 for r in rows)


def _repeated(rows: list[dict]) -> bool:
    return any(int(r.get("repeats") or 1) > 1 for r in rows)


def _headers(lossy: bool, recovering: bool, stores: bool, repeated: bool = False) -> list[str]:
    headers = ["nf", "strategy", "cores", "skew", "top flow", "pps", "loss %", "faithful",
               "equivalent", "trials"]
    if lossy:
        headers = ["nf", "strategy", "cores", "skew", "top flow", "loss %", "pps",
                   "vs no loss", "core loss %", "faithful", "equivalent", "trials"]
    if recovering:
        headers += ["fetched", "fetch µs p50/p99"]
    if stores:
        headers += ["delay µs", "p50 µs", "order ✓"]
    if repeated:
        headers += ["range pps", "searches"]
    return headers


def _table_line(r: dict, vs: float | None, lossy: bool, recovering: bool,
                stores: bool, repeated: bool = False, transfers: bool = False) -> list:
    strategy = r["strategy"]
    if transfers and r.get("transfer_work_us") not in ("", None):
        strategy = f"{strategy} ({float(r['transfer_work_us']):g} µs)"
    if str(r.get("lock_quota_aware", "")).strip().lower() == "true":
        strategy = f"{strategy} quota-aware"
    line = [
        r["nf"], strategy, r["cores"], r["skew"], f"{100 * r['top_flow_share']:.0f} %",
        ("error" if r.get("error") else
         f"≥{r['throughput_pps']}" if r.get("ceiling") else r.get("throughput_pps", "-")),
        f"{100 * r['loss']:.1f}" if r.get("loss") not in ("", None) else "-",
        "yes" if r.get("faithful") is True else f"NO: {r.get('bottleneck') or '?'}",
        equivalence_mark(r), r.get("search_steps", "")]
    if lossy:
        # Same cells, reordered: the injected rate is the row's key, the measured loss
        # (injected drops excluded) a result.
        pps, core_loss, faithful, equivalent, trials = line[5:]
        line = [*line[:5], f"{100 * float(r.get('loss_rate') or 0):g}", pps,
                "-" if vs is None else f"{vs:.0f} %", core_loss, faithful, equivalent,
                trials]
    if recovering:
        p50, p99 = r.get("fetch_us_p50"), r.get("fetch_us_p99")
        line += [r.get("recovered", ""),
                 f"{p50:.0f}/{p99:.0f}" if isinstance(p50, float | int)
                 and isinstance(p99, float | int) else "-"]
    if stores:
        store = get_strategy(r["strategy"]).store
        line += [f"{r.get('store_delay_us', 0):g}" if store else "",
                 r.get("latency_us_p50", "") if store else "",
                 r.get("check_access_order", "")]
    if repeated:
        errors = int(r.get("errors") or 0)
        line += [spread(r), f"{r.get('repeats', 1)}" + (f" ({errors} failed)" if errors else "")]
    return line


def table(rows: list[dict]) -> str:
    """The sweep's results as a table. "equivalent" is :func:`equivalence_mark`. Store
    strategies add their delay, latency and access-order check. Where SCR cores recovered
    lost records, "fetched" is how many and "fetch µs" the fetches' p50/p99 (the recovery
    cost). With injected loss, "loss %" is the injected rate, "core loss %" the reported
    trial's loss besides it and "vs no loss" the throughput relative to the same point
    without loss. Rows of repeated searches (``experiments.analysis.repeats.aggregate``)
    add their range (min-max of the searches) and how many searches there were. A sweep
    over several lock transfer costs names each lock row's cost (``lock (55 µs)``)."""
    stores = any(get_strategy(r["strategy"]).store for r in rows)
    lossy, recovering, repeated = _lossy(rows), _recovering(rows), _repeated(rows)
    relative = relative_to_no_loss(rows) if lossy else [None] * len(rows)
    # Several transfer costs of the lock: each row says its own (a sensitivity sweep).
    transfers = len({str(r.get("transfer_work_us", "")) for r in rows
                     if r.get("transfer_work_us") not in ("", None)}) > 1
    body = [_table_line(r, vs, lossy, recovering, stores, repeated, transfers)
            for r, vs in zip(rows, relative, strict=True)]
    return tabulate(body, headers=_headers(lossy, recovering, stores, repeated),
                    tablefmt="github")


def sweep_summary(rows: list[dict], seconds: float) -> dict:
    """``summary.json``: points, errors, the promises kept, the unfaithful points."""
    return {
        "points": len(rows), "errors": sum(bool(r.get("error")) for r in rows),
        # SCR's promise: every point strictly equivalent; no point of any strategy may
        # be inconsistent with its ground truth (lock's divergence is reported as such).
        "all_equivalent": all(r.get("check_equivalent") is True for r in rows
                              if get_strategy(r["strategy"]).history),
        "inconsistent": [f"{r['nf']}-{r['strategy']}-c{r['cores']}-s{r['skew']:g}"
                         for r in rows if r.get("check_consistent") is False],
        "unfaithful": sum(r.get("faithful") is False for r in rows),
        "seconds": seconds,
    }
