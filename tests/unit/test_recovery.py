"""SCR loss recovery (``nfs.recovery``) with real replicas serving their logs on loopback.

Each replica runs in its own thread and takes its frames from a queue, as a core takes
them from its port; frames the test "loses" never reach the queue. The replicas fetch what
they miss from each other over TCP on 127.0.0.1, and must end where a sequential run over
every packet (minus those lost everywhere) ends.
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading

import pytest

from experiments.traffic import TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from nfs.packet import parse
from nfs.recovery import (
    RecordLog,
    RecoveringReplica,
    ask_records,
    ask_snapshot,
    decode_snapshot,
    encode_snapshot,
    join,
    peer_port,
)
from nfs.reference import StateView, check_views
from sequencer.shim import Sequencer

SPEC = TraceSpec(packets=600, flows=20, skew=1.0, attackers=2, attack_share=0.2, knockers=2,
                 seed=4)
NF_PARAMS = {"ddos": {"threshold": 20}}
_ports = itertools.count(27100, 16)  # a fresh port block per test: no TIME_WAIT clashes


def nf_for(name: str):
    return make_nf(name, **NF_PARAMS.get(name, {}))


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return make_trace(SPEC)


def ts_of(i: int) -> int:
    return 1_000_000 + 1_500 * i


class Cluster:
    """N recovering replicas, each draining its own queue in a thread."""

    def __init__(self, name: str, n: int, fetch_timeout_s: float = 2.0):
        self.base = next(_ports)
        self.replicas = [RecoveringReplica(nf_for(name), c, n, 4096, self.base,
                                           fetch_timeout_s) for c in range(n)]
        for replica in self.replicas:
            replica.serve()
        self.queues = [queue.Queue() for _ in range(n)]
        self.verdicts: list[tuple[int, int, int]] = []
        self.threads = [threading.Thread(target=self._drain, args=(c,), daemon=True)
                        for c in range(n)]
        for thread in self.threads:
            thread.start()

    def _drain(self, core: int) -> None:
        replica = self.replicas[core]
        while (frame := self.queues[core].get()) is not None:
            replica.handle(frame)
            if replica.stopped:
                replica.finish()
                return

    def deliver(self, outputs, stops) -> None:
        for slot, out in outputs:
            if out is not None:
                self.queues[slot].put(out)
        for core, stop in zip(range(len(self.queues)), stops, strict=False):
            self.queues[core].put(stop)
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive()

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()


def run(name: str, n: int, frames: list[bytes], lose=frozenset(), loss=0.0, seed=1):
    seq = Sequencer(nf_for(name), n, loss_rate=loss, loss_seed=seed)
    outputs = [seq.sequence(frame, ts_of(i)) for i, frame in enumerate(frames)]
    outputs = [(slot, None if i in lose else out) for i, (slot, out) in enumerate(outputs)]
    cluster = Cluster(name, n)
    try:
        cluster.deliver(outputs, seq.stop_frames(ts_of(len(frames))))
    finally:
        cluster.close()
    return seq, cluster.replicas


def check(name: str, frames, replicas) -> None:
    """Every replica equals the sequential run minus its own gaps, at the last packet."""
    nf = nf_for(name)
    packets = {i: (parse(f), ts_of(i)) for i, f in enumerate(frames)}
    views = [StateView(f"core{r.core}", r.state_json(), r.applied,
                       frozenset(s for lo, hi in r.gaps for s in range(lo, hi + 1)))
             for r in replicas]
    log = [(s, r.core, v) for r in replicas for s, v in zip(r.log_seq, r.log_verdict,
                                                            strict=True)]
    result = check_views(nf, packets, log, views, {r.core: r.core for r in replicas})
    assert result.equivalent, result.summary()
    assert all(r.applied == len(frames) - 1 for r in replicas)


@pytest.mark.parametrize("name", sorted(NF_CLASSES))
def test_one_percent_loss_is_recovered_for_every_nf(name, frames):
    seq, replicas = run(name, 4, frames, loss=0.01, seed=7)
    assert len(seq.lost) >= 3  # the seed loses some packets of this trace
    check(name, frames, replicas)
    assert all(not r.gaps for r in replicas)  # nothing lost everywhere at 1 %
    assert sum(r.stats["recovered"] for r in replicas) > 0
    processed = {s for r in replicas for s in r.log_seq}
    assert processed == set(range(len(frames))) - set(seq.lost)


def test_without_recovery_the_same_loss_leaves_gaps(frames):
    """The control: plain replicas lose updates the recovering ones fetch."""
    from nfs.worker import Replica

    seq = Sequencer(nf_for("ddos"), 4, loss_rate=0.01, loss_seed=7)
    replicas = [Replica(nf_for("ddos"), c, 4) for c in range(4)]
    for i, frame in enumerate(frames):
        slot, out = seq.sequence(frame, ts_of(i))
        if out is not None:
            replicas[slot].handle(out)
    assert sum(r.stats["gap_records"] for r in replicas) >= len(seq.lost)


def test_a_record_lost_at_every_core_is_skipped_and_counted(frames):
    # Packet 100 and the three after it (whose histories carry its record) are all lost:
    # nobody has record 100; records 101-103 come with packet 104.
    lose = frozenset(range(100, 104))
    _seq, replicas = run("ddos", 4, frames, lose=lose)
    check("ddos", frames, replicas)
    assert all(r.gaps == [(100, 100)] for r in replicas)
    assert sum(r.stats["lost_everywhere"] for r in replicas) == 4


def test_the_injected_loss_is_seeded(frames):
    def lost(seed):
        seq = Sequencer(nf_for("ddos"), 4, loss_rate=0.015, loss_seed=seed)
        for i, frame in enumerate(frames):
            seq.sequence(frame, ts_of(i))
        return list(seq.lost)

    assert lost(3) == lost(3) != lost(4)
    assert 0 < len(lost(3)) < 0.05 * len(frames)


def test_a_core_dies_and_a_replacement_joins_from_a_snapshot(frames):
    name, n = "hh", 3
    seq = Sequencer(nf_for(name), n)
    cluster = Cluster(name, n)
    try:
        third = len(frames) // 3
        outputs = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames[:third])]
        # Core 2 dies: the packets sprayed to it before the controller noticed are lost.
        dead = {i for i, (slot, _) in enumerate(outputs) if slot == 2 and i > third - 10}
        for i, (slot, out) in enumerate(outputs):
            if i not in dead:
                cluster.queues[slot].put(out)
        cluster.queues[2].put(None)
        cluster.threads[2].join(10)
        cluster.replicas[2].close()
        seq.respray(1, (0, 1), 0)  # the shim sprays over the survivors, history 1
        for i in range(third, 2 * third):
            slot, out = seq.sequence(frames[i], ts_of(i))
            assert slot in (0, 1) and out is not None
            cluster.queues[slot].put(out)
        # The replacement copies a live peer at a known sequence number, then rejoins.
        fresh = RecoveringReplica(nf_for(name), 2, n, 4096, cluster.base)
        fresh.serve()
        assert join(fresh) in (0, 1) and fresh.joined_at > 0
        cluster.replicas[2] = fresh
        cluster.threads[2] = threading.Thread(target=cluster._drain, args=(2,), daemon=True)
        cluster.threads[2].start()
        seq.respray(2, (0, 1, 2), 0)
        rest = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames) if i >= 2 * third]
        assert {slot for slot, _ in rest} == {0, 1, 2}
        cluster.deliver(rest, seq.stop_frames(ts_of(len(frames))))
    finally:
        cluster.close()
    check(name, frames, cluster.replicas)
    states = [r.state_json() for r in cluster.replicas]
    assert states[0] == states[1] == states[2]
    assert [e["cores"] for e in seq.reconfigs] == [[0, 1], [0, 1, 2]]
    assert not seq.respray(1, (0,), 0)  # a stale command changes nothing


def test_snapshot_round_trip_and_bad_snapshots():
    nf = nf_for("conntrack")
    state = {(1, 2, 3, 4, 6): (1, 2, 3), (5, 6, 7, 8, 17): (0, 9, 1 << 40)}
    data = encode_snapshot(nf, state, 41, [(3, 5)])
    assert decode_snapshot(nf, data) == (state, 41, [(3, 5)])
    with pytest.raises(ValueError, match="truncated"):
        decode_snapshot(nf, data[:5])
    with pytest.raises(ValueError, match="does not hold"):
        decode_snapshot(nf, data[:-1])


def test_record_log_keeps_the_newest_per_slot():
    log = RecordLog(4)
    for seq in range(10):
        log.put(seq, bytes([seq]))
    assert [log.get(s) for s in range(10)] == [None] * 6 + [bytes([s]) for s in range(6, 10)]
    with pytest.raises(ValueError):
        RecordLog(0)


def test_log_server_answers_and_refuses_garbage():
    replica = RecoveringReplica(nf_for("ddos"), 0, 2, 64, next(_ports))
    replica.serve()
    try:
        size = replica.nf.record_size
        for seq in range(5):
            replica.log.put(seq, bytes(size))
        replica.horizon = 4
        horizon, stopped, records = ask_records(peer_port(0, replica.base_port), 2, 9, size)
        assert (horizon, stopped, sorted(records)) == (4, False, [2, 3, 4])
        with socket.create_connection(("127.0.0.1", peer_port(0, replica.base_port))) as s:
            s.sendall(b"Zgarbage")
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b""  # closed without an answer
        assert replica.server.errors == 1
        with pytest.raises(OSError):
            ask_records(peer_port(0, replica.base_port), 0, 10_000, size)  # > log: refused
    finally:
        replica.close()
    with pytest.raises(OSError):
        ask_snapshot(peer_port(0, replica.base_port), replica.nf)  # nobody listens now
    lone = RecoveringReplica(nf_for("ddos"), 1, 2, 64, next(_ports))
    with pytest.raises(OSError, match="no peer gave a snapshot"):
        join(lone, timeout_s=0.2)
