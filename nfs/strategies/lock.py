"""``lock``: one shared state for all cores, a lock per key stripe (the paper's baseline).

The shim sprays round-robin with an empty history; the trial makes one
:class:`~nfs.cores.shared_table.SharedTable` in ``/dev/shm`` before the cores start, and
dumps it (``shared_state.json``) for the oracle at the end. ``--transfer-work`` models the
cache-line transfer a key's state costs when it moves between cores (its default's basis:
``experiments.runtime.calibration``). With the trial's CPU quota known (``--quota-us``), the
cores lock quota-aware (``nfs.cores.lock``), so that the emulation's quota does not stall
lock waiters in a way real cores never would.

Caveat: the transfer cost is a knob; the sweeps measure lock at several (a sensitivity
figure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.lock import LockCore, throttle_counter
from nfs.cores.shared_table import SharedTable
from nfs.strategies.spec import SHARED, Strategy, TrialPlaces, TrialSettings

SHARED_STATE_JSON = "shared_state.json"  # the table's contents at the end of a trial


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", type=Path, help="the shared state's file")
    parser.add_argument("--transfer-work", type=int, default=0,
                        help="spin rounds when a key's state moved from another core")
    parser.add_argument("--quota-us", type=int, default=0,
                        help="quota-aware locking: the core's CPU quota per period, µs (0: "
                             "off; see nfs.cores.lock)")
    parser.add_argument("--period-us", type=int, default=0,
                        help="quota-aware locking: the quota's period, µs")
    parser.add_argument("--quota-stat-fd", type=int, default=None,
                        help="quota-aware locking: an open descriptor of the core's cgroup "
                             "cpu.stat (the trial passes it; without it, plain locking)")


def make_core(nf: NetworkFunction, core: int, n_cores: int, args: argparse.Namespace) -> Core:
    if args.table is None:
        raise ValueError("the lock strategy needs --table (the shared state's file)")
    table = SharedTable(args.table, nf.key_format, nf.value_format)
    if args.quota_us and not 0 < args.quota_us <= args.period_us:
        raise ValueError("--quota-us needs a --period-us at least as long")
    throttles = (None if args.quota_stat_fd is None
                 else throttle_counter(args.quota_stat_fd))
    return LockCore(nf, core, n_cores, table, args.transfer_work,
                    quota_ns=args.quota_us * 1000, period_ns=args.period_us * 1000,
                    throttles=throttles)


def worker_flags(settings: TrialSettings, places: TrialPlaces) -> tuple:
    quota = settings.lock_quota_us if settings.lock_quota_aware else 0
    return ("--table", places.table, "--transfer-work", settings.transfer_work,
            "--quota-us", quota, "--period-us", settings.quota_period_us)


def view(_cores: list[dict], read) -> tuple:
    return read(SHARED_STATE_JSON), "shared"


STRATEGY = Strategy(
    name="lock", summary="one shared table, a lock per key stripe", spray="lock",
    make_core=make_core, add_flags=add_flags, worker_flags=worker_flags,
    view_kind=SHARED, view=view, shared_table=True, quota_stat=True)
