"""The NetStar strategies: the state lives outside the cores, in a store they query.

* ``service``: a dedicated state-service process (send-query-wait-response instead of
  lock-access), :mod:`nfs.stores.service`;
* ``remote``: a Redis server, each transition an atomic compare-and-set script;
* ``remote-naive``: Redis with a racy read-modify-write (loses updates: the access-order
  check catches it);
* ``service-blocking``, ``remote-blocking``: the same stores, one packet at a time.

The cores run on an asyncio runtime with up to ``--inflight`` packets in flight
(:mod:`nfs.cores.store`). The shim sprays as for ``lock`` (no history, no hash). The trial
starts the store before the cores; the oracle compares the store's final state
(``store.json``) and every verdict with the sequential run, and the access order with it.

Caveat: Redis's own CPU is outside the cores' quotas (the state service is one more core).
"""

from __future__ import annotations

import argparse

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.store import DEFAULT_INFLIGHT, StoreCore, run
from nfs.strategies.spec import SHARED, Strategy, TrialPlaces, TrialSettings

MAX_STORE_DELAY_US = 10_000_000


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="the store's HOST:PORT (loopback)")
    parser.add_argument("--inflight", type=int, default=DEFAULT_INFLIGHT,
                        help="packets in flight per core (async runtime)")
    parser.add_argument("--store-delay-us", type=float, default=0.0,
                        help="latency injected before each store query")


def worker_flags(settings: TrialSettings, places: TrialPlaces) -> tuple:
    return ("--store", places.store, "--inflight", settings.inflight,
            "--store-delay-us", settings.store_delay_us)


def view(_cores: list[dict], read) -> tuple:
    return read("store.json")["state"], "store"


def _strategy(name: str, store: str, summary: str, blocking: bool = False) -> Strategy:
    def make_core(nf: NetworkFunction, core: int, n_cores: int,
                  args: argparse.Namespace) -> Core:
        if args.store is None:
            raise ValueError(f"the {name} strategy needs --store (the store's address)")
        if args.inflight < 1 or not 0 <= args.store_delay_us <= MAX_STORE_DELAY_US:
            raise ValueError("--inflight must be >= 1 and --store-delay-us in "
                             f"0..{MAX_STORE_DELAY_US}")
        # Imported here, not at the top: redis-py costs every worker and shim ~0.1 s of
        # start-up, and only a store strategy's cores use it.
        from nfs.stores.clients import make_store

        client = make_store(store, nf, args.store, args.store_delay_us / 1e6)
        return StoreCore(name, nf, core, n_cores, client, args.inflight, blocking)

    return Strategy(name=name, summary=summary, spray="lock", make_core=make_core,
                    add_flags=add_flags, worker_flags=worker_flags, runtime=run,
                    view_kind=SHARED, view=view, store=store, blocking=blocking)


STRATEGIES = (
    _strategy("service", "service", "a dedicated state-service process (NetStar)"),
    _strategy("service-blocking", "service", "the state service, one packet at a time",
              blocking=True),
    _strategy("remote", "redis", "a Redis server, atomic compare-and-set"),
    _strategy("remote-blocking", "redis", "Redis, one packet at a time", blocking=True),
    _strategy("remote-naive", "redis-naive", "Redis, racy read-modify-write (loses updates)"),
)
