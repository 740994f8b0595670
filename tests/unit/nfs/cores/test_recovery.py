"""SCR loss recovery (``nfs.cores.recovery``): record rings in shared memory, fetches, rejoin.

The replicas are real ``RecoveringReplica``s on real ring files (in the test's temporary
folder rather than /dev/shm), fed by the real ``Sequencer`` through the offline bench
(``experiments.analysis.offline``: one thread per core, frames the test "loses" never reach a core's
queue) and judged by the oracle a live trial uses.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time

import pytest

from experiments.analysis.offline import ground_truth, report, run_offline, ts_of
from experiments.workload.traffic import TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from nfs.cores.recovery import (
    PeerLog,
    RecordLog,
    RecoveringReplica,
    ask_snapshot,
    create_logs,
    decode_snapshot,
    encode_snapshot,
    join,
    log_path,
    peer_port,
    remove_logs,
    seq_ranges,
)
from nfs.oracle import check_run
from sequencer.shim import Sequencer

SPEC = TraceSpec(packets=600, flows=20, skew=1.0, attackers=2, attack_share=0.2, knockers=2,
                 seed=4)
NF_PARAMS = {"ddos": {"threshold": 20}}
_ports = iter(range(27100, 28000, 16))  # a fresh port block per test: no TIME_WAIT clashes


def nf_for(name: str):
    return make_nf(name, **NF_PARAMS.get(name, {}))


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return make_trace(SPEC)


def run(name: str, frames, tmp_path, **kwargs):
    return run_offline(lambda: nf_for(name), frames, 4, recovery=True, ring_dir=tmp_path,
                       **kwargs)


@pytest.mark.parametrize("name", sorted(NF_CLASSES))
def test_one_percent_loss_is_recovered_for_every_nf(name, frames, tmp_path):
    out = run(name, frames, tmp_path, loss_rate=0.01, loss_seed=7)
    assert len(out.sequencer.lost) >= 3  # the seed loses some packets of this trace
    assert out.result.equivalent, out.result.problems  # strictly: nothing lost anywhere
    assert all(not core.gaps for core in out.cores)
    assert sum(core.stats["recovered"] for core in out.cores) > 0
    processed = {s for core in out.cores for s in core.log_seq}
    assert processed == set(range(len(frames))) - set(out.sequencer.lost)
    assert not list(tmp_path.iterdir())  # the rings are gone


def test_without_recovery_the_same_loss_leaves_gaps(frames):
    """The control: plain replicas lack updates the recovering ones fetch; the oracle calls
    them consistent (each gap is supported by a lost frame) but not equivalent."""
    out = run_offline(lambda: nf_for("ddos"), frames, 4, loss_rate=0.01, loss_seed=7)
    assert sum(core.stats["gap_records"] for core in out.cores) >= len(out.sequencer.lost)
    assert out.result.consistent and not out.result.equivalent
    assert out.result.summary()["unsupported_gaps"] == 0


def test_a_record_lost_at_every_core_is_skipped_and_counted(frames, tmp_path):
    # Packet 100 and the three after it (whose histories carry its record) are all lost at
    # their cores' queues: nobody has record 100; records 101-103 come with packet 104.
    out = run("ddos", frames, tmp_path, queue_drops=range(100, 104))
    assert all(core.gaps == [(100, 100)] for core in out.cores)
    assert sum(core.stats["lost_everywhere"] for core in out.cores) == 4
    assert out.result.lost_everywhere == 1  # the ground truth agrees: one record
    assert out.result.consistent and not out.result.equivalent


def test_a_record_given_up_while_a_peer_had_it_is_an_unsupported_gap(frames, tmp_path):
    """A fetch that times out (here: at once) gives up records a peer's ring holds: the
    replicas may then differ from each other, and the oracle must call that a failure."""
    def impatient(nf, core, n):
        replica = RecoveringReplica(nf, core, n, tmp_path / "offline", fetch_timeout_s=0.0)
        original = replica.fetch
        replica.fetch = lambda lo, hi: {} if core == 1 else original(lo, hi)
        return replica

    out = run("hh", frames, tmp_path, queue_drops=[41], make_core=impatient)
    assert out.cores[1].gaps  # core 1 lost its frame 41 and gave up on its records
    assert not out.result.consistent
    assert any("declares records" in p for p in out.result.problems)


def test_the_injected_loss_is_seeded(frames):
    def lost(seed):
        seq = Sequencer(nf_for("ddos"), 4, loss_rate=0.015, loss_seed=seed)
        for i, frame in enumerate(frames):
            seq.sequence(frame, ts_of(i))
        return list(seq.lost)

    assert lost(3) == lost(3) != lost(4)
    assert 0 < len(lost(3)) < 0.05 * len(frames)


def test_a_core_dies_and_a_replacement_joins_from_a_snapshot(frames, tmp_path):
    name, n, base = "hh", 3, next(_ports)
    prefix = tmp_path / "rings"
    rings = create_logs(prefix, n, nf_for(name).record_size)
    seq = Sequencer(nf_for(name), n)
    replicas = [RecoveringReplica(nf_for(name), c, n, prefix, base) for c in range(n)]
    for replica in replicas:
        replica.serve()
    try:
        third = len(frames) // 3
        outputs = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames[:third])]
        # Core 2 dies: the packets sprayed to it before the controller noticed are lost.
        dead = {i for i, (slot, _) in enumerate(outputs) if slot == 2 and i > third - 10}
        for i, (slot, out) in enumerate(outputs):
            if i not in dead:
                replicas[slot].handle(out)
        replicas[2].close()  # its ring stays; its lock goes with it
        seq.respray(1, (0, 1), 0)  # the shim sprays over the survivors
        for i in range(third, 2 * third):
            slot, out = seq.sequence(frames[i], ts_of(i))
            assert slot in (0, 1)
            replicas[slot].handle(out)
        # The replacement copies a live peer at a known sequence number, then rejoins.
        fresh = RecoveringReplica(nf_for(name), 2, n, prefix, base, joining=True)
        fresh.serve()
        donor = join(fresh)
        assert donor in (0, 1) and fresh.joined_at > 0
        assert (fresh.chain, fresh.applied) == (replicas[donor].chain, replicas[donor].applied)
        replicas[2] = fresh
        seq.respray(2, (0, 1, 2), 0)
        rest = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames) if i >= 2 * third]
        assert {slot for slot, _ in rest} == {0, 1, 2}
        for slot, out in [*rest, *((s, f) for s, f in zip((0, 1, 2), seq.stop_frames(
                ts_of(len(frames))), strict=True))]:
            replicas[slot].handle(out)
    finally:
        for replica in replicas:
            replica.close()
        remove_logs(rings)
    states = [r.state_json() for r in replicas]
    assert states[0] == states[1] == states[2]
    assert [e["cores"] for e in seq.reconfigs] == [[0, 1], [0, 1, 2]]
    # The oracle's view: the replacement counts from its snapshot; the dead core's frames
    # are lost with it; every replica equals one core running every packet.
    result = check_run(nf_for(name), ground_truth(seq), [report(r) for r in replicas],
                       recovery=True)
    assert result.equivalent, result.problems
    assert not seq.respray(1, (0,), 0)  # a stale command changes nothing


# --- the rings ----------------------------------------------------------------------------


def test_ring_keeps_the_newest_record_per_slot(tmp_path):
    (path,) = create_logs(tmp_path / "r", 1, 2, capacity=4)
    log = RecordLog(path, 2)
    reader = PeerLog(path, 2)
    try:
        assert reader.horizon == -1 and not reader.stopped and reader.seqs() == []
        for seq in range(10):
            log.put(seq, bytes([seq, 0]))
        assert [reader.get(s) for s in range(10)] == [None] * 6 + [bytes([s, 0])
                                                                   for s in range(6, 10)]
        assert reader.seqs() == [6, 7, 8, 9]
        log.set_horizon(9)
        log.set_stopped()
        assert reader.horizon == 9 and reader.stopped
    finally:
        log.close()
        reader.close()
    with pytest.raises(ValueError):
        create_logs(tmp_path / "bad", 1, 2, capacity=0)
    with pytest.raises(ValueError):
        create_logs(tmp_path / "bad", 1, 256)
    with pytest.raises(ValueError, match="not a record log of 3-byte records"):
        PeerLog(path, 3)
    with pytest.raises(OSError, match="cannot open the record log"):
        PeerLog(tmp_path / "nothing", 2)
    assert seq_ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]


def test_a_reader_never_takes_a_half_written_record(tmp_path):
    """The writer marks a slot invalid while it writes; a reader that races it sees either
    the whole record of the sequence number it asked for, or nothing."""
    (path,) = create_logs(tmp_path / "r", 1, 8, capacity=2)
    log, reader = RecordLog(path, 8), PeerLog(path, 8)
    done = threading.Event()

    def write():
        for seq in range(50_000):
            log.put(seq, seq.to_bytes(8, "big"))
            log.set_horizon(seq)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen = 0
    try:
        while not done.is_set():
            seq = reader.horizon
            record = reader.get(seq) if seq >= 0 else None
            if record is not None:
                assert record == seq.to_bytes(8, "big")
                seen += 1
    finally:
        writer.join()
        log.close()
        reader.close()
    assert seen > 0


def _own_and_wait(path, ready):
    log = RecordLog(path, 2)
    log.own()
    log.put(5, b"ab")
    ready.set()
    time.sleep(60)


def test_a_ring_outlives_its_owner_and_shows_its_death(tmp_path):
    (path,) = create_logs(tmp_path / "r", 1, 2)
    ready = multiprocessing.get_context("fork").Event()
    child = multiprocessing.get_context("fork").Process(target=_own_and_wait,
                                                        args=(path, ready))
    child.start()
    reader = PeerLog(path, 2)
    try:
        assert ready.wait(10)
        assert reader.alive()
        second = RecordLog(path, 2)
        with pytest.raises(OSError, match="belongs to a live core"):
            second.own()  # a second owner while the first lives
        second.close()
        os.kill(child.pid, signal.SIGKILL)  # no cleanup at all: the kernel drops the lock
        child.join(10)
        assert not reader.alive()
        assert reader.get(5) == b"ab"  # its records are not lost with it
        replacement = RecordLog(path, 2)
        replacement.own()  # a replacement may take the ring over
        replacement.close()
    finally:
        reader.close()
        if child.is_alive():
            child.kill()


def test_a_fetch_waits_for_a_peer_that_is_behind(tmp_path):
    nf = nf_for("ddos")
    prefix = tmp_path / "r"
    rings = create_logs(prefix, 2, nf.record_size)
    fetcher = RecoveringReplica(nf, 0, 2, prefix)
    peer = RecordLog(log_path(prefix, 1), nf.record_size)
    peer.own()
    record = nf.pack_record(_packet(), 0)
    try:
        peer.set_horizon(3)

        def catch_up():
            time.sleep(0.05)
            peer.put(7, record)
            peer.set_horizon(9)

        thread = threading.Thread(target=catch_up)
        thread.start()
        started = time.monotonic()
        assert fetcher.fetch(6, 7) == {7: record}  # 6: nobody has it once the peer passed
        thread.join()
        assert 0.04 < time.monotonic() - started < 1.0
        assert len(fetcher.fetch_us) == 1 and fetcher.fetch_us[0] > 40_000
        peer.close()  # dead: a fetch no longer waits for it
        started = time.monotonic()
        assert fetcher.fetch(20, 20) == {}
        assert time.monotonic() - started < 0.5
    finally:
        fetcher.close()
        peer.close()
        remove_logs(rings)


def _packet():
    from sequencer.wire.packet import PROTO_TCP, build, parse

    return parse(build(src=1, dst=2, proto=PROTO_TCP, sport=1, dport=2, trace_id=0))


# --- snapshots ------------------------------------------------------------------------------


def test_snapshot_round_trip_and_bad_snapshots():
    nf = nf_for("conntrack")
    state = {(1, 2, 3, 4, 6): (1, 2, 3), (5, 6, 7, 8, 17): (0, 9, 1 << 40)}
    data = encode_snapshot(nf, state, 41, -77, [(3, 5)])
    assert decode_snapshot(nf, data) == (state, 41, -77, [(3, 5)])
    with pytest.raises(ValueError, match="truncated"):
        decode_snapshot(nf, data[:5])
    with pytest.raises(ValueError, match="does not hold"):
        decode_snapshot(nf, data[:-1])


def test_snapshot_server_answers_and_refuses_garbage(tmp_path):
    nf = nf_for("ddos")
    rings = create_logs(tmp_path / "r", 2, nf.record_size)
    replica = RecoveringReplica(nf, 0, 2, tmp_path / "r", next(_ports))
    replica.serve()
    try:
        replica.state[(7,)] = (3,)
        replica.applied, replica.chain = 12, 99
        assert ask_snapshot(peer_port(0, replica.base_port), nf) == ({(7,): (3,)}, 12, 99, [])
        with socket.create_connection(("127.0.0.1", peer_port(0, replica.base_port))) as s:
            s.sendall(b"Zgarbage")
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b""  # closed without an answer
        deadline = time.monotonic() + 5
        while replica.server.errors != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert replica.server.errors == 1
    finally:
        replica.close()
    with pytest.raises(OSError):
        ask_snapshot(peer_port(0, replica.base_port), nf)  # nobody listens now
    lone = RecoveringReplica(nf, 1, 2, tmp_path / "r", next(_ports), joining=True)
    try:
        with pytest.raises(OSError, match="no peer gave a snapshot"):
            join(lone, timeout_s=0.2)
    finally:
        lone.close()
        remove_logs(rings)


# --- regressions found by review -----------------------------------------------------------


def test_a_core_logs_its_own_record_before_its_horizon_passes_it(frames, tmp_path):
    """A peer that sees a ring's horizon past a record takes the ring's answer as final:
    the core's own record must be in the ring by then (it used to be logged only after the
    fast-forward and its fetches: a peer gave records up that the core was about to log)."""
    nf = nf_for("hh")
    prefix = tmp_path / "r"
    rings = create_logs(prefix, 2, nf.record_size)
    replica = RecoveringReplica(nf, 0, 2, prefix)
    reader = PeerLog(log_path(prefix, 0), nf.record_size)
    checked = []
    raise_horizon = replica.log.set_horizon

    def set_horizon(seq: int) -> None:
        assert reader.get(seq) is not None, f"horizon {seq} before its record"
        checked.append(seq)
        raise_horizon(seq)

    replica.log.set_horizon = set_horizon
    seq = Sequencer(nf_for("hh"), 2)
    try:
        for i, frame in enumerate(frames[:40]):
            slot, out = seq.sequence(frame, ts_of(i))
            if slot == 0:
                replica.handle(out)
    finally:
        replica.close()
        reader.close()
        remove_logs(rings)
    assert checked == list(range(0, 40, 2))


def test_a_replacement_does_not_block_its_donor(frames, tmp_path):
    """A replacement's ring stays as the dead core left it (final) until the replacement
    has its snapshot: a donor waiting in a fetch on the replacement's ring would hold the
    lock the snapshot needs (it used to, until the fetch timed out)."""
    nf = nf_for("ddos")
    prefix, base = tmp_path / "r", next(_ports)
    rings = create_logs(prefix, 3, nf.record_size)
    seq = Sequencer(nf_for("ddos"), 3)
    outputs = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames[:20])]
    donor = RecoveringReplica(nf, 0, 3, prefix, base)
    donor.serve()
    fresh = None
    try:
        for slot, out in outputs[:9]:
            if slot == 0:
                donor.handle(out)
        fresh = RecoveringReplica(nf_for("ddos"), 2, 3, prefix, base, joining=True)
        # The donor lost its frame of seq 9: the one of seq 12 reveals 7..9 missing, which
        # nobody alive has (core 1 is gone too).
        fetching = threading.Thread(target=donor.handle, args=(outputs[12][1],))
        fetching.start()
        time.sleep(0.05)
        started = time.monotonic()
        assert join(fresh) == 0
        assert time.monotonic() - started < 1.0
        fetching.join(10)
        assert donor.stats["fetch_timeouts"] == 0
    finally:
        donor.close()
        if fresh is not None:
            fresh.close()
        remove_logs(rings)


def test_a_frame_from_a_far_future_is_not_fetched_record_by_record(tmp_path):
    """A gap longer than any ring (here a forged frame 4 billion packets ahead) is lost
    at once, not asked for record by record (that took all the memory there is)."""
    nf = nf_for("ddos")
    rings = create_logs(tmp_path / "r", 2, nf.record_size, capacity=64)
    replica = RecoveringReplica(nf, 0, 2, tmp_path / "r")
    try:
        replica.applied = 9
        started = time.monotonic()
        replica.note_gap(2**32)
        assert time.monotonic() - started < 1.0
        assert replica.applied == 2**32 - 1
        assert replica.stats["lost_everywhere"] == 2**32 - 10
    finally:
        replica.close()
        remove_logs(rings)
