"""MLFFR: the maximum loss-free forwarding rate, found by a search on the offered rate.

As in the paper's artifact, a rate "passes" when the loss (packets sent but never processed
by a core) is at most ``threshold`` (4 % by default). The search needs few trials, because a
trial at an overloaded rate also tells how fast the cores *did* process (the delivered rate):

1. a probe at ``start`` (meant to be above capacity); if it passes, the MLFFR is at least
   that (``ceiling`` in the result) and the search stops;
2. otherwise the next rate is just below the probe's delivered rate, and then the usual
   bisection between the highest passing and the lowest failing rate, until they are within
   ``precision`` of each other or ``max_steps`` trials ran.

**Unfaithful trials never set a bracket.** A trial whose fidelity mark says the
infrastructure, not the cores, was the limit (``faithful`` False) is run again once at the
same rate; if that is unfaithful too, the rate counts as failing (the testbed cannot vouch
for it, so the search stays below it) and the search says so (``unfaithful``: the rates it
could not measure). Retries count as steps. A result without a ``faithful`` key (a trial
that was not monitored) is taken as it is.

The trial itself is a callable (rate -> result dict with ``loss``, ``delivered_pps`` and
``faithful``), so the search is a pure function, unit-tested without a network.

Caveat: loss is measured over one finite trial, and a core's receive queue absorbs some
overload (``experiments.runtime.config.CORE_RX_QUEUE``): the shorter the trial, the more a
rate just above capacity can still pass. Trials of a few seconds keep that within the
precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_THRESHOLD = 0.04


@dataclass
class Search:
    """Outcome of one MLFFR search."""

    mlffr: float  # highest passing rate (0 when none passed)
    best: dict | None  # the trial result at that rate
    steps: list[tuple[float, dict]] = field(default_factory=list)  # every (rate, result)
    ceiling: bool = False  # the first probe passed: the MLFFR may be higher still
    unfaithful: list[float] = field(default_factory=list)  # rates never measured faithfully


def find_mlffr(
    trial: Callable[[float], dict],
    start: float,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    precision: float = 0.05,
    max_steps: int = 6,
    min_rate: float = 10.0,
) -> Search:
    """Search the MLFFR with ``trial(rate) -> {"loss": ..., "delivered_pps": ...}``."""
    if not (math.isfinite(start) and math.isfinite(min_rate) and min_rate > 0):
        raise ValueError(f"start rate {start} and minimum {min_rate} must be finite and > 0")
    if start < min_rate:
        raise ValueError(f"start rate {start} is below the minimum {min_rate}")
    if not 0 <= threshold < 1 or not 0 < precision < 1 or max_steps < 1:
        raise ValueError("need 0 <= threshold < 1, 0 < precision < 1 and max_steps >= 1")
    search = Search(0.0, None)
    lo, hi = 0.0, float("inf")
    rate = start
    while len(search.steps) < max_steps:
        result = trial(rate)
        search.steps.append((rate, result))
        if result.get("faithful") is False and len(search.steps) < max_steps:
            result = trial(rate)  # once more: a busy moment of the machine may have passed
            search.steps.append((rate, result))
        if result.get("faithful") is False:
            search.unfaithful.append(rate)
            hi = min(hi, rate)  # not vouched for: never a pass, so the search stays below
        elif result["loss"] <= threshold:
            lo, search.mlffr, search.best = rate, rate, result
            if all(tried == start for tried, _r in search.steps):  # the first rate tried
                search.ceiling = True
                break
        else:
            hi = rate
        if lo and (hi - lo) <= precision * hi:
            break
        if lo:
            rate = (lo + hi) / 2
        else:
            # Nothing passed yet: just under what the cores managed at this overload.
            delivered = result.get("delivered_pps") or 0.0
            rate = max(min_rate, min(0.97 * delivered, 0.8 * hi) if delivered else 0.5 * hi)
            if rate >= hi:
                rate = 0.8 * hi
        if rate < min_rate:
            break
    return search
