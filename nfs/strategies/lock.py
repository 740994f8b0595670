"""``lock``: one shared state for all cores, a lock per key stripe (the paper's baseline).

The shim sprays round-robin with an empty history; the trial makes one
:class:`~nfs.cores.shared_table.SharedTable` in ``/dev/shm`` before the cores start, and
dumps it (``shared_state.json``) for the oracle at the end. ``--transfer-work`` models the
cache-line transfer a key's state costs when it moves between cores.

Caveat: the transfer cost is a free knob (see the README's caveats).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.lock import LockCore
from nfs.cores.shared_table import SharedTable
from nfs.strategies.spec import SHARED, Strategy, TrialPlaces, TrialSettings

SHARED_STATE_JSON = "shared_state.json"  # the table's contents at the end of a trial


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", type=Path, help="the shared state's file")
    parser.add_argument("--transfer-work", type=int, default=0,
                        help="spin rounds when a key's state moved from another core")


def make_core(nf: NetworkFunction, core: int, n_cores: int, args: argparse.Namespace) -> Core:
    if args.table is None:
        raise ValueError("the lock strategy needs --table (the shared state's file)")
    table = SharedTable(args.table, nf.key_format, nf.value_format)
    return LockCore(nf, core, n_cores, table, args.transfer_work)


def worker_flags(settings: TrialSettings, places: TrialPlaces) -> tuple:
    return ("--table", places.table, "--transfer-work", settings.transfer_work)


def view(_cores: list[dict], read) -> tuple:
    return read(SHARED_STATE_JSON), "shared"


STRATEGY = Strategy(
    name="lock", summary="one shared table, a lock per key stripe", spray="lock",
    make_core=make_core, add_flags=add_flags, worker_flags=worker_flags,
    view_kind=SHARED, view=view, shared_table=True)
