"""Lab 1: a core's MLFFR, found by bisection (the solution).

The MLFFR (maximum loss-free forwarding rate) of a core is the highest offered rate at
which it loses at most a small share of the packets: 4 % (``THRESHOLD``), as in the SCR
paper's artifact. You found it by hand with ``send PACKETS RATE``; :func:`find_mlffr` does
the same search on its own, given a way to measure one rate:

    measure(rate) -> (loss, faithful)

``loss`` is the share of the packets sent that the core never processed (0.0 .. 1.0), and
``faithful`` says whether the testbed itself kept up during that trial (the generator sent
at the rate asked, the switch, the sequencer and the sink dropped nothing and were not
saturated, the machine had idle CPU). An unfaithful point measures the machine, not the
core: its loss says nothing, whether it is high or low.

The grader calls your functions with simulated cores whose capacity it knows (some noisy,
some with unfaithful points); nothing here needs a network.

Caveat: bisection assumes that the loss grows with the rate. On a real testbed two trials
at the same rate differ by a few % of loss, so near the MLFFR a rate may pass once and fail
the next time: the answer is the MLFFR to within that noise, not exactly.
"""

from __future__ import annotations

from collections.abc import Callable

THRESHOLD = 0.04  # the largest loss a rate may have and still pass (4 %)

#: measure(rate in pps) -> (loss as a fraction, faithful)
Measure = Callable[[float], tuple[float, bool]]


def faithful_loss(measure: Measure, rate: float, retries: int = 2) -> float | None:
    """The loss at ``rate``, measured faithfully: measure once, and again (at most
    ``retries`` more times) while the point is unfaithful. None if no try was faithful:
    then nothing is known about the core at that rate."""
    for _try in range(1 + retries):
        loss, faithful = measure(rate)
        if faithful:
            return loss
    return None


def passes(measure: Measure, rate: float, threshold: float = THRESHOLD,
           retries: int = 2) -> bool:
    """Whether ``rate`` passes: measured faithfully, with a loss of at most ``threshold``.
    A rate never measured faithfully does not pass: the testbed cannot vouch for it."""
    loss = faithful_loss(measure, rate, retries)
    return loss is not None and loss <= threshold


def find_mlffr(measure: Measure, lo: float, hi: float, *, threshold: float = THRESHOLD,
               precision: float = 0.02, retries: int = 2) -> float:
    """The MLFFR in ``[lo, hi]``: the highest rate that passes (:func:`passes`), to within
    ``precision`` (a fraction of the rate), by bisection.

    The search keeps ``lo`` at the highest rate known to pass and ``hi`` at the lowest
    known not to. Measure ``lo`` first: if it does not pass, no rate in the range does:
    return 0.0. Then ``hi``: if it passes, return ``hi`` (the MLFFR may be higher still).
    Then measure the middle and move ``lo`` or ``hi`` to it, until
    ``hi - lo <= precision * hi``; return ``lo``, a rate that passed."""
    if not passes(measure, lo, threshold, retries):
        return 0.0
    if passes(measure, hi, threshold, retries):
        return hi
    while hi - lo > precision * hi:
        mid = (lo + hi) / 2
        if passes(measure, mid, threshold, retries):
            lo = mid
        else:
            hi = mid
    return lo
