"""The outside state stores: the state service, Redis, and their asyncio clients.

Real processes on the root namespace's loopback, on free ports: ``python -m
nfs.stores.service``, ``redis-server`` (through :class:`nfs.stores.redis_server.RedisServer` and
``python -m nfs.stores.redis_server``). What is checked:

* the service applies concurrent transitions from two pipelined clients atomically: its final
  state, and every ``(old, new)`` it answered, equal a sequential replay of its recorded
  order, which holds every sequence number once (ddos and tb); a malformed request closes its
  connection and is counted; a vanished service fails the client's applies;
* Redis: on one hot key with store latency and ~32 applies in flight, the naive
  read-modify-write loses updates, the compare-and-set client loses none and its order list
  replays to its state; the wrapper's dump (``store.json``, ``store_order.csv``) matches;
* one-line errors: bad store kind, address or delay (ValueError), nothing listening
  (ConnectionError), a port already in use or a non-loopback address (exit status 2); a
  Redis value of the wrong size fails its apply (StoreProtocolError, a ConnectionError),
  and the dump counts keys, values and order entries it cannot read instead of crashing.

Needs ``redis-server`` (``make test`` installs it); nothing here needs root.
"""

from __future__ import annotations

import asyncio
import csv
import json
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nfs import make_nf
from nfs.base import NetworkFunction
from nfs.stores.clients import (
    STORE_ORDER_KEY,
    RedisClient,
    ServiceClient,
    StoreProtocolError,
    make_store,
    redis_key,
)
from nfs.stores.redis_server import RedisServer, dump
from sequencer.wire.packet import PROTO_TCP, TCP_ACK, TCP_FIN, TCP_SYN, Packet, ip_to_int
from sequencer.wire.state_service import (
    REQUEST_HEADER,
    pack_request,
    response_size,
    unpack_response,
)

READY_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(module: str, *argv: str) -> subprocess.Popen:
    """``python -m module argv``, once it printed READY (else fail with its stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    line = proc.stdout.readline().strip() if ready else ""
    if line != "READY":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"{module} did not get ready: {line!r} {err.strip()}")
    return proc


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM ``proc``, check it exits 0 on its own, return its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return err


def read_results(out: Path) -> tuple[dict, list[int]]:
    store = json.loads((out / "store.json").read_text())
    with open(out / "store_order.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["pos"]) for row in rows] == list(range(len(rows)))
    return store, [int(row["seq"]) for row in rows]


def replay(nf: NetworkFunction, records: list[tuple], order: list[int]):
    """Apply ``records[seq]`` for each seq of ``order``, in that order: the final state and
    each seq's ``(old, new)``."""
    state, transitions = nf.new_state(), {}
    for seq in order:
        fields = records[seq]
        key = nf.key(fields)
        old = state.get(key)
        new = nf.apply(old, fields)
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
        transitions[seq] = (old, new)
    return state, transitions


def pkt(src: str, flags: int = TCP_ACK, sport: int = 40000, dport: int = 80) -> Packet:
    return Packet(ip_to_int(src), ip_to_int("10.9.9.9"), PROTO_TCP, sport, dport, flags, 60,
                  0, 0, 0)


def records_for(name: str) -> tuple[NetworkFunction, list[tuple]]:
    """A hand-made packet list's records: few keys, so concurrent packets collide."""
    if name == "ddos":
        nf = make_nf("ddos", threshold=20)
        sources = ["10.0.0.1"] * 5 + ["10.0.0.2"] * 3 + ["10.0.0.3", "10.0.0.4"]
        return nf, [nf.record(pkt(sources[i * 7 % len(sources)]), 1000 * i)
                    for i in range(400)]
    nf = make_nf("tb", rate=1000, burst=3)
    records = []
    for i in range(400):
        flow = i % 4
        # Each flow starts with a SYN, now and then ends with a FIN (the key disappears)
        # and comes back with an ACK (an unknown flow gets a full bucket).
        flags = TCP_SYN if i < 4 else TCP_FIN | TCP_ACK if i % 37 == flow else TCP_ACK
        records.append(nf.record(pkt(f"10.0.1.{flow}", flags, sport=1000 + flow),
                                 50_000 * i))
    return nf, records


async def run_clients(clients, records: list[tuple], in_flight: int) -> dict[int, tuple]:
    """Connect ``clients``, spread ``records`` over them round-robin, at most ``in_flight``
    applies pending per client; return each seq's ``(old, new)``."""
    for client in clients:
        await client.connect()
    results: dict[int, tuple] = {}

    async def worker(index, client):
        gate = asyncio.Semaphore(in_flight)

        async def one(seq):
            async with gate:
                results[seq] = await client.apply(seq, records[seq])

        await asyncio.gather(*(one(seq) for seq in range(index, len(records), len(clients))))

    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    finally:
        for client in clients:
            await client.close()
    return results


# --- the state service ---------------------------------------------------------------------
@pytest.mark.parametrize("nf_name", ["ddos", "tb"])
def test_service_is_a_serial_order_of_concurrent_requests(nf_name, tmp_path):
    nf, records = records_for(nf_name)
    port = free_port()
    proc = start("nfs.stores.service", "--nf", nf_name, "--nf-params",
                 json.dumps(nf.params()), "--listen", f"127.0.0.1:{port}", "--out",
                 str(tmp_path))
    try:
        clients = [make_store("service", nf, f"127.0.0.1:{port}") for _ in range(2)]
        results = asyncio.run(run_clients(clients, records, in_flight=32))
    finally:
        stop(proc)
    store, order = read_results(tmp_path)
    assert sorted(order) == list(range(len(records)))
    state, transitions = replay(nf, records, order)
    assert store["state"] == nf.state_to_json(state)
    assert results == transitions
    assert {(old is None, new is None) for old, new in transitions.values()} >= {
        (True, False), (False, False)}
    assert store["kind"] == "service" and store["ops"] == len(records)
    assert store["connections"] == 2 and store["malformed"] == 0
    assert [c.stats["ops"] for c in clients] == [len(records) // 2] * 2
    assert all(latency > 0 for c in clients for latency in c.latency_us)


def test_service_closes_a_malformed_connection_and_fails_a_lost_one(tmp_path):
    nf = make_nf("ddos")
    port = free_port()
    proc = start("nfs.stores.service", "--nf", "ddos", "--listen", f"127.0.0.1:{port}",
                 "--out", str(tmp_path))

    async def scenario():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # A good request, then one with the wrong record length: one answer, then EOF.
        writer.write(pack_request(nf, 5, (ip_to_int("10.0.0.9"),))
                     + REQUEST_HEADER.pack(6, nf.record_size + 1) + bytes(nf.record_size + 1))
        answers = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        client = ServiceClient(nf, "127.0.0.1", port)
        await client.connect()
        assert await client.apply(7, (ip_to_int("10.0.0.9"),)) == ((1,), (2,))
        proc.send_signal(signal.SIGTERM)
        # Until the service has handled the signal it may still answer: wait for its exit.
        await asyncio.to_thread(proc.wait, 10)
        with pytest.raises(ConnectionError, match="state service at 127.0.0.1"):
            await asyncio.wait_for(client.apply(8, (ip_to_int("10.0.0.9"),)), 5)
        await client.close()
        return answers

    try:
        answers = asyncio.run(scenario())
    finally:
        stop(proc)
    assert len(answers) == response_size(nf)
    assert unpack_response(nf, answers) == (None, (1,))
    store, order = read_results(tmp_path)
    assert order == [5, 7]
    assert store["malformed"] == 1 and store["connections"] == 2
    assert store["state"] == {"10.0.0.9": 2}


def test_service_refuses_a_taken_port_and_other_hosts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "nfs.stores.service", "--nf", "ddos", "--listen",
             f"127.0.0.1:{port}", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == f"state_service: 127.0.0.1:{port} is already in use"
    result = subprocess.run(
        [sys.executable, "-m", "nfs.stores.service", "--nf", "ddos", "--listen",
         "0.0.0.0:7000", "--out", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "state_service: the service listens on a loopback IP address only, not '0.0.0.0'"]


# --- Redis -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(free_port(), tmp_path_factory.mktemp("redis") / "redis.log") as server:
        yield server


HOT_OPS = 200


@pytest.mark.parametrize("atomic", [False, True], ids=["naive", "atomic"])
def test_redis_read_modify_write_on_a_hot_key(redis_server, atomic):
    """2 clients x 16 in flight, 2 ms store latency, one key: the racy client loses
    updates, the compare-and-set one none, and its order list is a serial order."""
    nf = make_nf("ddos", threshold=10_000)
    records = [(ip_to_int("10.0.0.1"),)] * HOT_OPS
    with redis_server.client() as admin:
        admin.flushall()
        clients = [RedisClient(nf, "127.0.0.1", redis_server.port, delay_s=0.002,
                               atomic=atomic) for _ in range(2)]
        results = asyncio.run(run_clients(clients, records, in_flight=16))
        count = nf.unpack_value(admin.get(redis_key(nf, records[0])))[0]
        order = [int(seq) for seq in admin.lrange(STORE_ORDER_KEY, 0, -1)]
    assert sorted(order) == list(range(HOT_OPS))
    if not atomic:
        assert count < HOT_OPS  # lost updates: that is the point of the naive client
        return
    assert count == HOT_OPS
    assert sum(c.stats["retries"] for c in clients) > 0
    state, transitions = replay(nf, records, order)
    assert state == {records[0]: (HOT_OPS,)}
    assert results == transitions


def test_redis_store_dumps_state_and_order(tmp_path):
    nf, records = records_for("tb")
    records = records[:120]
    port = free_port()
    proc = start("nfs.stores.redis_server", "--nf", "tb", "--nf-params", json.dumps(nf.params()),
                 "--port", str(port), "--out", str(tmp_path))
    try:
        clients = [make_store("redis", nf, f"127.0.0.1:{port}") for _ in range(2)]
        results = asyncio.run(run_clients(clients, records, in_flight=8))
    finally:
        stop(proc)
    store, order = read_results(tmp_path)
    assert sorted(order) == list(range(len(records)))
    state, transitions = replay(nf, records, order)
    assert store["state"] == nf.state_to_json(state) and results == transitions
    assert store["kind"] == "redis" and store["ops"] == len(records)
    assert store["bad_keys"] == 0 and store["redis_cpu_s"] >= 0
    assert "Ready to accept connections" in (tmp_path / "redis.log").read_text()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the wrapper stopped its redis-server


def test_redis_store_reports_a_taken_port_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "nfs.stores.redis_server", "--nf", "ddos", "--port", str(port),
             "--out", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and time.monotonic() - started < 10
    assert result.stderr.strip().splitlines() == [
        f"redis_store: 127.0.0.1:{port} is already in use"]


@pytest.mark.parametrize("atomic", [False, True], ids=["naive", "atomic"])
def test_a_corrupt_redis_value_fails_the_apply_in_one_line(redis_server, atomic):
    """A key that something else wrote (a value of the wrong size): the apply fails with
    StoreProtocolError, a ConnectionError (the core counts a store error and drops the
    packet), never a struct.error out of the core's task."""
    nf = make_nf("ddos")
    fields = (ip_to_int("10.0.0.9"),)
    with redis_server.client() as admin:
        admin.flushall()
        admin.set(redis_key(nf, fields), b"abc")
        client = RedisClient(nf, "127.0.0.1", redis_server.port, atomic=atomic)

        async def apply_once():
            await client.connect()
            try:
                return await client.apply(0, fields)
            finally:
                await client.close()

        with pytest.raises(StoreProtocolError) as info:
            asyncio.run(apply_once())
        assert isinstance(info.value, ConnectionError) and "\n" not in str(info.value)
        assert "3 bytes" in str(info.value)
        assert admin.get(redis_key(nf, fields)) == b"abc"  # nothing written


def test_redis_dump_counts_what_it_cannot_read(redis_server):
    nf = make_nf("ddos")
    with redis_server.client() as admin:
        admin.flushall()
        admin.set(redis_key(nf, (7,)), nf.pack_value((3,)))
        admin.set(redis_key(nf, (8,)), b"abc")  # the wrong size for a ddos value
        admin.set(b"k:xy", nf.pack_value((1,)))  # the wrong size for a ddos key
        admin.rpush(STORE_ORDER_KEY, 0, b"one", 2)
    results, order = dump(redis_server, nf)
    assert results["state"] == {"0.0.0.7": 3} and order == [0, 2]
    assert (results["bad_keys"], results["bad_order"], results["ops"]) == (2, 1, 2)


# --- one-line errors -------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "address", "delay", "message"), [
    ("memcached", "127.0.0.1:7000", 0, "unknown store kind 'memcached'"),
    ("service", "127.0.0.1", 0, "must be HOST:PORT"),
    ("redis", ":7000", 0, "must be HOST:PORT"),
    ("redis", "127.0.0.1:http", 0, "must be HOST:PORT"),
    ("redis-naive", "127.0.0.1:70000", 0, "port in 1..65535"),
    ("service", "127.0.0.1:7000", -0.1, "delay must be a finite number"),
    ("redis", "127.0.0.1:7000", float("nan"), "delay must be a finite number"),
])
def test_make_store_rejects_bad_arguments(kind, address, delay, message):
    with pytest.raises(ValueError, match=message):
        make_store(kind, make_nf("ddos"), address, delay_s=delay)


@pytest.mark.parametrize("kind", ["service", "redis", "redis-naive"])
def test_connect_to_nothing_is_a_one_line_connection_error(kind):
    client = make_store(kind, make_nf("ddos"), f"127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionError) as info:
        asyncio.run(client.connect(timeout_s=2))
    assert "cannot connect" in str(info.value) and "\n" not in str(info.value)
