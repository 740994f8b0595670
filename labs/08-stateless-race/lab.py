"""Lab 8's definition and checks: a stateless NF's transition as one atomic step in Redis
(``atomic_store.py``).

Checks, in order. The first four need no network: they run the student's client in this
process against a real ``redis-server`` that the grader starts on 127.0.0.1 (a free port,
no disk), and read Redis back with a client of its own.

1. ``read`` (TODO 1) watches the key before it reads it, through the try's pipeline, and
   returns what Redis holds (None for an absent key).
2. ``write`` (TODO 2) writes the value (or deletes the key) and appends the sequence number
   to the order list in one transaction; when another client writes the key between the
   try's read and its write (the grader does, at that moment), it writes nothing and
   returns False. Then ``attempt`` on five packets of two sources returns each
   ``(old, new)``.
3. ``transition`` (TODO 3) retries: the grader's NF lets "another core" write the key
   during the first two tries; the third must commit, from the value written last.
4. The race: four clients ("cores"), eight packets in flight each, 4 ms of store latency
   before each round trip, 400 packets of eight DDoS sources arriving at 1000 pps (several
   of a source in flight at once). No update may be lost, the order list must hold every
   packet once in the order the writes happened, and
   :func:`nfs.reference.check_access_order` (the testbed's own check) must hold. A lost
   update is reported with the two cores that read the same count.
5. Live: the ``lab8-remote`` strategy on the real network, 4 cores, 8 packets in flight,
   4 ms store latency, 300 pps (a source's back-to-back packets overlap: the package's
   ``remote-naive`` loses 40 to 55 of the 400 updates here), with the trial's own Redis
   in the NF host: the oracle's strict
   equivalence and the access-order check must both hold (the DDoS threshold is above every
   source's count, so no verdict depends on the order of concurrent packets; see the
   README's last question for what happens when one does).

``make run`` brings up the package's racy ``remote-naive`` strategy by default (the
README's step 1); ``make run STRATEGY=lab8-remote`` runs the student's, and ``THRESHOLD=N``
sets the DDoS threshold (default 1000: never reached by the 400-packet trace). These are
``make run`` options (``labs.kit.run_option``): a bad value is one line.

Caveats: the race check's interleavings depend on timing, so a naive client could in
principle get lucky there; it cannot in checks 2 and 3, whose conflicts are made on
purpose. The grader's Redis listens on the machine's loopback for the few seconds of the
checks.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from contextlib import contextmanager

from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from labs.kit import Check, Grade, Lab, RunSpec, int_option, run_option
from labs.kit.grading import first_problem
from nfs import make_nf
from nfs.ddos import DDoSMitigator
from nfs.reference import check_access_order
from nfs.stores.clients import STORE_ORDER_KEY, redis_key
from nfs.stores.redis_server import RedisServer, RedisStoreError, dump
from sequencer.wire.packet import TCP_FIN, TCP_SYN, ip_to_int, parse

STRATEGY_NAME = "lab8-remote"
HOST = "127.0.0.1"
#: The trace of the race and live checks (and of ``make run``): 400 packets from 8 DDoS
#: sources, about 50 each, in random order: about one packet in eight is followed by one
#: of the same source, which the next core gets.
TRACE = TraceSpec(packets=400, flows=8, skew=0.0, attackers=0, knockers=0, seed=8)
CORES = 4
INFLIGHT = 8
#: Before each round trip. A packet's GET and its write are then >= 4 ms apart, more than
#: the 3.3 ms between two packets at 300 pps: back-to-back packets of one source overlap.
STORE_DELAY_US = 4000.0
LIVE = {"rate_pps": 300.0, "core_share": 0.25}  # a store core pays redis-py's CPU
#: Above every source's count in TRACE: all verdicts PASS in any order (see the docstring).
GRADING_THRESHOLD = 1000
RACE_THRESHOLD = 30  # the race check replays verdicts too: every source crosses it
#: Packet arrivals in the race check (all cores together): faster than live, so that
#: several packets of a source are in flight at once and a try is often refused several
#: times in a row (a client that gives up after a few retries loses updates here).
RACE_RATE_PPS = 1000.0
TIMEOUT_S = 10.0

A, B = ip_to_int("198.18.0.1"), ip_to_int("198.18.0.2")


# -- the grader's Redis ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def grader_redis(g: Grade):
    """A fresh redis-server for one check (its log in the results folder)."""
    server = RedisServer(free_port(), g.out_dir / "redis.log")
    try:
        server.start()
    except RedisStoreError as err:
        g.fail(f"the grader cannot start Redis ({err}); run `make setup` in the repository")
    try:
        yield server
    finally:
        server.stop()


def run_async(g: Grade, coro, what: str):
    """Run ``coro`` to its end; a failure if it takes longer than TIMEOUT_S."""
    async def bounded():
        try:
            return await asyncio.wait_for(coro, TIMEOUT_S)
        except TimeoutError:
            raise LabTimeout from None

    try:
        return asyncio.run(bounded())
    except LabTimeout:
        g.fail(f"{what} did not finish within {TIMEOUT_S:g} s: transition must return "
               "(old, new) as soon as a try commits, and each new try reads the key again")


class LabTimeout(Exception):
    """The scenario ran past TIMEOUT_S."""


async def connected(g: Grade, nf, port: int, delay_s: float = 0.0):
    client = g.module.AtomicRedisClient(nf, HOST, port, delay_s)
    await client.connect()
    return client


def count(value) -> int:
    """A DDoS value tuple (or None, absent) as a count."""
    return 0 if value is None else value[0]


def held(redis, nf, key: bytes) -> str:
    """What Redis holds for ``key``, in words."""
    data = redis.get(key)
    return "nothing (no key)" if data is None else f"count {nf.unpack_value(data)[0]}"


class Recorder:
    """A pipeline that notes the commands called on it (by name, lower case)."""

    def __init__(self, pipe):
        self._pipe = pipe
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self._pipe, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            command = args[0] if name == "execute_command" and args else name
            self.calls.append(str(command).lower())
            return attr(*args, **kwargs)

        return call


# -- 1: read --------------------------------------------------------------------------


def check_read(g: Grade) -> None:
    nf = make_nf("ddos")
    with grader_redis(g) as server:
        redis = server.client()
        key = redis_key(nf, (A,))

        async def scenario():
            client = await connected(g, nf, server.port)
            try:
                for stored in (None, nf.value_format.pack(7)):
                    if stored is not None:
                        redis.set(key, stored)
                    async with client._client().pipeline(transaction=True) as pipe:
                        recorder = Recorder(pipe)
                        got = await client.read(recorder, key)
                        watching = pipe.watching
                    yield stored, got, recorder.calls, watching
            finally:
                await client.close()

        async def collect():
            return [case async for case in scenario()]

        for stored, got, calls, watching in run_async(g, collect(), "read"):
            what = "absent" if stored is None else "count 7"
            if type(got).__name__ == "Pipeline":
                g.fail("read returned the pipeline, not the bytes GET read: without a WATCH "
                       "first, pipe.get(key) is only queued (the pipeline is not in its "
                       "watching mode); await pipe.watch(key) first")
            if not isinstance(got, bytes | type(None)):
                g.fail(f"read returned {got!r}, not the bytes GET read (None for an absent "
                       "key): return await pipe.get(key)")
            if not watching:
                g.fail("after read, the pipeline watches no key: await pipe.watch(key) "
                       "before the GET, so that Redis notes other cores' writes of the key")
            reads = [c for c in calls if c in ("get", "mget", "getex")]
            if reads and "watch" in calls and calls.index("watch") > calls.index(reads[0]):
                g.fail("read calls GET before WATCH: a write by another core between the "
                       "two would go unnoticed; WATCH the key first")
            if got != stored:
                g.fail(f"with the key {what}, read returned {got!r}, not {stored!r}: return "
                       "what GET read (None when the key is absent)")
    g.info("read watches the key, then returns its value (or None)")


# -- 2: write -------------------------------------------------------------------------


def check_write(g: Grade) -> None:
    nf = make_nf("ddos")
    with grader_redis(g) as server:
        redis = server.client()
        key = redis_key(nf, (A,))
        pack = nf.value_format.pack

        calls: list[str] = []

        async def one_try(client, seq: int, new, meddle: bool):
            """A try by hand: read, maybe another core's write, then write."""
            async with client._client().pipeline(transaction=True) as pipe:
                await client.read(pipe, key)
                if meddle:  # "core 3" writes the key between this try's read and write
                    redis.set(key, pack(100))
                    redis.rpush(STORE_ORDER_KEY, 999)
                recorder = Recorder(pipe)
                try:
                    return await client.write(recorder, key, seq, new)
                finally:
                    calls[:] = recorder.calls

        async def scenario():
            client = await connected(g, nf, server.port)
            try:
                redis.set(key, pack(4))
                plain = await one_try(client, 1, (5,), meddle=False)
                plain_calls = list(calls)
                after_plain = (redis.get(key), redis.lrange(STORE_ORDER_KEY, 0, -1))
                redis.set(key, pack(4))
                redis.delete(STORE_ORDER_KEY)
                try:
                    refused = await one_try(client, 2, (5,), meddle=True)
                except Exception as err:  # noqa: BLE001 (WatchError, named below)
                    refused = err
                after_refused = (redis.get(key), redis.lrange(STORE_ORDER_KEY, 0, -1))
                return plain, plain_calls, after_plain, refused, after_refused
            finally:
                await client.close()

        plain, calls, (value, order), refused, (value2, order2) = run_async(
            g, scenario(), "write")
        transaction_calls(g, calls)
        if plain is not True:
            g.fail(f"write returned {plain!r} although no other core wrote the key: return "
                   "True once EXEC has run")
        if value != pack(5):
            now = "count 4 (unchanged)" if value == pack(4) else repr(value)
            g.fail(f"write(seq 1, new=(5,)) left {now} in Redis: after pipe.multi(), queue "
                   "pipe.set(key, self._pack_value(*new)), then await pipe.execute()")
        if order != [b"1"]:
            g.fail(f"after write(seq 1) the order list is {[int(s) for s in order]}, not [1]: "
                   "queue pipe.rpush(STORE_ORDER_KEY, seq) in the same transaction")
        if isinstance(refused, Exception):
            if type(refused).__name__ == "WatchError":
                g.fail("write let redis-py's WatchError out when another core had written "
                       "the key: catch it around pipe.execute() and return False (Redis "
                       "wrote nothing; transition will try again)")
            raise refused
        if value2 == pack(5):
            g.fail("write overwrote count 100, written by another core after your read "
                   "(you read 4, wrote 5): that is the lost update. Queue the writes after "
                   "pipe.multi() and run them with pipe.execute(): Redis then refuses them "
                   "(WatchError) because the key you WATCHed has changed")
        if b"2" in order2:
            g.fail("the order list got seq 2 although its write was refused: the RPUSH "
                   "must be queued in the same MULTI/EXEC, so that a refused try leaves "
                   "no entry")
        if refused is not False:
            g.fail(f"write returned {refused!r} although Redis refused the transaction "
                   "(another core wrote the key after your WATCH): return False")
        if value2 != pack(100):
            g.fail(f"after a refused write Redis holds {value2!r} instead of the other "
                   "core's count 100: a refused try must write nothing")
    check_attempts(g)
    check_delete(g)
    g.info("write commits value and order together, and nothing when another core came "
           "first")


def transaction_calls(g: Grade, calls: list[str]) -> None:
    """The commands ``write`` called on its pipeline must form one transaction."""
    writes = [i for i, c in enumerate(calls) if c in ("set", "delete", "rpush")]
    if "multi" not in calls or (writes and writes[0] < calls.index("multi")):
        g.fail("write must call pipe.multi() before it queues its writes: without it each "
               "command runs at once, outside any transaction, and another core's write can "
               "come in between")
    if "execute" not in calls:
        g.fail("write never calls await pipe.execute(): that is the EXEC that runs the "
               "queued writes (or refuses them)")
    end = calls.index("execute")
    if not any(c == "rpush" and calls.index("multi") < i < end for i, c in enumerate(calls)):
        g.fail("write did not queue pipe.rpush(STORE_ORDER_KEY, seq) between pipe.multi() "
               "and pipe.execute(): the packet's seq must enter the order list in the same "
               "transaction as its value (the grader replays that list; outside the "
               "transaction another core's write can come between your EXEC and your RPUSH)")


def check_attempts(g: Grade) -> None:
    """``attempt`` on five packets of two sources, one at a time."""
    nf = make_nf("ddos")
    with grader_redis(g) as server:
        redis = server.client()

        async def scenario():
            client = await connected(g, nf, server.port)
            try:
                for seq, src in enumerate((A, A, B, A, B)):
                    key = redis_key(nf, (src,))
                    before = redis.get(key)
                    got = await client.attempt(key, seq, (src,))
                    yield seq, src, key, before, got, redis.get(key), \
                        [int(s) for s in redis.lrange(STORE_ORDER_KEY, 0, -1)]
            finally:
                await client.close()

        async def collect():
            return [case async for case in scenario()]

        for seq, src, key, before, got, after, order in run_async(g, collect(), "attempt"):
            old = nf.unpack_value(before) if before is not None else None
            want = (old, nf.apply(old, (src,)))
            if got != want:
                g.fail(f"attempt(seq {seq}) on a key holding {count(old)} returned {got!r}, "
                       f"not {want!r}: with no other core around, every try commits")
            if after != nf.value_format.pack(*want[1]):
                g.fail(f"after attempt(seq {seq}) Redis holds {held(redis, nf, key)} for "
                       f"{nf.key_to_json((src,))}, not count {want[1][0]}")
            if order != list(range(seq + 1)):
                g.fail(f"after attempts 0..{seq} the order list is {order}: one entry per "
                       "committed try, in the order they committed")


def check_delete(g: Grade) -> None:
    """A heavy-hitter flow's FIN: the NF's step returns None, so the key must go."""
    nf = make_nf("hh")
    syn = (A, B, 1234, 80, 50, TCP_SYN)
    fin = (A, B, 1234, 80, 50, TCP_FIN)
    with grader_redis(g) as server:
        redis = server.client()
        key = redis_key(nf, nf.key(syn))

        async def scenario():
            client = await connected(g, nf, server.port)
            try:
                await client.attempt(key, 0, syn)
                await client.attempt(key, 1, fin)
            finally:
                await client.close()

        run_async(g, scenario(), "attempt")
        if redis.exists(key):
            g.fail("after a flow's FIN the heavy-hitter NF's step returns None (the flow is "
                   "over), but its key is still in Redis: when new is None, queue "
                   "pipe.delete(key) instead of SET")


# -- 3: transition --------------------------------------------------------------------


class Meddling(DDoSMitigator):
    """A DDoS NF whose step, the first ``times`` times, lets "another core" write the key
    (count 100, then 200, ...; order entries 999, 998, ...): between the try's read and
    its write, where the race happens."""

    def __init__(self, redis, key: bytes, times: int):
        super().__init__()
        self.redis, self.key, self.left, self.done = redis, key, times, 0

    def step(self, value, fields):
        if self.left:
            self.left -= 1
            self.done += 1
            self.redis.set(self.key, self.value_format.pack(100 * self.done))
            self.redis.rpush(STORE_ORDER_KEY, 1000 - self.done)
        return super().step(value, fields)


def check_transition(g: Grade) -> None:
    with grader_redis(g) as server:
        redis = server.client()
        nf = Meddling(redis, redis_key(make_nf("ddos"), (A,)), times=2)
        redis.set(nf.key, nf.value_format.pack(4))

        async def scenario():
            client = await connected(g, nf, server.port)
            try:
                got = await client.transition(nf.key, 7, (A,))
                return got, client.stats.get("retries", 0)
            finally:
                await client.close()

        got, retries = run_async(g, scenario(), "transition")
        order = [int(s) for s in redis.lrange(STORE_ORDER_KEY, 0, -1)]
        if got is None:
            g.fail("transition returned None after a refused try: call attempt again until "
                   "it returns (old, new)")
        if got != ((200,), (201,)):
            g.fail(f"transition returned {got!r}; another core wrote count 100, then 200, "
                   "during your first two tries, so the try that commits reads 200 and "
                   "writes 201: retry with a new attempt (it reads the key again)")
        if order != [999, 998, 7]:
            g.fail(f"after two refused tries and one that committed, the order list is "
                   f"{order}, not [999, 998, 7] (the other core's two writes, then yours)")
        if retries != 2:
            g.fail(f"self.stats['retries'] is {retries} after two refused tries: add 1 for "
                   "each (the results report it as store_retries)")
    g.info("transition retried twice and committed 201 on top of the other core's 200")


# -- 4: the race ----------------------------------------------------------------------


async def race(g: Grade, port: int, frames: list[bytes], threshold: int) -> dict:
    """Four clients ("cores") on one Redis, packets sprayed round-robin as ``lock`` does,
    at most INFLIGHT in flight per core; ``{seq: (core, old, new)}`` and their retries."""
    delay = STORE_DELAY_US / 1e6
    clients = [await connected(g, make_nf("ddos", threshold=threshold), port, delay)
               for _ in range(CORES)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    done: dict[int, tuple] = {}

    async def core(i: int) -> None:
        slots = asyncio.Semaphore(INFLIGHT)
        tasks = []

        async def one(seq: int, fields: tuple) -> None:
            try:
                done[seq] = (i, *await clients[i].apply(seq, fields))
            finally:
                slots.release()

        for seq in range(i, len(frames), CORES):
            await asyncio.sleep(max(0.0, start + seq / RACE_RATE_PPS - loop.time()))
            await slots.acquire()
            fields = clients[i].nf.record(parse(frames[seq]), seq)
            tasks.append(asyncio.create_task(one(seq, fields)))
        await asyncio.gather(*tasks)

    try:
        await asyncio.gather(*(core(i) for i in range(CORES)))
    finally:
        for client in clients:
            await client.close()
    return {"done": done, "retries": sum(c.stats.get("retries", 0) for c in clients)}


def sources(nf, frames: list[bytes]) -> dict[str, list[int]]:
    """Each DDoS source (as the oracle's JSON names it) and its packets' seqs."""
    out: dict[str, list[int]] = {}
    for seq, frame in enumerate(frames):
        out.setdefault(nf.key_to_json(nf.key(nf.record(parse(frame), seq))), []).append(seq)
    return out


def lost_summary(nf, frames: list[bytes], state: dict) -> tuple[str, str, int] | None:
    """The lost (or extra) updates in ``state`` as one line, the source that lost the
    most and its count of lost updates; None if every source's count is right."""
    wrong = {src: (len(seqs), state.get(src, 0)) for src, seqs in sources(nf, frames).items()
             if state.get(src, 0) != len(seqs)}
    if not wrong:
        return None
    over = next((src for src, (sent, have) in wrong.items() if have > sent), None)
    if over is not None:
        sent, have = wrong[over]
        return (f"Redis counts {have} packets from {over}, but {sent} were sent: a refused "
                "try wrote anyway (every write must be queued in MULTI/EXEC, so that a "
                "refused EXEC writes nothing)", over, 0)
    src = max(wrong, key=lambda s: wrong[s][0] - wrong[s][1])
    sent, have = wrong[src]
    total = sum(sent - have for sent, have in wrong.values())
    return (f"{total} of {len(frames)} updates were lost; {sent - have} of the {sent} updates "
            f"to {src} (Redis counts {have})", src, sent - have)


def check_race(g: Grade) -> None:
    frames = make_trace(TRACE)
    nf = make_nf("ddos", threshold=RACE_THRESHOLD)
    with grader_redis(g) as server:
        out = run_async(g, race(g, server.port, frames, RACE_THRESHOLD), "the race")
        store, order = dump(server, nf)
    done, state = out["done"], store["state"]
    lost = lost_summary(nf, frames, state)
    if lost is not None:
        line, src, missing = lost
        readers: dict[int, list[tuple[int, int]]] = {}
        for seq in sources(nf, frames)[src]:
            core, old, _new = done[seq]
            readers.setdefault(count(old), []).append((core, seq))
        clash = next((v for v in sorted(readers) if len(readers[v]) > 1), None)
        if missing and clash is not None:
            (c1, s1), (c2, s2) = readers[clash][:2]
            who = (f"core {c1} read count {clash} and core {c2} read {clash} before either "
                   "wrote" if c1 != c2 else
                   f"core {c1} read count {clash} for seq {s1} and for seq {s2}")
            line += f": {who}, so both wrote {clash + 1}"
        if missing:
            line += ("; the transition must be one atomic step (WATCH, GET, then "
                     "MULTI/SET/RPUSH/EXEC, and try again when EXEC is refused)")
        g.fail(f"{CORES} cores, {INFLIGHT} packets in flight each: {line}")
    seen = Counter(order)
    strays = sorted(set(seen) - set(range(len(frames))))
    if strays:
        g.fail(f"the order list holds {strays[0]}, the seq of no packet: push the packet's "
               "own seq")
    for seq in range(len(frames)):
        if seen[seq] != 1:
            g.fail(f"seq {seq} is in the order list {seen[seq]} times, not once: RPUSH each "
                   "packet's seq in the transaction that writes its value, and only there")
    by_source: dict[str, list[int]] = {}
    for seq in order:
        by_source.setdefault(nf.key_to_json((parse(frames[seq]).src,)), []).append(seq)
    for src, listed in by_source.items():
        for before, after in zip(listed, listed[1:], strict=False):
            if count(done[before][1]) > count(done[after][1]):
                g.fail(f"the order list puts seq {before} before seq {after} (both from "
                       f"{src}), but seq {after} read count {count(done[after][1])} and seq "
                       f"{before} read {count(done[before][1])}: it wrote first. The RPUSH "
                       "must be in the same MULTI/EXEC as the write, so that the list's "
                       "order is the order the writes happened")
    packets = {seq: (parse(f), seq) for seq, f in enumerate(frames)}
    verdicts = ((seq, core, nf.verdict(old, new, nf.record(*packets[seq])))
                for seq, (core, old, new) in done.items())
    check = check_access_order(nf, packets, order, verdicts, state)
    if not check.equivalent:
        g.fail(f"replaying Redis's order list does not give its state and your verdicts "
               f"({len(check.verdict_mismatches)} verdicts differ; "
               f"{', '.join(check.diverged_replicas) or 'the state agrees'})")
    g.info(f"{CORES} cores, {len(frames)} packets: no update lost, the order list replays to "
           f"Redis's state; {out['retries']} retries after conflicts")


# -- 5: live --------------------------------------------------------------------------


def live_trial(g: Grade, strategy: str) -> tuple[dict, dict, list[bytes]]:
    """One live trial of ``strategy`` with the lab's trace and settings: its result row,
    Redis's final state and the trace's frames."""
    frames = make_trace(TRACE)
    trace = g.out_dir / "trace.pcap"
    write_pcap(trace, frames)
    config = g.config(calibrated=False, nf="ddos",
                      nf_params={"threshold": GRADING_THRESHOLD}, strategy=strategy,
                      cores=CORES, inflight=INFLIGHT, store_delay_us=STORE_DELAY_US, **LIVE)
    result = g.trial(trace, config, strategy)
    trial_dir = g.last_trial_dir
    if result.get("store_errors"):
        errors = [json.loads(p.read_text()).get("store_error", "")
                  for p in sorted(trial_dir.glob("core*.json"))]
        g.fail(f"live on {CORES} cores: {result['store_errors']} packets got a store error "
               f"and were dropped ({next((e for e in errors if e), 'no detail')})")
    state = json.loads((trial_dir / "store.json").read_text())["state"]
    return result, state, frames


def check_live(g: Grade) -> None:
    result, state, frames = live_trial(g, STRATEGY_NAME)
    where = f"live on {CORES} cores: "
    lost = lost_summary(make_nf("ddos"), frames, state)
    if lost is not None:
        line, _src, missing = lost
        g.fail(f"{where}{line}" + ("; two cores read the same count and both wrote it plus "
                                   "one: the transition must be one atomic step"
                                   if missing else ""))
    if not result["check_access_order"]:
        g.fail(f"{where}Redis's order list does not replay to its state and verdicts "
               f"({result['access_order_mismatches']} verdicts differ): each packet's RPUSH "
               "must be in the transaction that writes its value")
    if not result["check_equivalent"]:
        g.fail(f"{where}the run is not equivalent to one core in sequence: "
               f"{first_problem(result)}")
    g.info(f"{where}equivalent, and Redis's order list replays to its state "
           f"({result['processed']} packets, {result['store_retries']} retries, "
           f"{result['delivered_pps']} pps delivered)")


LAB = Lab(
    number=8, title="Stateless NFs and the race: an atomic transition in Redis",
    files=("atomic_store.py",),
    checks=(
        Check("read watches the key, then reads it (TODO 1)", check_read),
        Check("write commits the value and the order in one transaction, or nothing "
              "(TODO 2)", check_write),
        Check("transition tries again until a try commits (TODO 3)", check_transition),
        Check(f"the race: {CORES} cores, {INFLIGHT} packets in flight each, "
              f"{STORE_DELAY_US / 1000:g} ms store latency: no update lost", check_race),
        Check(f"live at {CORES} cores: equivalent, and Redis's order list replays to its "
              "state", check_live, live=True),
    ),
    run=RunSpec(nf="ddos", cores=CORES,
                strategy=run_option("STRATEGY", "remote-naive",
                                    ("remote-naive", "remote", "lab8-remote")),
                rate_pps=LIVE["rate_pps"], packets=TRACE.packets, flows=TRACE.flows,
                skew=TRACE.skew, calibrated=False,
                trace={"attackers": 0, "knockers": 0, "seed": TRACE.seed},
                config={"nf_params": {"threshold": int_option("THRESHOLD", GRADING_THRESHOLD, 1)},
                        "core_share": LIVE["core_share"], "inflight": INFLIGHT,
                        "store_delay_us": STORE_DELAY_US}),
)

