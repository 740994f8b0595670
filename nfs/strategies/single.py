"""``single``: the sequential baseline, SCR on one core (no history to fast-forward).

Every packet goes to the one core, stamped by the same shim as every other strategy, so
``single`` pays the same infrastructure cost: the MLFFR every speed-up is measured against.

Caveat: it is also the strategy primary-backup runs (``experiments/failover.py``), whose
worker options (``--replicate-to``, ``--backup-listen``) the worker handles itself.
"""

from __future__ import annotations

import argparse

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.replica import Replica
from nfs.strategies.spec import Strategy


def make_core(nf: NetworkFunction, core: int, n_cores: int, args: argparse.Namespace) -> Core:
    return Replica(nf, core, n_cores)


STRATEGY = Strategy(
    name="single", summary="one core, the sequential baseline", spray="single", history=True,
    make_core=make_core, fixed_cores=1)
