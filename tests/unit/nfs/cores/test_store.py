"""The store strategies' pure parts: the strategy table, a store core's frame checks and
its asyncio window (against an in-memory store that answers after a delay), the
access-order oracle, sweep points per store delay, and the store-delay figure.

The real stores (state service, Redis) have their own tests (``test_stores.py``); the
whole thing on a real network is ``tests/emulation/test_stores_live.py``.
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from pathlib import Path

import pytest

from experiments.campaigns import sweep
from experiments.plots.latency import DELAY_PLOT
from experiments.plots.plotting import plot_run
from experiments.workload.traffic import TraceSpec, make_trace
from nfs import make_nf
from nfs.cores.store import StoreCore, latency_summary
from nfs.reference import check_access_order, run_reference
from nfs.strategies import get as get_strategy
from nfs.strategies import names as strategy_names
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire.packet import parse

SPEC = TraceSpec(packets=300, flows=10, skew=1.5, attackers=1, attack_share=0.3, seed=5)


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return make_trace(SPEC)


@pytest.fixture(scope="module")
def packets(frames) -> dict:
    return {i: (parse(f), 1000 * i) for i, f in enumerate(frames)}


class MemoryStore:
    """An in-memory store that answers after ``delay_s``: it applies operations in the
    order they *arrive*, like the state service, and records that order."""

    kind = "memory"

    def __init__(self, nf, delay_s: float = 0.0):
        self.nf, self.delay_s = nf, delay_s
        self.state: dict = {}
        self.order: list[int] = []
        self.stats: Counter = Counter()
        self.latency_us: list[float] = []
        self.in_flight = self.most_in_flight = 0

    async def apply(self, seq, fields):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        key = self.nf.key(fields)
        old = self.state.get(key)
        new = self.nf.apply(old, fields)
        self.state[key] = new
        self.order.append(seq)
        self.stats["ops"] += 1
        await asyncio.sleep(self.delay_s)
        self.in_flight -= 1
        return old, new


def store_core(strategy: str, nf, store, core=0, n_cores=1, inflight=8) -> StoreCore:
    return StoreCore(strategy, nf, core, n_cores, store, inflight,
                     get_strategy(strategy).blocking)


STORE_STRATEGIES = ("service", "service-blocking", "remote", "remote-blocking", "remote-naive")


def test_strategy_table():
    assert set(strategy_names()) == {"scr", "lock", "shard", "rsspp", "single",
                                     *STORE_STRATEGIES}
    assert all(get_strategy(s).spray == "lock" and get_strategy(s).store
               for s in STORE_STRATEGIES)
    assert get_strategy("shard").spray == "shard"
    assert get_strategy("service-blocking").blocking
    assert not get_strategy("remote").blocking
    assert get_strategy("remote-naive").store == "redis-naive"


def test_blocking_strategy_forces_one_in_flight():
    nf = make_nf("ddos")
    assert store_core("service-blocking", nf, MemoryStore(nf), inflight=32).inflight == 1
    assert store_core("service", nf, MemoryStore(nf), inflight=32).inflight == 32
    with pytest.raises(ValueError, match="in-flight"):
        store_core("service", nf, MemoryStore(nf), inflight=0)


def test_accept_checks_frames_like_lock(frames):
    nf = make_nf("ddos")
    core = store_core("service", nf, MemoryStore(nf), core=0, n_cores=2)
    seq = Sequencer(nf, 2, "lock")
    out = [seq.sequence(f, 1000 * i)[1] for i, f in enumerate(frames[:4])]
    assert core.accept(out[1]) is None  # slot 1's frame
    assert core.malformed["wrong_core"] == 1
    first = core.accept(out[0])
    assert first[0] == 0 and first[1].trace_id == 0
    assert core.accept(out[0]) is None  # again: stale
    assert core.malformed["stale_seq"] == 1
    assert core.accept(out[2][:20]) is None  # truncated
    assert sum(core.malformed.values()) == 3
    scr = Sequencer(nf, 2, "scr")
    with_history = [scr.sequence(f, 1000 * i)[1] for i, f in enumerate(frames[:3])]
    assert core.accept(with_history[2]) is None
    assert core.malformed["bad_header"] == 1
    stop = seq.stop_frames(10_000)[0]
    assert core.accept(stop) is None and core.stopped


def run_core(core: StoreCore, frames: list[bytes], nf) -> list[bytes]:
    """Feed sequenced frames to ``core`` through its asyncio window, as ``serve`` does."""
    seq = Sequencer(nf, 1, "lock")
    out: list[bytes] = []

    async def main():
        slots = asyncio.Semaphore(core.inflight)
        tasks = []

        async def one(item, frame):
            try:
                result = await core.handle_async(*item, 0, frame)
                if result is not None:
                    out.append(result)
            finally:
                slots.release()

        for i, frame in enumerate(frames):
            await slots.acquire()
            sequenced = seq.sequence(frame, 1000 * i)[1]
            tasks.append(asyncio.ensure_future(one(core.accept(sequenced), sequenced)))
        await asyncio.gather(*tasks)

    asyncio.run(main())
    return out


@pytest.mark.parametrize("strategy", ["service", "service-blocking"])
def test_window_overlaps_queries_and_matches_a_replay(strategy, frames, packets):
    nf = make_nf("ddos", threshold=20)
    store = MemoryStore(nf, delay_s=0.001)
    core = store_core(strategy, nf, store, inflight=8)
    run_core(core, frames, nf)
    assert store.most_in_flight == (1 if strategy.endswith("blocking") else 8)
    assert core.stats["processed"] == len(frames)
    log = list(zip(core.log_seq, [0] * len(frames), core.log_verdict, strict=True))
    check = check_access_order(nf, packets, store.order, log, nf.state_to_json(store.state))
    assert check.equivalent, check.summary()
    assert latency_summary(core.latency_us)["n"] == len(frames)


def test_access_order_check_catches_a_lost_update(packets):
    nf = make_nf("ddos", threshold=5)
    order = list(range(50))
    reference = run_reference(nf, (packets[s] for s in order))
    log = [(s, 0, v) for s, v in enumerate(reference.verdicts)]
    assert check_access_order(nf, packets, order, log, reference.state).equivalent
    # A racy read-modify-write: an update applied but then overwritten.
    lost = run_reference(nf, (packets[s] for s in order[1:]))
    bad = check_access_order(nf, packets, order, log, lost.state)
    assert bad.diverged_replicas == ["store"]
    # An order with a repeat or an unknown sequence number is itself wrong.
    assert not check_access_order(nf, packets, [0, 0], [], {}).equivalent
    assert not check_access_order(nf, packets, [10**6], [], {}).equivalent


def test_access_order_check_compares_each_verdict(packets):
    nf = make_nf("ddos", threshold=1)
    order = [2, 0, 1]
    reference = run_reference(nf, (packets[s] for s in order))
    good = [(s, 0, v) for s, v in zip(order, reference.verdicts, strict=True)]
    assert check_access_order(nf, packets, order, good, reference.state).equivalent
    flipped = [(s, c, 1 - v) for s, c, v in good[:1]] + good[1:]
    result = check_access_order(nf, packets, order, flipped, reference.state)
    assert len(result.verdict_mismatches) == 1


def test_latency_summary():
    assert latency_summary([]) == {"n": 0}
    p = latency_summary(range(1, 101))
    assert p["p50"] == 51 and p["p99"] == 100 and p["mean"] == 50.5 and p["n"] == 100


def test_sweep_points_multiply_only_store_strategies_by_delay():
    parser = sweep.build_parser("t", "t", {"nf": ["ddos"], "strategies": ["scr"],
                                           "cores": [1], "skews": [0.0], "mode": "fixed",
                                           "duration": 1.0, "precision": 0.1,
                                           "max_steps": 2}, {})
    args = parser.parse_args(["--strategies", "scr", "service", "remote-blocking",
                              "--store-delays-us", "0", "1000", "--cores", "2"])
    points = sweep.points(args)
    assert [p.name for p in points] == [
        "ddos-scr-c2-s0", "ddos-service-c2-s0", "ddos-service-c2-s0-d1000us",
        "ddos-remote-blocking-c2-s0", "ddos-remote-blocking-c2-s0-d1000us"]


def test_table_shows_store_columns_only_when_needed():
    base = {"nf": "ddos", "cores": 1, "skew": 0, "top_flow_share": 0.01,
            "throughput_pps": 900, "loss": 0.0, "faithful": True, "check_equivalent": True,
            "search_steps": 3}
    assert "order" not in sweep.table([{**base, "strategy": "scr"}])
    text = sweep.table([{**base, "strategy": "scr"},
                        {**base, "strategy": "service", "store_delay_us": 1000.0,
                         "latency_us_p50": 1500.0, "check_access_order": True}])
    assert "order ✓" in text and "1000" in text and "1500" in text


def test_delay_figure_from_csv(tmp_path: Path):
    columns = ["nf", "strategy", "cores", "skew", "store_delay_us", "top_flow_share", "mode",
               "throughput_pps", "faithful", "check_equivalent", "latency_us_p50", "error"]
    rows = []
    for delay in (0, 1000, 2000):
        for strategy, pps in (("service", 4000), ("service-blocking", 1e6 / (delay + 200))):
            rows.append({"nf": "ddos", "strategy": strategy, "cores": 1, "skew": 0,
                         "store_delay_us": delay, "top_flow_share": 0.01, "mode": "mlffr",
                         "throughput_pps": pps, "faithful": "True", "check_equivalent": "",
                         "latency_us_p50": delay + 300, "error": ""})
    with open(tmp_path / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    paths = plot_run(tmp_path)
    assert tmp_path / DELAY_PLOT in paths
    assert (tmp_path / DELAY_PLOT).stat().st_size > 10_000


def test_sequenced_stop_frames_reach_store_cores():
    nf = make_nf("ddos")
    seq = Sequencer(nf, 3, "lock")
    stops = seq.stop_frames(5)
    for i, frame in enumerate(stops):
        core = store_core("remote", nf, MemoryStore(nf), core=i, n_cores=3)
        assert h.unpack_header(frame).slot == i
        assert core.accept(frame) is None and core.stopped
