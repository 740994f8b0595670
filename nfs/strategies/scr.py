"""``scr``: State-Compute Replication. Each core keeps a private replica of the state and
fast-forwards it over the history the sequencer stamps on every frame.

The shim sprays round-robin over the cores, and each frame carries the records of the
packets since that core's previous frame (N-1 in a steady round robin). With
``--recovery`` a core logs its records in a shared-memory ring and fetches the ones it lost
from its peers' rings; with ``--join`` it is a replacement core that starts from a peer's
snapshot (:mod:`nfs.cores.recovery`).

Caveat: the oracle checks every replica on its own (``REPLICAS``): equal to the sequential
run, or, where records were lost everywhere, consistent with the ground truth's gaps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.recovery import RecoveringReplica
from nfs.cores.replica import Replica
from nfs.strategies.spec import Strategy, TrialPlaces, TrialSettings


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recovery", metavar="PREFIX", type=Path,
                        help="log records in the ring <PREFIX>.core<i> (shared memory, made "
                             "by the trial) and fetch lost ones from the peers' rings")
    parser.add_argument("--join", action="store_true",
                        help="with --recovery: a replacement core, starting from a peer's "
                             "snapshot")


def make_core(nf: NetworkFunction, core: int, n_cores: int, args: argparse.Namespace) -> Core:
    if args.recovery is not None:
        return RecoveringReplica(nf, core, n_cores, args.recovery, joining=args.join)
    if args.join:
        raise ValueError("--join needs --recovery (a joining core fetches from its peers)")
    return Replica(nf, core, n_cores)


def worker_flags(settings: TrialSettings, places: TrialPlaces) -> tuple:
    return ("--recovery", places.record_logs) if settings.recovery else ()


STRATEGY = Strategy(
    name="scr", summary="replicas fast-forwarded over the sequencer's history (SCR)",
    spray="scr", history=True, make_core=make_core, add_flags=add_flags,
    worker_flags=worker_flags, recovery=True)
