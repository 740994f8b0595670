"""How the cores share the NF's state: one module per strategy, and their registry.

* Local state: ``scr`` (replicas fast-forwarded over the history), ``single`` (one core,
  the sequential baseline), ``lock`` (one shared table, a lock per key stripe), ``shard``
  (RSS: the switch's hash keeps each key on one core), ``rsspp`` (RSS++: the shim's
  indirection table, rebalanced by load, moves buckets with their state).
* State outside the cores (:mod:`~nfs.strategies.store`): ``service``, ``remote``,
  ``remote-naive`` and the ``-blocking`` forms.

Ask :func:`get` for a strategy by name: the shim, the controller's plan, the worker, the
trial, the sweeps and the oracle all do. See :mod:`~nfs.strategies.spec` for what a
strategy declares and :mod:`~nfs.strategies.registry` for how to add one.
"""

from nfs.strategies.registry import get, names, register
from nfs.strategies.spec import REPLICAS, SHARED, Strategy, TrialPlaces

__all__ = ["REPLICAS", "SHARED", "Strategy", "TrialPlaces", "get", "names", "register"]
