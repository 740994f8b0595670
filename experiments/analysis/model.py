"""The SCR throughput model, fitted: ``MLFFR(n) = n / (t + (n-1) c)``.

t is the time per packet on one core, c the time per packet to fast-forward a replica over
one other packet's history record. :func:`fit_model` fits both from measured (cores, pps)
points; :class:`ModelFit` predicts the throughput at any core count. Pure arithmetic, no
drawing: ``experiments.plots.cores`` draws the fitted curve and writes ``model_fit.csv``.

Caveats: the fit is unconstrained linear least squares on ``n / MLFFR(n)``, so a negative c
(superlinear scaling) is reported, not hidden, and where ``t + (n-1) c <= 0`` the model
predicts nothing (nan). It is only as good as its points: which points may enter it
(faithful, error-free SCR MLFFR measurements, no search ceilings) is the caller's choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


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

