"""The SCR throughput model, fitted: ``MLFFR(n) = n / (t + (n-1) c)``.

t is the time per packet on one core, c the time per packet to fast-forward a replica over
one other packet's history record. :func:`fit_model` fits both from measured (cores, pps)
points; :class:`ModelFit` predicts the throughput at any core count, and with three or more
points gives 95 % confidence intervals for t and c and a confidence band for the curve
(ordinary least squares' intervals, Student's t from scipy). Pass every repeated search as
its own point: the repeats' scatter is what the intervals are made of. Pure arithmetic, no
drawing: ``experiments.plots.cores`` draws the fitted curve and band and writes
``model_fit.csv``.

Caveats: the fit is unconstrained linear least squares on ``n / MLFFR(n)``, so a negative c
(superlinear scaling) is reported, not hidden, and where ``t + (n-1) c <= 0`` the model
predicts nothing (nan). It is only as good as its points: which points may enter it
(faithful, error-free SCR MLFFR measurements, no search ceilings) is the caller's choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

#: The confidence level of the intervals and the band.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ModelFit:
    """``MLFFR(n) = n / (t + (n-1) c)`` fitted to measured points; t and c in s/packet."""

    t: float
    c: float
    max_rel_error: float
    points: tuple[tuple[int, float], ...]
    #: The residuals' standard deviation and the t quantile: the intervals' parts (None
    #: with fewer than 3 points, where no interval exists).
    sigma: float | None = None
    quantile: float | None = None

    def _sxx(self) -> tuple[float, float]:
        xs = [n - 1 for n, _ in self.points]
        mean = sum(xs) / len(xs)
        return mean, sum((x - mean) ** 2 for x in xs)

    @property
    def t_ci_us(self) -> tuple[float, float] | None:
        """The 95 % confidence interval of t, in µs (None with fewer than 3 points)."""
        if self.sigma is None:
            return None
        mean, sxx = self._sxx()
        half = self.quantile * self.sigma * math.sqrt(1 / len(self.points) + mean ** 2 / sxx)
        return (self.t - half) * 1e6, (self.t + half) * 1e6

    @property
    def c_ci_us(self) -> tuple[float, float] | None:
        """The 95 % confidence interval of c, in µs (None with fewer than 3 points)."""
        if self.sigma is None:
            return None
        half = self.quantile * self.sigma / math.sqrt(self._sxx()[1])
        return (self.c - half) * 1e6, (self.c + half) * 1e6

    def band(self, n: float) -> tuple[float, float] | None:
        """The 95 % confidence band of the model's throughput at ``n`` cores (low, high;
        nan where the band's time reaches 0); None with fewer than 3 points."""
        if self.sigma is None:
            return None
        mean, sxx = self._sxx()
        half = self.quantile * self.sigma * math.sqrt(1 / len(self.points)
                                                      + (n - 1 - mean) ** 2 / sxx)
        seconds = self.t + (n - 1) * self.c
        return (n / (seconds + half),
                n / (seconds - half) if seconds - half > 0 else math.nan)

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
    sigma = quantile = None
    if len(clean) >= 3:  # two points fit exactly: no residual, no interval
        residuals = [y - (t + c * x) for x, y in zip(xs, ys, strict=True)]
        sigma = math.sqrt(sum(r * r for r in residuals) / (len(clean) - 2))
        quantile = float(stats.t.ppf((1 + CONFIDENCE) / 2, len(clean) - 2))
    return ModelFit(t=t, c=c, max_rel_error=worst, points=tuple(clean), sigma=sigma,
                    quantile=quantile)

