"""Cores whose state lives outside them (NetStar's ideas), on an asyncio runtime.

NetStar writes middleboxes as futures and continuations, so that a core that asks an outside
service for state goes on with other packets while the answer travels. Here a core's packet
loop is an asyncio coroutine: each packet becomes a task that sends its state query and
awaits the answer, with at most ``inflight`` packets of one core in flight (the bound keeps
a slow store from piling up unbounded work; when it is reached the core stops reading its
RX queue, which then fills and drops, as a NIC ring would). ``blocking`` runs the same code
one packet at a time: the core waits for each answer before it reads the next packet, which
is exactly what a blocking call does, so the two runtimes differ in nothing but overlap.

The store is one of :mod:`nfs.stores.clients` (the strategies, ``nfs.strategies.store``):

* ``service`` / ``service-blocking``: a dedicated state-service process owns every key
  (NetStar's serialized shared data structure): a core sends the packet's record, the
  service runs the transition and answers the key's old and new value; no locks. The
  service records the order in which it applied the operations.
* ``remote`` / ``remote-blocking``: a real Redis server holds the state (a stateless NF);
  each transition is a read and a compare-and-set script, retried on conflict, that also
  appends the packet's sequence number to an order list in the same atomic step.
* ``remote-naive``: read, compute, write, with nothing in between: the race that naive
  read-modify-write has under concurrency, kept to show it (lost updates, wrong verdicts).

Frames arrive as in ``lock``: round-robin, SCR header with an empty history. The verdict is
the NF's ``verdict(old, new)`` from the store's answer; the NF's stateless compute
(``spin(work)``) runs in the core afterwards and holds the loop, as computation does.

Results add to the worker's: the store's counters (``ops``, ``retries``), and per-packet
latency, from the frame's arrival at the core to its verdict (queueing for an in-flight
slot included), as percentiles.

Caveats: an injected store delay is an ``asyncio.sleep`` before each round trip to the
store (``nfs.stores.clients``), so it has the event loop's timer granularity (about 1 ms, rounded
up): compare runs by the *measured* latency in the results, not by the nominal delay. A
query whose store has gone away is counted (``store_errors``) and its packet dropped.
"""

from __future__ import annotations

import asyncio
import signal
import time
from array import array

from nfs.base import NetworkFunction
from nfs.cores.base import Core, unpack_plain_header
from sequencer.dataplane import DropCounter, announce_ready, cpu_seconds, open_socket
from sequencer.wire import header as h
from sequencer.wire.packet import parse

DEFAULT_INFLIGHT = 32
MAX_LATENCY_SAMPLES = 200_000


def latency_summary(samples, points=(50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of ``samples`` (``p50`` ...) plus ``mean`` and ``n``."""
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    out = {f"p{p}": round(ordered[min(len(ordered) - 1, len(ordered) * p // 100)], 1)
           for p in points}
    out["mean"] = round(sum(ordered) / len(ordered), 1)
    out["n"] = len(ordered)
    return out


class StoreCore(Core):
    """A core that keeps no state: every transition is a query to ``store``."""

    def __init__(self, strategy: str, nf: NetworkFunction, core: int, n_cores: int, store,
                 inflight: int = DEFAULT_INFLIGHT, blocking: bool = False):
        super().__init__(nf, core, n_cores)
        if inflight < 1:
            raise ValueError("in-flight packets per core must be >= 1")
        self.strategy = strategy
        self.store = store
        self.inflight = 1 if blocking else inflight
        self.latency_us = array("d")
        self.last_store_error = ""

    def accept(self, frame: bytes):
        """Check a frame as ``lock`` does: ``(seq, packet, timestamp)``, or None."""
        try:
            hdr = unpack_plain_header(frame, self.core, self.n_cores)
            if hdr.flags & h.FLAG_STOP:
                self.stopped = True
                return None
            pkt = parse(frame, h.PAYLOAD_OFFSET)
        except h.MalformedFrame as err:
            self.malformed[err.reason] += 1
            return None
        if hdr.seq <= self.applied:
            self.malformed["stale_seq"] += 1
            return None
        self.applied = hdr.seq  # a core's packets arrive in order; stale ones are refused
        return hdr.seq, pkt, hdr.timestamp_ns

    async def handle_async(self, seq: int, pkt, ts: int, arrived_ns: int,
                           frame: bytes) -> bytes | None:
        """Query the store for the packet's transition, then verdict and compute."""
        nf = self.nf
        fields = nf.record(pkt, ts)
        try:
            old, new = await self.store.apply(seq, fields)
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as err:
            self.stats["store_errors"] += 1
            self.last_store_error = f"{type(err).__name__}: {err}"
            return None
        verdict = nf.verdict(old, new, fields)
        if len(self.latency_us) < MAX_LATENCY_SAMPLES:
            self.latency_us.append((time.monotonic_ns() - arrived_ns) / 1000)
        return self._done(seq, pkt.trace_id, verdict, frame[h.PAYLOAD_OFFSET:])

    def results(self) -> dict:
        results = super().results()
        results["inflight"] = self.inflight
        results["store"] = {"kind": self.store.kind, **dict(self.store.stats),
                            "latency_us": latency_summary(self.store.latency_us)}
        results["latency_us"] = latency_summary(self.latency_us)
        if self.last_store_error:
            results["store_error"] = self.last_store_error
        return results


async def serve(core: StoreCore, sock) -> None:
    """The packet loop: read frames, run up to ``core.inflight`` of them concurrently."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(core.inflight)
    pending: set[asyncio.Task] = set()
    send, clock = sock.send, time.monotonic_ns

    def forward(out: bytes | None) -> None:
        if out is not None:
            try:
                send(out)
            except OSError:  # the TX queue is full: a NIC would drop too
                core.stats["tx_errors"] += 1

    async def one(item, arrived: int, frame: bytes) -> None:
        try:
            forward(await core.handle_async(*item, arrived, frame))
        finally:
            slots.release()

    while not core.stopped:
        await slots.acquire()  # the bound: no more reading while the window is full
        frame = await loop.sock_recv(sock, 65535)
        arrived = clock()
        if not core.first_ns:
            core.first_ns = arrived
            core.cpu_first_s = cpu_seconds()
        item = core.accept(frame)
        if item is None:
            slots.release()
            continue
        if core.inflight == 1:
            await one(item, arrived, frame)
        else:
            task = loop.create_task(one(item, arrived, frame))
            pending.add(task)
            task.add_done_callback(pending.discard)
        core.last_ns = clock()
    if pending:  # STOP came after the last packet: let the ones in flight finish
        await asyncio.gather(*pending)
        core.last_ns = clock()


async def _main(core: StoreCore, iface: str, rcvbuf: int) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    # SIGTERM/SIGINT cancel the loop at its next await, never in the middle of logging a
    # packet; asyncio's own add_signal_handler would reset the handlers to their defaults
    # when the loop closes, before the worker has written its results.
    def stop(_signum, _frame):
        if not loop.is_closed():
            loop.call_soon_threadsafe(main.cancel)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sock = open_socket(iface, h.ETH_P_SCR, rcvbuf)
    sock.setblocking(False)
    drops = DropCounter(sock)
    try:
        await core.store.connect()
        announce_ready()
        await serve(core, sock)
    except asyncio.CancelledError:
        pass
    finally:
        core.rx_dropped = drops.read()
        sock.close()
        try:
            await asyncio.wait_for(core.store.close(), 2.0)
        except (TimeoutError, OSError, ConnectionError, asyncio.CancelledError):
            pass


def run(core: StoreCore, iface: str, rcvbuf: int) -> None:
    """Run the core until a STOP frame or a stop signal (the worker then writes results)."""
    asyncio.run(_main(core, iface, rcvbuf))
