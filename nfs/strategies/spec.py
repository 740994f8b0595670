"""What a strategy declares about itself: :class:`Strategy`.

A strategy is how the cores share the NF's state. Everything that differs between
strategies is declared here, once, by the strategy's own module (``nfs/strategies/<name>.py``),
and every part of the testbed asks :mod:`nfs.strategies` for it:

* the **shim and the controller**: ``spray`` (how the switch spreads the packets, one of the
  controller's modes) and ``history`` (whether frames carry the last N-1 records);
* the **worker**: ``add_flags`` (its command-line options) and ``make_core`` (the core object,
  built from the parsed options), and ``runtime`` (its receive loop);
* the **trial**: ``worker_flags`` (the options a trial passes each core), ``shared_table``
  and ``store`` (what the trial sets up before the cores start), ``fixed_cores`` and
  ``recovery`` (what it may be combined with);
* the **oracle**: ``view`` (which state the sequential reference is compared with: each
  replica, or the one shared state a strategy without replicas ends with).

Caveat: ``worker_flags`` gets the trial's configuration duck-typed (the attributes it reads
are named in :class:`TrialSettings`), because ``nfs`` sits below ``experiments``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nfs.base import NetworkFunction
from nfs.cores.base import Core, run

#: The oracle's kinds of view (``Strategy.view_kind``): one view per replica, or one state.
REPLICAS, SHARED = "replicas", "shared"


class TrialSettings(Protocol):
    """What of a trial's configuration a strategy's worker flags may read."""

    cores: int
    transfer_work: int
    lock_quota_aware: bool
    lock_quota_us: int  # each core's CPU quota per period (0: no quota)
    quota_period_us: int
    inflight: int
    store_delay_us: float
    recovery: bool
    watch_cores: bool


@dataclass(frozen=True)
class TrialPlaces:
    """What the trial set up for the cores before it starts them (None: not set up)."""

    table: Path | None = None  # the shared table (``shared_table`` strategies)
    record_logs: Path | None = None  # the record rings' prefix (recovery)
    store: str | None = None  # the store's HOST:PORT (``store`` strategies)
    plan: Path | None = None  # the shim's rebalancing plan (``rebalance_plan`` strategies)


def no_flags(_parser: argparse.ArgumentParser) -> None:
    """A strategy whose cores take no options of their own."""


def no_worker_flags(_settings: TrialSettings, _places: TrialPlaces) -> tuple:
    return ()


#: The oracle's view of a strategy without replicas: (the one state, its name). It gets the
#: cores' result dicts and a reader of the run's JSON result files (by file name).
ViewFunction = Callable[[list[dict], Callable[[str], Any]], tuple[Any, str]]


@dataclass(frozen=True)
class Strategy:
    """One strategy, as every layer needs to know it (see the module's docstring)."""

    name: str
    summary: str  # one line, for --help and the README
    spray: str  # the controller's mode: "scr", "lock", "shard" or "single"
    make_core: Callable[[NetworkFunction, int, int, argparse.Namespace], Core]
    history: bool = False  # frames carry the records since the core's previous frame
    add_flags: Callable[[argparse.ArgumentParser], None] = no_flags
    worker_flags: Callable[[TrialSettings, TrialPlaces], tuple] = no_worker_flags
    runtime: Callable[[Core, str, int], None] = run
    #: The oracle: REPLICAS (each core's replica is checked) or SHARED (``view`` gives the
    #: one state the strategy ends with).
    view_kind: str = REPLICAS
    view: ViewFunction | None = None
    fixed_cores: int | None = None  # runs on exactly this many cores
    recovery: bool = False  # supports loss recovery and core watching
    shared_table: bool = False  # the trial makes a shared-memory table for the cores
    #: the trial passes each core a descriptor of its CPU quota's ``cpu.stat``
    #: (``--quota-stat-fd``): the lock's quota-aware locking reads the periods from it
    quota_stat: bool = False
    #: the trial makes a plan file for the shim's rebalancing moves (``rsspp``)
    rebalance_plan: bool = False
    store: str | None = None  # the outside store the trial starts (a kind of make_store)
    blocking: bool = False  # a store strategy that waits for each answer

    def __post_init__(self):
        if self.view_kind not in (REPLICAS, SHARED):
            raise ValueError(f"{self.name}: view_kind must be {REPLICAS!r} or {SHARED!r}")
        if (self.view_kind == SHARED) != (self.view is not None):
            raise ValueError(f"{self.name}: a {SHARED!r} view needs its view function, "
                             "and only it")

    def core_args(self, argv: tuple[str, ...] = ()) -> argparse.Namespace:
        """This strategy's worker options parsed from ``argv`` (its defaults for none): what
        ``make_core`` takes, for a core built in-process (tests, offline runs)."""
        parser = argparse.ArgumentParser(prog=f"{self.name} core", add_help=False)
        self.add_flags(parser)
        return parser.parse_args(list(argv))

    def check_cores(self, n_cores: int) -> None:
        """ValueError if this strategy cannot run on ``n_cores`` cores."""
        if self.fixed_cores is not None and n_cores != self.fixed_cores:
            count = "one core" if self.fixed_cores == 1 else f"{self.fixed_cores} cores"
            raise ValueError(f"the {self.name} strategy runs on exactly {count}")
