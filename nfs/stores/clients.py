"""Async clients of the outside state stores: what an NF core runs when its state is elsewhere.

Two strategies keep the NF state outside the cores (NetStar's designs), and each core holds
one :class:`StoreClient` (an asyncio one: many packets of a core may be in flight at once):

* ``service`` (:class:`ServiceClient`): a dedicated state-service process
  (:mod:`nfs.stores.service`) owns the state; the client sends each transition over ONE TCP
  connection (protocol: :mod:`sequencer.wire.state_service`), pipelined, and the service
  answers each connection's requests in order, so a FIFO of futures matches answers to
  requests. The service is single-threaded: every transition is atomic.
* ``redis`` (:class:`RedisClient`): a real Redis server holds the state (the NF is
  stateless), one string per key (``redis_key``: ``k:`` + the packed key, the packed value).
  The transition runs in the client, so it is a read-modify-write over the network:

  - ``atomic=True`` (kind ``redis``): ``GET`` the value, compute, then a server-side Lua
    compare-and-set (``CAS_SCRIPT``, generic for every NF) writes the new value and appends
    the sequence number to ``STORE_ORDER_KEY`` only if the value is still the one read;
    otherwise it returns the current value and the client recomputes (``stats["retries"]``).
    The applied transitions form one total order, the order list's. A core's own packets
    of one key take turns (a per-key asyncio lock), so only other cores cause retries.
  - ``atomic=False`` (kind ``redis-naive``): ``GET``, compute, ``SET`` (``DEL`` for absent),
    ``RPUSH`` the sequence number. Deliberately racy: concurrent packets of one key lose
    updates, which is what a stateless NF without transactions gets.

Every ``apply(seq, fields)`` returns the key's ``(old, new)`` value tuples, so the core can
take the NF's verdict. ``delay_s`` injects a store latency: a farther store, so one
``asyncio.sleep(delay_s)`` before every round trip to it (one per service query; a Redis
transition pays it before its read and again before each write, which is also what
widens a naive read-modify-write's race window, as distance does); ``latency_us`` keeps
each apply's time, those delays included (the first ``MAX_LATENCY_SAMPLES``).

Caveats: the ``service`` client batches the requests issued in one event-loop iteration
into one write, and does not apply back-pressure: the caller bounds the packets in flight.
A lost connection fails every pending and later apply with ConnectionError. A Redis value
that does not unpack with the NF's value format (a key written by something else) fails
that apply with :class:`StoreProtocolError`, a ConnectionError, so a core counts it as a
store error and drops the packet. The Redis client's cost per operation is mostly
redis-py's, not the store's.
"""

from __future__ import annotations

import asyncio
import collections
import math
import struct
import time
from abc import ABC, abstractmethod
from typing import ClassVar

import redis.asyncio
from redis.exceptions import NoScriptError, RedisError

from nfs.base import NetworkFunction
from sequencer.dataplane import parse_address
from sequencer.wire.state_service import REQUEST_HEADER, response_size, unpack_response

STORE_KINDS = ("service", "redis", "redis-naive")
STORE_ORDER_KEY = b"scr:order"  # Redis list: sequence numbers in the order they were applied
KEY_PREFIX = b"k:"
MAX_LATENCY_SAMPLES = 100_000

# KEYS: the state key, the order list. ARGV: 1 if a value was read, the bytes read, 1 if the
# new value is present, the new bytes, the sequence number. Returns {1} when applied, else
# {0, current bytes} ({0} alone when the key is now absent: a Lua false ends the table).
CAS_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
local same
if ARGV[1] == '1' then same = (cur == ARGV[2]) else same = (cur == false) end
if not same then return {0, cur} end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
redis.call('RPUSH', KEYS[2], ARGV[5])
return {1}
"""


def redis_key(nf: NetworkFunction, key: tuple) -> bytes:
    """The Redis key that holds ``nf``'s state for ``key``."""
    return KEY_PREFIX + nf.pack_key(key)


class StoreProtocolError(ConnectionError):
    """The store answered something that does not decode; the message is one line."""


def decode_value(nf: NetworkFunction, data: bytes, key: object) -> tuple:
    """``data``, a value read from the store for ``key``, unpacked with ``nf``'s value
    format; StoreProtocolError if it does not fit (struct.error is no ValueError)."""
    try:
        return nf.value_format.unpack(data)
    except (struct.error, TypeError):
        held = f"{len(data)} bytes" if isinstance(data, bytes) else type(data).__name__
        raise StoreProtocolError(f"the store holds {held} for key {key!r}, not a {nf.name} "
                                 f"value of {nf.value_format.size} bytes") from None


def _describe(err: BaseException) -> str:
    """A one-line description of a connection error."""
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class StoreClient(ABC):
    """One core's client of an outside state store; see the module docstring."""

    kind: ClassVar[str]

    def __init__(self, nf: NetworkFunction, host: str, port: int, delay_s: float = 0.0):
        if isinstance(delay_s, bool) or not isinstance(delay_s, int | float) \
                or not math.isfinite(delay_s) or delay_s < 0:
            raise ValueError(f"store delay must be a finite number of seconds >= 0, "
                             f"not {delay_s!r}")
        self.nf = nf
        self.host = host
        self.port = port
        self.delay_s = float(delay_s)
        self.stats: collections.Counter[str] = collections.Counter()
        self.latency_us: list[float] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _record_latency(self, start: float) -> None:
        self.stats["ops"] += 1
        if len(self.latency_us) < MAX_LATENCY_SAMPLES:
            self.latency_us.append((time.perf_counter() - start) * 1e6)

    @abstractmethod
    async def connect(self, timeout_s: float = 5.0) -> None:
        """Connect to the store; a one-line ConnectionError if it cannot."""

    @abstractmethod
    async def apply(self, seq: int, fields: tuple) -> tuple[tuple | None, tuple | None]:
        """Run the NF's transition for record ``fields`` (packet ``seq``) in the store and
        return the key's ``(old, new)`` values (None: absent). Concurrent calls are allowed.
        With ``delay_s > 0`` every round trip to the store first sleeps that long (the
        injected store latency)."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection(s); pending applies fail."""


class _ServiceProtocol(asyncio.Protocol):
    """The client's side of one service connection: resolves futures in FIFO order."""

    def __init__(self, client: ServiceClient):
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client
        buf = self.buffer + data if self.buffer else data
        size = client.response_size
        n = len(buf) // size
        pending, nf = client.pending, client.nf
        if n > len(pending):
            client.fail(ConnectionError(
                f"state service at {client.address} sent an answer to no request"))
            self.transport.abort()
            return
        for offset in range(0, n * size, size):
            future = pending.popleft()
            if not future.done():  # a cancelled apply keeps its place in the FIFO
                future.set_result(unpack_response(nf, buf, offset))
        self.buffer = buf[n * size:]

    def connection_lost(self, exc) -> None:
        reason = _describe(exc) if exc is not None else "connection closed by the service"
        self.client.fail(ConnectionError(f"state service at {self.client.address}: {reason}"))


class ServiceClient(StoreClient):
    """A client of :mod:`nfs.stores.service`: one TCP connection, pipelined requests."""

    kind = "service"

    def __init__(self, nf: NetworkFunction, host: str, port: int, delay_s: float = 0.0):
        super().__init__(nf, host, port, delay_s)
        self.response_size = response_size(nf)
        self.pending: collections.deque[asyncio.Future] = collections.deque()
        self._protocol: _ServiceProtocol | None = None
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._error: ConnectionError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pack_header = REQUEST_HEADER.pack
        self._pack_record = nf.record_format.pack
        self._record_size = nf.record_format.size

    async def connect(self, timeout_s: float = 5.0) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            _, self._protocol = await asyncio.wait_for(
                self._loop.create_connection(lambda: _ServiceProtocol(self), self.host,
                                             self.port),
                timeout_s)
        except OSError as err:  # TimeoutError is one
            raise ConnectionError(
                f"cannot connect to the state service at {self.address}: {_describe(err)}"
            ) from None
        self._error = None

    def fail(self, error: ConnectionError) -> None:
        """The connection is gone: fail every pending apply and the later ones."""
        if self._error is None:
            self._error = error
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)

    def _flush(self) -> None:
        # Requests issued in one loop iteration leave in one write (one system call).
        self._flush_scheduled = False
        if self._outgoing and self._error is None:
            self._protocol.transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    async def apply(self, seq: int, fields: tuple) -> tuple[tuple | None, tuple | None]:
        start = time.perf_counter()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self._error is not None:
            raise self._error
        if self._protocol is None:
            raise ConnectionError(f"state service at {self.address}: not connected")
        try:
            request = self._pack_header(seq, self._record_size) + self._pack_record(*fields)
        except (TypeError, struct.error) as err:
            raise ValueError(f"bad record for {self.nf.name}: {fields!r} ({err})") from None
        future = self._loop.create_future()
        # The request and its future enter their queues together: answers come in order.
        self.pending.append(future)
        self._outgoing.append(request)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        result = await future
        self._record_latency(start)
        return result

    async def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self.fail(ConnectionError(f"state service at {self.address}: client closed"))
        self._protocol = None


class RedisClient(StoreClient):
    """A stateless NF's client of a Redis server; see the module docstring."""

    kind = "redis"

    def __init__(self, nf: NetworkFunction, host: str, port: int, delay_s: float = 0.0,
                 atomic: bool = True, max_connections: int = 64):
        super().__init__(nf, host, port, delay_s)
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {max_connections}")
        self.atomic = atomic
        self.max_connections = max_connections
        self._redis: redis.asyncio.Redis | None = None
        self._sha: str | None = None
        self._pack_value = nf.value_format.pack
        # atomic: this core's packets of one key take turns (as NetStar keeps a flow's
        # packets in order); only other cores' writes can then make a compare-and-set fail.
        self._key_locks: collections.defaultdict[bytes, asyncio.Lock] = \
            collections.defaultdict(asyncio.Lock)

    async def connect(self, timeout_s: float = 5.0) -> None:
        # A blocking pool: more applies in flight than connections wait for one, instead
        # of failing with "too many connections".
        pool = redis.asyncio.BlockingConnectionPool(
            host=self.host, port=self.port, max_connections=self.max_connections,
            socket_connect_timeout=timeout_s, decode_responses=False)
        self._redis = redis.asyncio.Redis.from_pool(pool)
        try:
            await asyncio.wait_for(self._redis.ping(), timeout_s)
            if self.atomic:
                self._sha = await self._redis.script_load(CAS_SCRIPT)
        except (RedisError, OSError) as err:  # TimeoutError is an OSError
            await self.close()
            raise ConnectionError(
                f"cannot connect to redis at {self.address}: {_describe(err)}") from None

    def _client(self) -> redis.asyncio.Redis:
        if self._redis is None:
            raise ConnectionError(f"redis at {self.address}: not connected")
        return self._redis

    async def apply(self, seq: int, fields: tuple) -> tuple[tuple | None, tuple | None]:
        start = time.perf_counter()
        client, nf = self._client(), self.nf
        key = KEY_PREFIX + nf.pack_key(nf.key(fields))
        try:
            if self.atomic:
                async with self._key_locks[key]:
                    await self._travel()
                    old_bytes = await client.get(key)
                    old, new = await self._compare_and_set(client, key, old_bytes, seq, fields)
            else:
                await self._travel()
                old_bytes = await client.get(key)
                old = decode_value(nf, old_bytes, key) if old_bytes is not None else None
                new = nf.apply(old, fields)
                await self._travel()
                if new is None:
                    await client.delete(key)
                else:
                    await client.set(key, self._pack_value(*new))
                await client.rpush(STORE_ORDER_KEY, seq)
        except StoreProtocolError as err:
            raise StoreProtocolError(f"redis at {self.address}: {err}") from None
        except (RedisError, OSError) as err:
            raise ConnectionError(f"redis at {self.address}: {_describe(err)}") from None
        self._record_latency(start)
        return old, new

    async def _travel(self) -> None:
        """The injected latency of one round trip to the store."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    async def _compare_and_set(self, client, key: bytes, old_bytes: bytes | None, seq: int,
                               fields: tuple) -> tuple[tuple | None, tuple | None]:
        """Compute from the value read and store it if nobody changed it meanwhile; else
        recompute from the value the script returned, until it sticks."""
        nf = self.nf
        apply, pack = nf.apply, self._pack_value
        while True:
            old = decode_value(nf, old_bytes, key) if old_bytes is not None else None
            new = apply(old, fields)
            args = (b"0", b"") if old_bytes is None else (b"1", old_bytes)
            args += (b"0", b"") if new is None else (b"1", pack(*new))
            await self._travel()
            try:
                reply = await client.evalsha(self._sha, 2, key, STORE_ORDER_KEY, *args, seq)
            except NoScriptError:  # the server lost its scripts (restart, SCRIPT FLUSH)
                self._sha = await client.script_load(CAS_SCRIPT)
                continue
            if reply[0] == 1:
                return old, new
            self.stats["retries"] += 1
            old_bytes = reply[1] if len(reply) > 1 else None

    async def close(self) -> None:
        if self._redis is not None:
            redis_client, self._redis = self._redis, None
            await redis_client.aclose()


def make_store(kind: str, nf: NetworkFunction, address: str,
               delay_s: float = 0.0) -> StoreClient:
    """The client of store ``kind`` (one of ``STORE_KINDS``) at ``address`` (HOST:PORT)."""
    host, port = parse_address(address, "store address")
    if kind == "service":
        return ServiceClient(nf, host, port, delay_s)
    if kind in ("redis", "redis-naive"):
        return RedisClient(nf, host, port, delay_s, atomic=kind == "redis")
    raise ValueError(f"unknown store kind {kind!r}; choose from {', '.join(STORE_KINDS)}")
