"""Lab 8: a stateless NF's transition as one atomic step in Redis (the starter: complete
the three TODOs).

In NetStar's design the cores keep no state: every packet's transition reads the key's
value from a store (here a real Redis server), computes the new value with the NF's Python
``step``, and writes it back. Done naively (GET, compute, SET), two cores that read the same
value both write "that value + 1", and one update is lost: that is the ``remote-naive``
strategy you watched in step 1 of the README.

Redis cannot run the NF's Python step for you, but it can refuse a write whose read has
gone stale. Its optimistic transactions do that:

* ``WATCH key``: from now on, Redis remembers whether any other client writes ``key``;
* ``GET key``, then compute the new value here, in Python;
* ``MULTI``, the writes, ``EXEC``: Redis runs the queued writes as one step, or, if the
  watched key was written since the ``WATCH``, none of them (redis-py raises ``WatchError``).

A try (``attempt``, given) is ``read`` (TODO 1: WATCH and GET), the NF's step, and
``write`` (TODO 2: MULTI, the writes, EXEC); ``transition`` (TODO 3) repeats the try until
one commits. In redis-py (``redis.asyncio``), a pipeline created with
``pipeline(transaction=True)`` does all of this::

    await pipe.watch(key)         # WATCH (runs at once)
    value = await pipe.get(key)   # GET (runs at once, because the pipeline is watching)
    pipe.multi()                  # MULTI: the commands below are queued, not run
    pipe.set(key, data)           # queued
    await pipe.execute()          # EXEC: runs the queue; WatchError if the key changed

The rest (the client's connection, the store latency ``_travel``, the strategy
``lab8-remote``) is plumbing, built like the package's ``remote`` strategy
(``nfs/strategies/store.py`` and ``RedisClient`` in ``nfs/stores/clients.py``, which does
the same with a Lua compare-and-set script: read it, it is the other way to do this).

Caveat: a retry re-runs the NF's ``step`` (cheap here); a try holds one pooled connection
from its ``WATCH`` to its ``EXEC``, so a core has at most ``--inflight`` connections busy.
"""

from __future__ import annotations

import time

from redis.exceptions import RedisError, WatchError  # noqa: F401 (TODO 2 needs it)

from nfs.base import NetworkFunction
from nfs.cores.store import StoreCore, run
from nfs.stores.clients import (
    STORE_ORDER_KEY,  # noqa: F401 (TODO 2 needs it)
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
        # TODO 1: WATCH `key` (await pipe.watch(key)), then GET it and return what GET
        # read (None if the key is absent). The WATCH must come first: from the WATCH on,
        # Redis notes any other client's write of the key; one between the GET and a
        # later WATCH would go unnoticed.
        raise NotImplementedError("TODO 1: WATCH the key, then GET its value")

    async def write(self, pipe, key: bytes, seq: int, new: tuple | None) -> bool:
        """The second half: write ``new`` (None: delete the key) and append ``seq`` to the
        order list, as one transaction; False, with nothing written, if the watched key
        was written by another client since :meth:`read` watched it."""
        # TODO 2: start the transaction (pipe.multi()), queue
        #   - the new value: pipe.set(key, self._pack_value(*new)), or pipe.delete(key) if
        #     new is None (the NF removed the key);
        #   - the packet's place in the order list: pipe.rpush(STORE_ORDER_KEY, seq). The
        #     grader replays that list: an entry must be written if and only if its value is;
        # then run it: await pipe.execute(). If that raises WatchError, another core wrote
        # the key after your WATCH and Redis wrote nothing: return False. Else return True.
        raise NotImplementedError("TODO 2: MULTI, SET or DEL, RPUSH the order, EXEC; False "
                                  "on WatchError")

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
        # TODO 3: call `await self.attempt(key, seq, fields)` until it returns (old, new),
        # and return that. Each None is a refused try: count it (self.stats["retries"] += 1,
        # which the results report as store_retries) and try again: the new try reads the
        # value the other core wrote.
        raise NotImplementedError("TODO 3: retry the attempt until it commits")

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
