"""MLFFR: the maximum loss-free forwarding rate, found by a search on the offered rate.

As in the paper's artifact, a rate "passes" when the loss is at most ``threshold`` (4 % by
default). The loss judged (:func:`judged_loss`) is the larger of two figures of the trial:
``loss``, the packets sent but never processed by a core, and ``steady_loss``, the cores'
deficit over the trial's steady-state window (``experiments.analysis.collect.steady_result``:
after a warm-up, packets done against packets sequenced, by time). The first alone is biased
upward: a core's receive queue absorbs a small overload for longer than a trial lasts, and
the frames still queued at the end count as processed. The search needs few trials, because
a trial at an overloaded rate also tells how fast the cores *did* process (the delivered
rate):

1. a probe at ``start`` (meant to be above capacity); if it passes, the MLFFR is at least
   that (``ceiling`` in the result) and the bisection stops;
2. otherwise the next rate is just below the probe's delivered rate, and then the usual
   bisection between the highest passing and the lowest failing rate, until they are within
   ``precision`` of each other or ``max_steps`` trials ran;
3. **confirmation**: the rate found is run once more; if that trial fails, the rate counts
   as failing (``refuted``), the search falls back to the next lower passing rate and goes
   on below the refuted one with one more step (at most ``MAX_CONFIRMATIONS``
   confirmations; the last rate left standing is reported with ``confirmed`` False).
   Confirmations and those extra steps do not count against ``max_steps``: a search runs
   at most ``max_steps + 2 * MAX_CONFIRMATIONS`` trials.

**Unfaithful trials never set a bracket.** A trial whose fidelity mark says the
infrastructure, not the cores, was the limit (``faithful`` False) is run again once at the
same rate; if that is unfaithful too, the rate counts as failing (the testbed cannot vouch
for it, so the search stays below it) and the search says so (``unfaithful``: the rates it
could not measure). Retries count as steps. A result without a ``faithful`` key (a trial
that was not monitored) is taken as it is.

The trial itself is a callable (rate -> result dict with ``loss``, ``delivered_pps``,
``faithful`` and optionally ``steady_loss``), so the search is a pure function,
unit-tested without a network; ``experiments/bench_mlffr.py`` measures its resolution and
bias against a simulated core with a receive queue and noise.

Caveat: one search is one sample: with trial-to-trial noise of 10-20 % on this machine, a
point is the median of several searches (the sweeps' ``--repeats``,
``experiments.analysis.repeats``), reported with its spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_THRESHOLD = 0.04
#: At most this many confirmation trials per search (a refuted rate falls back once more).
MAX_CONFIRMATIONS = 2


def judged_loss(result: dict) -> float:
    """The loss a search judges a trial by: the larger of ``loss`` (packets never
    processed) and ``steady_loss`` (the steady-state deficit) when the trial has one."""
    steady = result.get("steady_loss")
    loss = result["loss"]
    return max(loss, steady) if isinstance(steady, int | float) else loss


@dataclass
class Search:
    """Outcome of one MLFFR search."""

    mlffr: float  # highest passing rate (0 when none passed)
    best: dict | None  # the trial result at that rate (its first trial)
    steps: list[tuple[float, dict]] = field(default_factory=list)  # every (rate, result)
    ceiling: bool = False  # the first probe passed: the MLFFR may be higher still
    unfaithful: list[float] = field(default_factory=list)  # rates never measured faithfully
    confirmed: bool = False  # a second trial at the MLFFR passed too
    refuted: list[float] = field(default_factory=list)  # rates whose confirmation failed


def find_mlffr(
    trial: Callable[[float], dict],
    start: float,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    precision: float = 0.05,
    max_steps: int = 6,
    min_rate: float = 10.0,
    confirm: bool = True,
) -> Search:
    """Search the MLFFR with ``trial(rate) -> {"loss": ..., "delivered_pps": ...}``."""
    if not (math.isfinite(start) and math.isfinite(min_rate) and min_rate > 0):
        raise ValueError(f"start rate {start} and minimum {min_rate} must be finite and > 0")
    if start < min_rate:
        raise ValueError(f"start rate {start} is below the minimum {min_rate}")
    if not 0 <= threshold < 1 or not 0 < precision < 1 or max_steps < 1:
        raise ValueError("need 0 <= threshold < 1, 0 < precision < 1 and max_steps >= 1")
    search = Search(0.0, None)
    searched = 0  # bisection steps (retries included, confirmations not)

    def measure(rate: float, budget: bool) -> tuple[bool, dict]:
        """One trial at ``rate`` (once more if unfaithful and ``budget`` allows): passed?"""
        result = trial(rate)
        search.steps.append((rate, result))
        if result.get("faithful") is False and budget:
            result = trial(rate)  # once more: a busy moment of the machine may have passed
            search.steps.append((rate, result))
        if result.get("faithful") is False:
            search.unfaithful.append(rate)
            return False, result  # not vouched for: never a pass, the search stays below
        return judged_loss(result) <= threshold, result

    lo, hi = 0.0, math.inf
    passes: list[tuple[float, dict]] = []  # (rate, first result) of passing rates, ascending
    rate, confirmations, budget = start, 0, max_steps
    while True:
        while (searched < budget and rate >= min_rate and not search.ceiling
               and not (lo and hi - lo <= precision * hi)):
            before = len(search.steps)
            passed, result = measure(rate, budget=searched + 1 < budget)
            searched += len(search.steps) - before
            if passed:
                lo = rate
                passes.append((rate, result))
                search.ceiling = len(search.steps) <= 2 and rate == start  # the first rate
            else:
                hi = min(hi, rate)
            rate = _next_rate(lo, hi, result, min_rate)
        if not passes or not confirm or confirmations >= MAX_CONFIRMATIONS:
            break
        confirmations += 1
        top = passes[-1][0]
        passed, result = measure(top, budget=True)
        if passed:
            search.confirmed = True
            break
        search.refuted.append(top)  # one pass and one failure: it cannot be vouched for
        passes.pop()
        budget += 1  # one more bisection step below it, so a refutation never ends empty
        search.ceiling = False
        hi = top
        lo = passes[-1][0] if passes else 0.0
        rate = _next_rate(lo, hi, result, min_rate)
    if passes:
        search.mlffr, search.best = passes[-1]
    return search


def _next_rate(lo: float, hi: float, result: dict, min_rate: float) -> float:
    """Bisect once something passed; else go just under what the cores managed."""
    if lo:
        return (lo + hi) / 2
    delivered = result.get("delivered_pps") or 0.0
    rate = max(min_rate, min(0.97 * delivered, 0.8 * hi) if delivered else 0.5 * hi)
    return 0.8 * hi if rate >= hi else rate
