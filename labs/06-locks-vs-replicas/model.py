"""Lab 6: a throughput model of SCR and of the lock (the starter: complete the four TODOs).

You will use these functions to explain what ``measure.py`` shows, and ``make check``
grades them on a grid of cases. All times are microseconds (µs) of CPU time per packet on
one core; every function returns packets per second (pps) for cores that each have a whole
CPU. (An emulated core gets a tenth of a CPU, so it carries a tenth of that; in a ratio of
two configurations the tenth cancels.)

* **SCR** (the paper's model): each core processes its own packet (``t``) and first
  fast-forwards its replica over the history: one record for each packet the other
  ``n - 1`` cores got since its last one (``c`` each).
* **The lock**: one shared table for all cores. A packet costs ``t`` (taking the lock, the
  NF's work), plus the transfer ``x`` of its key's state when another core wrote that
  state last (on a real CPU: a cache line travelling between cores).

Caveat: a model, not a measurement. It leaves out everything that is neither ``t``, ``c``
nor ``x``: waiting for a lock another core holds, the infrastructure, the CPU quotas.
"""

from __future__ import annotations

import math  # noqa: F401  (you may want math.inf in TODO 4)

US_PER_S = 1e6  # a rate in pps is US_PER_S / (µs per packet)


def scr_mlffr(n: int, t_us: float, c_us: float) -> float:
    """SCR's throughput on ``n`` cores, in packets per second.

    Round-robin spray gives each core one packet in ``n``. For each of its own packets a
    core pays ``t_us``, plus ``c_us`` for each history record it applies first."""
    # TODO 1: while the n cores together carry n packets, how many µs does each core
    # spend? (its own packet, and the records of the other cores' packets). Return the
    # n cores' rate in pps: the paper's MLFFR(n) = n / (t + (n-1) c), with t and c in µs.
    raise NotImplementedError("TODO 1: scr_mlffr must return the paper's model, in pps")


def moved_share(n: int) -> float:
    """The share of packets whose key's state was last written by another core, under
    round-robin spray over ``n`` cores, if a key's previous packet is equally likely to
    have gone to any of the ``n`` cores."""
    # TODO 2: on how many of the n cores is the previous packet of the key NOT on this
    # core? Return that share (0 on one core: there is nobody to take the state from).
    raise NotImplementedError("TODO 2: moved_share must say how often a key moves")


def lock_mlffr(n: int, t_us: float, transfer_us: float, share_moved: float | None = None,
               hot_share: float | None = None) -> float:
    """The lock's throughput on ``n`` cores, in packets per second.

    Every packet costs ``t_us``; the ``share_moved`` of packets whose key moved (default:
    ``moved_share(n)``) pay ``transfer_us`` more. The ``n`` cores work in parallel.

    The transfer happens inside the key's lock, so the packets of one key pass one at a
    time. ``hot_share`` (optional): the share of all packets that the hottest key gets. Its
    lock is then busy ``share_moved * transfer_us`` µs per packet of that key, on average,
    which bounds the total rate too."""
    # TODO 3: the average µs one packet costs a core (t, plus the transfer for the share
    # that moved); the n cores' rate in pps. Then, if hot_share is given (and the lock is
    # held at all: share_moved * transfer_us > 0), the hot key's lock can be busy at most
    # 1e6 µs per second: return the smaller of the two rates.
    raise NotImplementedError("TODO 3: lock_mlffr must return the lock's model, in pps")


def crossover(n: int, t_scr_us: float, c_us: float, t_lock_us: float,
              share_moved: float | None = None) -> float:
    """The smallest transfer cost (µs, >= 0) at which the lock carries no more than SCR on
    ``n`` cores (``share_moved`` as in :func:`lock_mlffr`; no hot-key bound here).

    ``0.0`` if the lock carries no more than SCR even with free transfers; ``math.inf`` if
    no transfer cost makes it lose (on one core no key ever moves)."""
    # TODO 4: compare what one packet costs a core under each strategy on n cores; solve
    # "lock's cost per packet == SCR's" for the transfer. Mind the two special cases.
    raise NotImplementedError("TODO 4: crossover must find the transfer cost where the "
                              "lock starts to lose")
