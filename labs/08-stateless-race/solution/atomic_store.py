"""Lab 8: a stateless NF's transition as one atomic step in Redis (the solution).

In NetStar's design the cores keep no state: every packet's transition reads the key's
value from a store (here a real Redis server), computes the new value with the NF's Python
``step``, and writes it back. Done naively (GET, compute, SET) two cores that read the same
value both write "that value + 1", and one update is lost: the ``remote-naive`` strategy.

This file makes the transition atomic with Redis's optimistic transactions:

* ``attempt``: ``read`` (``WATCH`` the key, ``GET`` it), compute, then ``write``
  (``MULTI`` / ``SET``, or ``DEL`` when the NF removes the key / ``RPUSH`` the packet's
  sequence number on the order list / ``EXEC``). If anyone wrote the key after the
  ``WATCH``, Redis refuses the whole ``EXEC`` (redis-py raises ``WatchError``): nothing is
  written, and the try returns None.
* ``transition``: tries again, from the value as it is now, until a try commits.

The rest (the client's connection, the store latency ``_travel``, the strategy
``lab8-remote``) is plumbing, built like the package's ``remote`` strategy
(``nfs/strategies/store.py``), which does the same with a Lua compare-and-set script.

Caveat: a retry re-runs the NF's ``step`` (cheap here); a try holds one pooled connection
from its ``WATCH`` to its ``EXEC``, so a core has at most ``--inflight`` connections busy.
"""

from __future__ import annotations

import time

from redis.exceptions import RedisError, WatchError

from nfs.base import NetworkFunction
from nfs.cores.store import StoreCore, run
from nfs.stores.clients import (
    STORE_ORDER_KEY,
    RedisClient,
    StoreProtocolError,
    decode_value,
    redis_key,
)
from nfs.strategies import Strategy
from nfs.strategies.spec import SHARED
from nfs.strategies.store import add_flags, view, worker_flags
from sequencer.dataplane import parse_address

STRATEGY_NAME = "lab8-remote"


class AtomicRedisClient(RedisClient):
    """A Redis client whose every transition is one atomic step (WATCH/MULTI/EXEC)."""

    def __init__(self, nf: NetworkFunction, host: str, port: int, delay_s: float = 0.0):
        # atomic=False: the package's client would load its own Lua script; this one
        # needs none (its apply below replaces the package's).
        super().__init__(nf, host, port, delay_s, atomic=False)

    async def read(self, pipe, key: bytes) -> bytes | None:
        """The first half of a try: watch ``key``, then read its value (None: absent)."""
        # WATCH first: from here on Redis notes any other client's write of the key (one
        # between a GET and a later WATCH would go unnoticed).
        await pipe.watch(key)
        return await pipe.get(key)  # runs at once: the pipeline is watching

    async def write(self, pipe, key: bytes, seq: int, new: tuple | None) -> bool:
        """The second half: write ``new`` (None: delete the key) and append ``seq`` to the
        order list, as one transaction; False, with nothing written, if the watched key
        was written by another client since :meth:`read` watched it."""
        # The write and its place in the order list, in one transaction: Redis runs
        # MULTI..EXEC as one step, and refuses all of it if the watched key changed.
        pipe.multi()
        if new is None:
            pipe.delete(key)
        else:
            pipe.set(key, self._pack_value(*new))
        pipe.rpush(STORE_ORDER_KEY, seq)
        try:
            await pipe.execute()
        except WatchError:
            return False
        return True

    async def attempt(self, key: bytes, seq: int, fields: tuple):
        """One try at packet ``seq``'s transition of ``key``: ``(old, new)`` if it was
        written, or None if another client wrote the key between this try's read and its
        write (then nothing was written: neither the value nor the order list)."""
        async with self._client().pipeline(transaction=True) as pipe:
            await self._travel()  # the trip to the store (the injected latency)
            old_bytes = await self.read(pipe, key)
            old = decode_value(self.nf, old_bytes, key) if old_bytes is not None else None
            new = self.nf.apply(old, fields)  # the NF's step runs here, in Python
            await self._travel()
            if not await self.write(pipe, key, seq, new):
                return None
            return old, new

    async def transition(self, key: bytes, seq: int, fields: tuple):
        """Packet ``seq``'s transition of ``key``, tried until a try commits: its
        ``(old, new)``; each refused try counts one retry in ``self.stats``."""
        while True:
            done = await self.attempt(key, seq, fields)
            if done is not None:
                return done
            self.stats["retries"] += 1  # someone else's write came first: read it again

    async def apply(self, seq: int, fields: tuple):
        """What the core calls for each packet (plumbing): the transition, timed."""
        start = time.perf_counter()
        key = redis_key(self.nf, self.nf.key(fields))
        try:
            # This core's packets of one key take turns (as the package's client does), so
            # only other cores' writes make a try fail.
            async with self._key_locks[key]:
                old, new = await self.transition(key, seq, fields)
        except StoreProtocolError as err:
            raise StoreProtocolError(f"redis at {self.address}: {err}") from None
        except (RedisError, OSError) as err:
            # One line for the core's results: the first line of redis-py's message.
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConnectionError(f"redis at {self.address}: {text}") from None
        self._record_latency(start)
        return old, new


# -- the lab's plumbing (leave it as it is): the strategy "lab8-remote" --


def make_core(nf: NetworkFunction, core: int, n_cores: int, args) -> StoreCore:
    """A store core (``nfs.cores.store``) whose client is this file's."""
    if args.store is None:
        raise ValueError(f"the {STRATEGY_NAME} strategy needs --store (Redis's address)")
    host, port = parse_address(args.store, "store address")
    client = AtomicRedisClient(nf, host, port, args.store_delay_us / 1e6)
    return StoreCore(STRATEGY_NAME, nf, core, n_cores, client, args.inflight)


# store="redis": the trial starts a real Redis server on the NF host's loopback, as for
# the package's "remote" strategy, and the oracle reads its final state and order list.
STRATEGY = Strategy(name=STRATEGY_NAME, summary="Redis, lab 8's atomic transition",
                    spray="lock", make_core=make_core, add_flags=add_flags,
                    worker_flags=worker_flags, runtime=run, view_kind=SHARED, view=view,
                    store="redis")
