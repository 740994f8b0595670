"""The strategies a trial can run, by name, and what the switch and shim do for each.

* Local state: ``scr`` (replicas fast-forwarded over the history), ``single`` (SCR on one
  core), ``lock`` (one shared-memory table, a lock per key stripe), ``shard`` (RSS: the
  switch's hash keeps each key on one core).
* State outside the cores (:data:`STORE_STRATEGIES`, run by :mod:`nfs.async_core`):
  ``service`` (a dedicated state-service process), ``remote`` (a Redis server, with an
  atomic compare-and-set), ``remote-naive`` (Redis with a racy read-modify-write), and the
  ``-blocking`` forms of the first two, which wait for each answer before the next packet.

The store strategies need no history and no hash: the switch sprays and the shim stamps
exactly as for ``lock`` (:func:`spray_mode`).
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_STRATEGIES = ("scr", "lock", "shard", "single")


@dataclass(frozen=True)
class StoreStrategy:
    """A strategy whose state is outside the cores: which store, which runtime."""

    name: str
    store: str  # a kind of nfs.stores.make_store
    blocking: bool = False


STORE_STRATEGIES = {
    s.name: s
    for s in (
        StoreStrategy("service", "service"),
        StoreStrategy("service-blocking", "service", blocking=True),
        StoreStrategy("remote", "redis"),
        StoreStrategy("remote-blocking", "redis", blocking=True),
        StoreStrategy("remote-naive", "redis-naive"),
    )
}
STRATEGIES = LOCAL_STRATEGIES + tuple(STORE_STRATEGIES)


def spray_mode(strategy: str) -> str:
    """The controller's and the shim's mode for ``strategy``."""
    return "lock" if strategy in STORE_STRATEGIES else strategy
