"""The strategy registry: every strategy by name, and the one place that lists them.

Adding a strategy is one module in this package (it declares a :class:`~.spec.Strategy`
as ``STRATEGY``, or several as ``STRATEGIES``) and one line in :data:`MODULES`. A test
may :func:`register` a strategy of its own for the duration of a ``with`` block; a plugin
(:mod:`nfs.plugins`) may :func:`add` one for good.

Caveat: the registry is a module-level dict; registering is not thread-safe (nothing
registers at run time but tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

from nfs.strategies import lock, rsspp, scr, shard, single, store
from nfs.strategies.spec import Strategy

#: The strategy modules, in the order --help and the tables list them.
MODULES: tuple[ModuleType, ...] = (scr, lock, shard, rsspp, single, store)

_REGISTRY: dict[str, Strategy] = {}


def _declared(module: ModuleType) -> tuple[Strategy, ...]:
    if hasattr(module, "STRATEGY"):
        return (module.STRATEGY,)
    return tuple(module.STRATEGIES)


def add(strategy: Strategy) -> None:
    """Register ``strategy`` for good (a plugin's, :mod:`nfs.plugins`); ValueError if its
    name is taken by another strategy."""
    if _REGISTRY.get(strategy.name, strategy) is not strategy:
        raise ValueError(f"strategy {strategy.name!r} is registered twice")
    _REGISTRY[strategy.name] = strategy


for _module in MODULES:
    for _strategy in _declared(_module):
        add(_strategy)


def names() -> tuple[str, ...]:
    """Every registered strategy's name."""
    return tuple(_REGISTRY)


def get(name: str) -> Strategy:
    """The strategy called ``name``; ValueError (one line, with the choices) if none is."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(names())}"
                         ) from None


@contextlib.contextmanager
def register(strategy: Strategy) -> Iterator[Strategy]:
    """Register ``strategy`` for the ``with`` block (tests: a toy strategy)."""
    if strategy.name in _REGISTRY:
        raise ValueError(f"strategy {strategy.name!r} is registered twice")
    add(strategy)
    try:
        yield strategy
    finally:
        del _REGISTRY[strategy.name]
