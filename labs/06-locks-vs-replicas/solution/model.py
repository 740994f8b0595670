"""Lab 6: a throughput model of SCR and of the lock, to explain what ``measure.py`` shows.

All times are microseconds of CPU time per packet on one core; every function returns
packets per second for cores that each have a whole CPU (an emulated core with a share of
a CPU carries that share of it, which cancels in every ratio of this lab).

* **SCR** (the paper's model): each core processes its own packet (``t``) and first
  fast-forwards its replica over the history, one record of each of the other ``n - 1``
  cores' packets (``c`` each). ``n`` packets take each core ``t + (n-1) c``, so the
  ``n`` cores together carry ``MLFFR(n) = n / (t + (n-1) c)``.
* **The lock**: one shared table. A packet costs ``t`` (the lock and the NF's work) plus,
  when its key's state was last written by another core, the transfer ``x`` of that state
  (a cache line on a real CPU). Under round-robin spray a key's previous packet went to one
  of the other cores ``n - 1`` times out of ``n``.

Caveats: a model, not a measurement. It leaves out everything that is neither ``t``, ``c``
nor ``x``: waiting for a lock another core holds, the infrastructure's limits, the CPU
quota's periods. The hot-key bound assumes the lock is held only for the transfer.
"""

from __future__ import annotations

import math

US_PER_S = 1e6


def scr_mlffr(n: int, t_us: float, c_us: float) -> float:
    """SCR's throughput on ``n`` cores (packets/s): ``n / (t + (n-1) c)``."""
    return n * US_PER_S / (t_us + (n - 1) * c_us)


def moved_share(n: int) -> float:
    """The share of packets whose key's state another core wrote last, under round-robin
    spray over ``n`` cores (a key's previous packet landed on any core alike)."""
    return (n - 1) / n


def lock_mlffr(n: int, t_us: float, transfer_us: float, share_moved: float | None = None,
               hot_share: float | None = None) -> float:
    """The lock's throughput on ``n`` cores (packets/s).

    Each packet costs ``t`` plus the transfer on the ``share_moved`` of packets whose key
    moved (default: :func:`moved_share`); the ``n`` cores work in parallel. The transfer
    happens inside the lock, so the packets of one key pass one at a time: with
    ``hot_share`` (the hottest key's share of the traffic) the total is also at most what
    that key's lock lets through, ``1 / (hot_share * share_moved * transfer)``.
    """
    share = moved_share(n) if share_moved is None else share_moved
    rate = n * US_PER_S / (t_us + share * transfer_us)
    held_us = share * transfer_us  # the lock time one packet of the hot key needs
    if hot_share and held_us > 0:
        rate = min(rate, US_PER_S / (hot_share * held_us))
    return rate


def crossover(n: int, t_scr_us: float, c_us: float, t_lock_us: float,
              share_moved: float | None = None) -> float:
    """The smallest transfer cost (µs) at which the lock carries no more than SCR on ``n``
    cores: ``0.0`` if the lock loses even with free transfers, ``math.inf`` if it never
    loses (on one core no key moves, so the transfer cannot matter)."""
    share = moved_share(n) if share_moved is None else share_moved
    gap = t_scr_us + (n - 1) * c_us - t_lock_us  # what SCR pays more per packet
    if gap <= 0:
        return 0.0
    if share <= 0:
        return math.inf
    return gap / share
