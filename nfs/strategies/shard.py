"""``shard``: RSS sharding. The switch's hash keeps each key on one core, which owns it.

The shim sends the original frame with a trailer (sequence number, timestamp) and no
history; the controller installs a select group hashing the NF's ``shard_fields``.

Caveat: the oracle's view is the union of the shards, and a key found in two shards is a
failure of the hash to keep a key on one core (reported as "overlapping keys").
"""

from __future__ import annotations

import argparse

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.shard import ShardCore
from nfs.strategies.spec import SHARED, Strategy


def make_core(nf: NetworkFunction, core: int, n_cores: int, args: argparse.Namespace) -> Core:
    return ShardCore(nf, core, n_cores)


def view(cores: list[dict], _read) -> tuple:
    state: dict = {}
    for core in cores:
        overlap = set(state) & set(core["state"])
        if overlap:  # a key in two shards: the hash did not keep a key on one core
            return {"overlapping keys": sorted(overlap)[:10]}, "shards"
        state.update(core["state"])
    return dict(sorted(state.items())), "shards"


STRATEGY = Strategy(
    name="shard", summary="RSS: the switch's hash keeps each key on one core",
    spray="shard", make_core=make_core, view_kind=SHARED, view=view)
