"""SCR end to end without sockets: ``Sequencer`` feeding one ``Replica`` per core.

A generated trace goes through ``Sequencer.sequence``; each output frame is routed to the
replica of its slot, then the STOP frames. For 1, 2 and 4 cores and every NF, core ``i``
must get exactly the sequence numbers ``seq = i (mod N)``, and every replica's final state
and every verdict must equal the sequential reference's (``nfs.reference``). Then the
replica's defences: malformed, misrouted, stale and non-IPv4 frames are counted and dropped
without touching the state, and lost frames are counted in ``gap_records``. The sequencer
raises ``MalformedFrame`` for a bad ingress frame without spending a sequence number.
"""

from __future__ import annotations

import pytest
from scapy.layers.l2 import ARP, Ether

from experiments.workload.traffic import TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from nfs.base import PASS
from nfs.cores.replica import Replica
from nfs.reference import compare_replicas, run_reference
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire.packet import PROTO_TCP, build, ip_to_int, parse

SPEC = TraceSpec(packets=400, flows=20, skew=1.0, attackers=2, attack_share=0.2, knockers=2,
                 seed=3)
NF_PARAMS = {"ddos": {"threshold": 20}, "knock": {}}
CORES = [1, 2, 4]


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return make_trace(SPEC)


def ts_of(i: int) -> int:
    return 1_000_000 + 1_500 * i


def nf_for(name: str):
    return make_nf(name, **NF_PARAMS.get(name, {}))


def sequence_all(seq: Sequencer, frames: list[bytes]) -> list[tuple[int, bytes]]:
    return [seq.sequence(frame, ts_of(i)) for i, frame in enumerate(frames)]


def run_scr(name: str, n: int, frames: list[bytes]):
    """Sequence ``frames``, deliver them and the STOP frames; return all the pieces."""
    seq = Sequencer(nf_for(name), n)
    replicas = [Replica(nf_for(name), core, n) for core in range(n)]
    outputs = sequence_all(seq, frames)
    forwarded: dict[int, bytes] = {}
    for i, (slot, out) in enumerate(outputs):
        fwd = replicas[slot].handle(out)
        if fwd is not None:
            forwarded[i] = fwd
    stops = seq.stop_frames(ts_of(len(frames)))
    for core, stop in enumerate(stops):
        assert replicas[core].handle(stop) is None
    return seq, replicas, outputs, forwarded


@pytest.fixture(scope="module")
def runs(frames):
    return {(name, n): run_scr(name, n, frames) for name in NF_CLASSES for n in CORES}


@pytest.fixture(scope="module")
def references(frames):
    packets = [(parse(frame), ts_of(i)) for i, frame in enumerate(frames)]
    return {name: run_reference(nf_for(name), packets) for name in NF_CLASSES}


CASES = [(name, n) for name in NF_CLASSES for n in CORES]


# --- equivalence with the sequential reference ----------------------------------------------


@pytest.mark.parametrize(("name", "n"), CASES)
def test_round_robin(name, n, runs, frames):
    seq, replicas, outputs, _ = runs[name, n]
    assert [slot for slot, _ in outputs] == [i % n for i in range(len(frames))]
    for core, replica in enumerate(replicas):
        assert list(replica.log_seq) == list(range(core, len(frames), n))
        assert replica.stats["processed"] == len(replica.log_seq)
    for i, (slot, out) in enumerate(outputs):
        hdr = h.unpack_header(out)
        assert (hdr.seq, hdr.slot, hdr.n_cores, hdr.timestamp_ns) == (i, slot, n, ts_of(i))
        assert out[6:12] == h.mac_bytes(h.slot_mac(slot))
    assert seq.next_seq == len(frames)
    assert list(seq.trace_ids) == list(range(len(frames)))
    assert list(seq.timestamps) == [ts_of(i) for i in range(len(frames))]


@pytest.mark.parametrize(("name", "n"), CASES)
def test_history_records(name, n, runs, frames):
    """Frame ``seq`` carries the records of ``seq-count .. seq-1``, ``count = min(seq, N-1)``."""
    _, _, outputs, _ = runs[name, n]
    nf = nf_for(name)
    recs = [nf.pack_record(parse(frame), ts_of(i)) for i, frame in enumerate(frames)]
    for i, (_, out) in enumerate(outputs):
        hdr, history, inner = h.decode(out)
        assert hdr.count == min(i, n - 1)
        assert hdr.flags == 0
        assert history == recs[i - hdr.count : i]
        assert inner == frames[i]


@pytest.mark.parametrize(("name", "n"), CASES)
def test_final_states_equal_reference(name, n, runs, references, frames):
    _, replicas, _, _ = runs[name, n]
    ref = references[name]
    for replica in replicas:
        assert replica.stopped
        assert replica.applied == len(frames) - 1
        assert replica.nf.state_to_json(replica.state) == ref.state
        assert replica.results()["state"] == ref.state
        assert not replica.malformed
        assert replica.stats["gap_records"] == 0


@pytest.mark.parametrize(("name", "n"), CASES)
def test_verdicts_equal_reference(name, n, runs, references, frames):
    _, replicas, _, forwarded = runs[name, n]
    ref = references[name]
    log = [
        (s, replica.core, v)
        for replica in replicas
        for s, v in zip(replica.log_seq, replica.log_verdict, strict=True)
    ]
    assert len(log) == len(frames)
    for s, _core, verdict in log:
        assert verdict == ref.verdicts[s], f"seq {s}"
    outcome = compare_replicas(
        ref, log, {r.core: (r.nf.state_to_json(r.state), r.applied) for r in replicas}
    )
    assert outcome.equivalent
    assert outcome.packets_checked == len(frames)
    # Passing packets come back out as the original frames, SCR header stripped.
    assert sorted(forwarded) == [i for i, v in enumerate(ref.verdicts) if v == PASS]
    assert all(forwarded[i] == frames[i] for i in forwarded)
    for replica in replicas:
        assert list(replica.log_trace) == list(replica.log_seq)
        assert replica.stats["passed"] + replica.stats["dropped"] == replica.stats["processed"]


def test_reference_verdicts_are_mixed(references):
    for name, ref in references.items():
        assert len(set(ref.verdicts)) == 2, name


@pytest.mark.parametrize("n", [2, 4, 8])
def test_fewer_packets_than_cores(n):
    """Cores that get no packet still end at the final state, via the STOP frame."""
    frames = make_trace(TraceSpec(packets=12, flows=2, attackers=0, knockers=1,
                                  service_packets=1, seed=5))[:3]
    seq, replicas, _, _ = run_scr("knock", n, frames)
    ref = run_reference(nf_for("knock"), [(parse(f), ts_of(i)) for i, f in enumerate(frames)])
    for replica in replicas:
        assert replica.stopped
        assert replica.applied == 2
        assert replica.nf.state_to_json(replica.state) == ref.state
    assert seq.stops == 1


def test_stop_frames():
    nf = nf_for("ddos")
    seq = Sequencer(nf, 4)
    frames = [build(src=ip_to_int(f"10.0.0.{i}"), dst=1, proto=PROTO_TCP, sport=1, dport=2,
                    trace_id=i) for i in range(6)]
    sequence_all(seq, frames)
    stops = seq.stop_frames(999)
    assert len(stops) == 4
    for slot, stop in enumerate(stops):
        hdr, history, inner = h.decode(stop)
        assert hdr == h.ScrHeader(h.FLAG_STOP, 3, nf.record_size, slot, 4, 4, 6, 999)
        assert history == [nf.pack_record(parse(f), 0) for f in frames[3:]]
        assert inner == b""
        assert seq.is_stop_marker(stop)
    assert not seq.is_stop_marker(frames[0])


def test_sequencer_core_count_limits():
    nf = nf_for("ddos")
    for n in (0, -1, h.MAX_CORES + 1):
        with pytest.raises(ValueError, match="cores"):
            Sequencer(nf, n)


def test_sequencer_rejects_core_counts_the_header_cannot_carry():
    """``n_cores`` is one byte on the wire: 256 cores must be refused up front, not crash
    with ``struct.error`` on the first packet."""
    with pytest.raises(ValueError, match="cores"):
        Sequencer(nf_for("ddos"), 256)


def test_sequencer_with_255_cores():
    nf = nf_for("ddos")
    seq = Sequencer(nf, 255)
    frame = build(src=1, dst=2, proto=PROTO_TCP, sport=1, dport=2, trace_id=0)
    outs = [seq.sequence(frame, i) for i in range(300)]
    assert [slot for slot, _ in outs] == [i % 255 for i in range(300)]
    assert h.unpack_header(outs[-1][1]).count == 254


def test_sequence_numbers_wrap_on_the_wire():
    seq = Sequencer(nf_for("ddos"), 2)
    seq.next_seq = h.SEQ_MODULUS - 1
    frame = build(src=1, dst=2, proto=PROTO_TCP, sport=1, dport=2, trace_id=0)
    assert h.unpack_header(seq.sequence(frame, 0)[1]).seq == h.SEQ_MODULUS - 1
    slot, out = seq.sequence(frame, 0)
    assert h.unpack_header(out).seq == 0
    assert slot == 1  # the round robin goes on across the wrap


# --- malformed ingress at the sequencer ----------------------------------------------------------


BAD_INGRESS = [
    ("truncated", b"\x00" * 20),
    ("ethertype", bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP())),
    ("bad_ip", b"\x02" * 12 + b"\x08\x00" + b"\x65" + bytes(45)),
]


@pytest.mark.parametrize(("reason", "frame"), BAD_INGRESS, ids=[r for r, _ in BAD_INGRESS])
def test_sequencer_raises_without_consuming_a_seq(reason, frame, frames):
    seq = Sequencer(nf_for("knock"), 3)
    seq.sequence(frames[0], 1)
    ring_before = list(seq.ring)
    with pytest.raises(h.MalformedFrame) as info:
        seq.sequence(frame, 2)
    assert info.value.reason == reason
    assert seq.next_seq == 1
    assert list(seq.ring) == ring_before
    assert list(seq.trace_ids) == [0]
    assert list(seq.timestamps) == [1]
    assert not seq.malformed  # counting is the caller's job
    slot, out = seq.sequence(frames[1], 3)
    assert (slot, h.unpack_header(out).seq) == (1, 1)


def test_sequencer_count_malformed_keeps_samples():
    seq = Sequencer(nf_for("ddos"), 1)
    for i in range(8):
        seq.count_malformed("ethertype", bytes([i]) * 100)
    assert seq.malformed == {"ethertype": 8}
    assert len(seq.malformed_samples) == 5
    assert seq.malformed_samples[0] == "ethertype: " + "00" * 64


# --- malformed frames at the replica -------------------------------------------------------


@pytest.fixture()
def setup(frames):
    """A 2-core sequencer run over the first packets, the core-0 replica fed up to seq 2."""
    seq = Sequencer(nf_for("ddos"), 2)
    outputs = sequence_all(seq, frames[:8])
    replica = Replica(nf_for("ddos"), 0, 2)
    for _, out in outputs[:3:2]:  # seq 0 and 2
        replica.handle(out)
    return replica, outputs


def snapshot(replica: Replica):
    return (replica.nf.state_to_json(replica.state), replica.applied, dict(replica.stats),
            list(replica.log_seq))


def assert_dropped(replica: Replica, frame: bytes, reason: str) -> None:
    before = snapshot(replica)
    malformed_before = sum(replica.malformed.values())
    assert replica.handle(bytes(frame)) is None
    assert snapshot(replica) == before
    assert replica.malformed[reason] >= 1
    assert sum(replica.malformed.values()) == malformed_before + 1
    assert not replica.stopped


def test_replica_setup_is_sane(setup):
    replica, _ = setup
    assert replica.applied == 2
    assert list(replica.log_seq) == [0, 2]
    assert not replica.malformed


@pytest.mark.parametrize("length", [0, 10, 33])
def test_replica_drops_truncated_header(setup, length):
    replica, outputs = setup
    assert_dropped(replica, outputs[4][1][:length], "truncated")


def test_replica_drops_truncated_records(setup):
    replica, outputs = setup
    assert_dropped(replica, outputs[4][1][: h.PAYLOAD_OFFSET + 2], "truncated")


def test_replica_drops_truncated_inner_frame(setup):
    replica, outputs = setup
    out = outputs[4][1]
    assert_dropped(replica, out[: h.PAYLOAD_OFFSET + 4 + 20], "truncated")


def test_replica_drops_wrong_ethertype(setup):
    replica, outputs = setup
    frame = bytearray(outputs[4][1])
    frame[12:14] = b"\x08\x00"
    assert_dropped(replica, frame, "ethertype")


@pytest.mark.parametrize(("index", "value"), [(h.SCR_OFFSET, 0x00), (h.SCR_OFFSET + 1, 9)])
def test_replica_drops_bad_magic_or_version(setup, index, value):
    replica, outputs = setup
    frame = bytearray(outputs[4][1])
    frame[index] = value
    assert_dropped(replica, frame, "bad_header")


def test_replica_drops_wrong_slot(setup):
    replica, outputs = setup
    assert_dropped(replica, outputs[5][1], "wrong_core")  # slot 1's frame


def test_replica_drops_wrong_core_count(frames):
    outputs = sequence_all(Sequencer(nf_for("ddos"), 4), frames[:4])
    replica = Replica(nf_for("ddos"), 0, 2)
    assert_dropped(replica, outputs[0][1], "wrong_core")  # slot 0, but of 4 cores


def test_replica_drops_wrong_record_size(setup):
    replica, outputs = setup
    hdr, history, inner = h.decode(outputs[4][1])
    frame = h.encode(hdr._replace(record_size=5), [r + b"\0" for r in history], inner)
    assert_dropped(replica, frame, "bad_header")


def test_replica_drops_duplicate(setup):
    replica, outputs = setup
    assert_dropped(replica, outputs[2][1], "stale_seq")  # seq 2 again
    assert_dropped(replica, outputs[0][1], "stale_seq")  # and an older one
    assert replica.malformed == {"stale_seq": 2}


@pytest.mark.parametrize(
    ("reason", "inner"),
    [
        ("ethertype", bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP())),
        ("bad_ip", b"\x02" * 12 + b"\x08\x00" + b"\x46" + bytes(45)),
    ],
)
def test_replica_drops_inner_frame_that_is_not_ipv4(setup, reason, inner):
    replica, outputs = setup
    hdr, history, _ = h.decode(outputs[4][1])
    assert_dropped(replica, h.encode(hdr, history, inner), reason)


def test_replica_carries_on_after_malformed(setup, frames):
    replica, outputs = setup
    for bad in (b"", outputs[5][1], outputs[2][1]):
        replica.handle(bad)
    replica.handle(outputs[4][1])
    replica.handle(outputs[6][1])
    ref = run_reference(nf_for("ddos"), [(parse(f), ts_of(i)) for i, f in enumerate(frames[:7])])
    assert replica.applied == 6
    assert replica.nf.state_to_json(replica.state) == ref.state
    assert replica.stats["gap_records"] == 0


# --- lost frames -----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "lost", "gap"), [(2, 2, 2), (4, 4, 4), (3, 3, 3)])
def test_gap_records_counted(n, lost, gap, frames):
    """Losing core 0's frame ``lost`` loses the records of ``lost-N+1 .. lost``."""
    seq = Sequencer(nf_for("ddos"), n)
    outputs = sequence_all(seq, frames[:3 * n])
    replica = Replica(nf_for("ddos"), 0, n)
    for i, (slot, out) in enumerate(outputs):
        if slot == 0 and i != lost:
            replica.handle(out)
    assert replica.stats["gap_records"] == gap
    assert replica.applied == 2 * n
    assert list(replica.log_seq) == [0, 2 * n]
    assert not replica.malformed
    ref = run_reference(nf_for("ddos"),
                        [(parse(f), ts_of(i)) for i, f in enumerate(frames[: 2 * n + 1])])
    assert replica.nf.state_to_json(replica.state) != ref.state  # diverged, as it must


def test_gap_then_stop(frames):
    seq = Sequencer(nf_for("ddos"), 2)
    outputs = sequence_all(seq, frames[:10])
    replica = Replica(nf_for("ddos"), 1, 2)
    replica.handle(outputs[1][1])
    # Everything after seq 1 for core 1 is lost; the STOP covers only seq 9.
    assert replica.handle(seq.stop_frames(0)[1]) is None
    assert replica.stopped
    assert replica.applied == 9
    assert replica.stats["gap_records"] == 7  # seq 2..8


# --- fast-forward accounting -----------------------------------------------------------------


@pytest.mark.parametrize("n", CORES)
@pytest.mark.parametrize("lost", [None, 5])
def test_fast_forwarded_equals_the_updates_really_applied(n, lost, frames):
    """``fast_forwarded`` is derived, not counted: it must still equal the ``update`` calls,
    with a frame lost (a gap) and with a frame delivered twice (stale)."""
    nf = nf_for("ddos")
    seq = Sequencer(nf, n)
    outputs = sequence_all(seq, frames[:40])
    replicas = [Replica(nf_for("ddos"), core, n) for core in range(n)]
    calls = [0] * n
    for core, replica in enumerate(replicas):
        def counting_update(state, fields, _update=replica.nf.update, _core=core):
            calls[_core] += 1
            return _update(state, fields)
        replica.nf.update = counting_update
    for i, (slot, out) in enumerate(outputs):
        if i != lost:
            replicas[slot].handle(out)
    replicas[outputs[3][0]].handle(outputs[3][1])  # delivered again: dropped as stale
    for slot, stop in enumerate(seq.stop_frames(0)):
        replicas[slot].handle(stop)
    for core, replica in enumerate(replicas):
        assert replica.fast_forwarded == calls[core]
        assert replica.results()["stats"]["fast_forwarded"] == calls[core]
    if lost is not None and n > 1:
        assert replicas[lost % n].stats["gap_records"] > 0
