"""The MLFFR search's bias and resolution, measured against a simulated core.

No network: :func:`find_mlffr` (``experiments.analysis.mlffr``) searches a simulated trial
of the sweeps' shape (:class:`Shape`: cores of ``per_core`` pps each, ``duration`` s per
trial, a receive queue of ``queue`` frames per core, and a capacity that varies from trial
to trial by a normal factor of standard deviation ``noise``, the run-to-run noise this
machine shows). A simulated trial reports both of the search's loss figures as a real
one would:

* ``loss`` (packets never processed): the queues absorb ``cores x queue`` frames of
  overload, and the frames still queued at the end count as processed;
* ``steady_loss`` (the deficit over the window after the warm-up): a backlog exists from
  the first overloaded instant, so the cores run flat out through the window.

:func:`measure` runs ``runs`` points, each measured as the sweeps do (the median of
``repeats`` confirmed searches), and gives the ratio of the reported MLFFR to the true one
(``capacity / (1 - threshold)``: the rate whose loss is exactly the threshold): its mean is
the search's **bias**, its 5-95 % range its **resolution** (two strategies whose true
MLFFRs differ by less cannot be told apart by one point). ``experiments/bench_mlffr.py``
prints it; the report quotes it.

Caveats: a model, not the testbed: the capacity is steady within a trial and its noise is
normal, where the real cores' has bursts (CPU quota periods, the other CPU's load). It
measures the search procedure's own bias and spread under that noise.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from experiments.analysis.mlffr import DEFAULT_THRESHOLD, find_mlffr


@dataclass(frozen=True)
class Shape:
    """A sweep's trials, simulated."""

    cores: int = 4
    per_core: float = 900.0
    duration: float = 2.0
    queue: int = 90  # frames per core
    noise: float = 0.1
    precision: float = 0.06
    max_steps: int = 5

    @property
    def true_mlffr(self) -> float:
        return self.cores * self.per_core / (1 - DEFAULT_THRESHOLD)


def simulated_trial(shape: Shape, rng: random.Random, steady: bool):
    """A trial of ``shape``: rate -> the result dict a live trial gives."""
    capacity = shape.cores * shape.per_core

    def trial(rate: float) -> dict:
        actual = capacity * max(0.05, rng.gauss(1.0, shape.noise))
        offered = rate * shape.duration
        # The queues absorb cores x queue frames; what is queued at the end still counts.
        processed = min(offered, actual * shape.duration + shape.cores * shape.queue)
        result = {"loss": 1 - processed / offered, "delivered_pps": min(rate, actual),
                  "faithful": True}
        if steady:  # overloaded from the start: a backlog all through the window
            result["steady_loss"] = max(0.0, 1 - actual / rate)
        return result

    return trial


def point(shape: Shape, rng: random.Random, repeats: int, steady: bool) -> tuple[float, int]:
    """One point as the sweeps measure it: the median of ``repeats`` searches, and the
    trials it took."""
    found, trials = [], 0
    for _ in range(repeats):
        search = find_mlffr(simulated_trial(shape, rng, steady),
                            1.3 * shape.cores * shape.per_core,
                            precision=shape.precision, max_steps=shape.max_steps)
        found.append(search.mlffr)
        trials += len(search.steps)
    return statistics.median(found), trials


@dataclass(frozen=True)
class Measured:
    """The reported/true ratio of ``runs`` simulated points."""

    noise: float
    repeats: int
    steady: bool
    mean: float
    low: float  # 5 % quantile
    high: float  # 95 % quantile
    trials: float  # per point

    def row(self) -> list:
        return [f"{self.noise:g}", self.repeats, "loss + steady" if self.steady else "loss only",
                f"{self.mean:.3f}", f"{self.low:.2f} – {self.high:.2f}",
                f"{self.high - self.low:.2f}", f"{self.trials:.1f}"]


HEADERS = ["noise σ", "searches", "judged on", "mean reported/true", "5–95 %", "width",
           "trials/point"]


def measure(shape: Shape, repeats: int, steady: bool, runs: int = 400,
            seed: int = 1) -> Measured:
    """``runs`` simulated points of ``shape``: the spread of reported/true."""
    rng = random.Random(seed)
    points = [point(shape, rng, repeats, steady) for _ in range(runs)]
    ratios = sorted(rate / shape.true_mlffr for rate, _trials in points)
    cuts = statistics.quantiles(ratios, n=20, method="inclusive")
    return Measured(shape.noise, repeats, steady, statistics.fmean(ratios), cuts[0], cuts[-1],
                    statistics.fmean(trials for _rate, trials in points))
