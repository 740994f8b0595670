"""``rsspp``: RSS++, sharding whose indirection table is rebalanced by measured load.

The shim hashes each packet's state key into one of 128 buckets and sprays by its table
(``sequencer.rss``); every ``--rebalance-ms`` it moves buckets from the busiest to the
idlest core, and the cores hand the moved buckets' keys over (``nfs.cores.rsspp``). The
trial makes the plan file the shim writes the moves to and the cores read, in
``/dev/shm``, and removes it and its mailboxes at the end. The oracle's view is the union
of the cores' states, as for ``shard``: a key in two cores is a failed handover.

Caveat: a bucket moves whole, so a bucket whose one flow exceeds a core stays too big:
RSS++ beats RSS at moderate skew and stops, like it, at the hottest flow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.rsspp import RssppCore
from nfs.strategies.shard import view
from nfs.strategies.spec import SHARED, Strategy, TrialPlaces, TrialSettings


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, help="the rebalancing plan the shim writes")


def make_core(nf: NetworkFunction, core: int, n_cores: int, args: argparse.Namespace) -> Core:
    if args.plan is None:
        raise ValueError("the rsspp strategy needs --plan (the shim's rebalancing plan)")
    return RssppCore(nf, core, n_cores, args.plan)


def worker_flags(_settings: TrialSettings, places: TrialPlaces) -> tuple:
    return ("--plan", places.plan)


STRATEGY = Strategy(
    name="rsspp", summary="RSS++: sharding rebalanced by load, state handed over",
    spray="rsspp", make_core=make_core, add_flags=add_flags, worker_flags=worker_flags,
    view_kind=SHARED, view=view, rebalance_plan=True)
