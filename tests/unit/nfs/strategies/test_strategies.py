"""Every strategy end to end without sockets, and the oracle that judges them.

A small generated trace goes through ``Sequencer(strategy=...)`` and then through N cores'
``handle()``, routed as the switch would: by the slot the shim wrote (``scr``, ``lock``), or
by a hash of the packet fields that stand for the NF's ``shard_fields`` (``shard``: RSS).
Then ``nfs.reference.check_views`` must find ``scr`` and ``shard`` equivalent to sequential
processing for every NF, and ``lock`` (one ``SharedTable`` in ``tmp_path``) too when the
cores are fed in sequence order; out of order, DDoS counting still commutes and
port knocking does not. STOP frames stop every core. Malformed frames (truncated, bad
trailer magic, wrong slot, history in lock mode, ...) are counted by reason and never
touch the state. ``check_views`` itself: strict with no loss (and then the same as the
old ``compare_replicas``), lenient by exactly a view's skip set, and it reports the
expected verdict. Also the shard trailer codec, ``make_core``'s errors and the
NF-interface property that sharding relies on.
"""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import pytest

from experiments.workload.traffic import TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from nfs.base import DROP, PASS, NetworkFunction
from nfs.cores import lock as lock_module
from nfs.cores.base import Core
from nfs.cores.lock import LockCore
from nfs.cores.replica import Replica
from nfs.cores.shard import ShardCore
from nfs.cores.shared_table import SharedTable
from nfs.reference import StateView, check_views, compare_replicas, run_reference
from nfs.strategies import get as get_strategy
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire import trailer as tr
from sequencer.wire.packet import PROTO_TCP, Packet, build, ip_to_int, parse

SPEC = TraceSpec(packets=400, flows=20, skew=1.0, attackers=2, attack_share=0.2, knockers=2,
                 seed=3)
NF_PARAMS = {"ddos": {"threshold": 20}}
NAMES = list(NF_CLASSES)
#: Packet attributes standing for the OpenFlow fields an NF's RSS hash may cover.
FIELD_OF = {"ip_src": "src", "ip_dst": "dst", "nw_proto": "proto", "tcp_src": "sport",
            "tcp_dst": "dport", "udp_src": "sport", "udp_dst": "dport"}


def make_core(strategy, nf, core, n, table=None, transfer_work=0):
    """The registered strategy's core, with the worker options a trial would pass."""
    spec = get_strategy(strategy)
    spec.check_cores(n)
    argv = () if table is None else ("--table", str(table), "--transfer-work", str(transfer_work))
    return spec.make_core(nf, core, n, spec.core_args(argv))



@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return make_trace(SPEC)


@pytest.fixture(scope="module")
def packets(frames) -> dict[int, tuple[Packet, int]]:
    """The oracle's input: sequence number -> (packet, sequencer timestamp)."""
    return {i: (parse(frame), ts_of(i)) for i, frame in enumerate(frames)}


def ts_of(i: int) -> int:
    return 1_000_000 + 1_500 * i


def nf_for(name: str) -> NetworkFunction:
    return make_nf(name, **NF_PARAMS.get(name, {}))


def shard_of(nf: NetworkFunction, pkt: Packet, n: int) -> int:
    """The core the switch's hash picks: ``src % N`` for a one-field hash on ``ip_src``
    (DDoS, knock), else crc32 over the shard fields' values."""
    values = [getattr(pkt, FIELD_OF[f]) for f in nf.shard_fields]
    if len(values) == 1:
        return values[0] % n
    return zlib.crc32(struct.pack(f"!{len(values)}I", *values)) % n


def verdict_log(cores: list[Core]) -> list[tuple[int, int, int]]:
    return sorted((s, c.core, v) for c in cores
                  for s, v in zip(c.log_seq, c.log_verdict, strict=True))


def new_table(path, nf: NetworkFunction) -> None:
    """Create the lock strategy's shared table (the trial runner's job); cores open it."""
    SharedTable(path, nf.key_format, nf.value_format, capacity=4096, stripes=16,
                create=True).close()


def lock_cores(tmp_path, nf_name: str, n: int, transfer_work: int = 0) -> list[LockCore]:
    path = tmp_path / f"{nf_name}.table"
    new_table(path, nf_for(nf_name))
    return [make_core("lock", nf_for(nf_name), core, n, path, transfer_work)
            for core in range(n)]


def table_json(cores: list[LockCore]):
    return cores[0].nf.state_to_json(cores[0].table.items())


def close_tables(cores: list[LockCore]) -> None:
    for core in cores:
        core.table.close()


def run_strategy(strategy: str, name: str, n: int, frames: list[bytes], tmp_path=None,
                 order=None):
    """Sequence ``frames`` with ``strategy``, deliver every output to its core (in ``order``
    of sequence numbers, default ascending), then the STOP frames; return (seq, cores)."""
    seq = Sequencer(nf_for(name), n, strategy)
    outputs = [seq.sequence(frame, ts_of(i)) for i, frame in enumerate(frames)]
    if strategy == "lock":
        cores = lock_cores(tmp_path, name, n)
    else:
        cores = [make_core(strategy, nf_for(name), core, n) for core in range(n)]
    for i in order if order is not None else range(len(outputs)):
        slot, out = outputs[i]
        if strategy == "shard":
            assert slot == -1
            slot = shard_of(cores[0].nf, parse(out), n)
        cores[slot].handle(out)
    for core, stop in zip(cores, seq.stop_frames(ts_of(len(frames))), strict=True):
        assert core.handle(stop) is None
    return seq, cores


def state_of(core: Core):
    return core.state_json() if not isinstance(core, LockCore) else table_json([core])


# --- equivalence of every strategy with sequential processing -----------------------------


@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.parametrize("name", NAMES)
def test_scr_equivalent(name, n, frames, packets):
    _, cores = run_strategy("scr", name, n, frames)
    last = len(frames) - 1
    views = [StateView(f"core{c.core}", c.state_json(), c.applied) for c in cores]
    assert all(c.stopped and c.applied == last for c in cores)  # STOP fast-forwarded all
    result = check_views(nf_for(name), packets, verdict_log(cores), views,
                         {c.core: c.core for c in cores})
    assert result.equivalent, result.summary()
    assert result.packets_checked == len(frames)


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("name", NAMES)
def test_shard_equivalent(name, n, frames, packets):
    seq, cores = run_strategy("shard", name, n, frames)
    assert seq.next_seq == len(frames)
    assert all(c.stopped for c in cores)
    assert sum(c.stats["processed"] > 0 for c in cores) >= 2  # the hash really spread them
    union: dict = {}
    for core in cores:
        state = core.state_json()
        assert not set(union) & set(state), "a key in two shards"
        union.update(state)
        assert list(core.log_seq) == sorted(core.log_seq)
    view = StateView("shards", dict(sorted(union.items())), len(frames) - 1)
    result = check_views(nf_for(name), packets, verdict_log(cores), [view],
                         {c.core: 0 for c in cores})
    assert result.equivalent, result.summary()
    assert result.packets_checked == len(frames)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_lock_in_sequence_order_equivalent(name, n, frames, packets, tmp_path):
    """Fed in sequence order, locked transitions on one shared table are sequential."""
    _, cores = run_strategy("lock", name, n, frames, tmp_path)
    try:
        assert all(c.stopped for c in cores)
        assert [c.stats["processed"] for c in cores] == [
            len(range(core, len(frames), n)) for core in range(n)]
        view = StateView("shared", table_json(cores), len(frames) - 1)
        result = check_views(nf_for(name), packets, verdict_log(cores), [view],
                             {c.core: 0 for c in cores})
        assert result.equivalent, result.summary()
    finally:
        close_tables(cores)


def core_major_order(n_frames: int, n: int) -> list[int]:
    """Every frame of core N-1 first, then those of core N-2, ...: far from sequence order."""
    return [i for core in reversed(range(n)) for i in range(core, n_frames, n)]


def test_lock_out_of_order_ddos_counts_commute(frames, packets, tmp_path):
    _, cores = run_strategy("lock", "ddos", 2, frames, tmp_path,
                            order=core_major_order(len(frames), 2))
    try:
        view = StateView("shared", table_json(cores), len(frames) - 1)
        result = check_views(nf_for("ddos"), packets, verdict_log(cores), [view],
                             {0: 0, 1: 0})
        assert result.diverged_replicas == []  # the same counts, in any order
        # ... but which packets crossed the threshold depends on the order.
        assert result.verdict_mismatches
    finally:
        close_tables(cores)


def test_lock_out_of_order_knock_diverges(frames, packets, tmp_path):
    _, cores = run_strategy("lock", "knock", 2, frames, tmp_path,
                            order=core_major_order(len(frames), 2))
    try:
        view = StateView("shared", table_json(cores), len(frames) - 1)
        result = check_views(nf_for("knock"), packets, verdict_log(cores), [view],
                             {0: 0, 1: 0})
        assert result.diverged_replicas == ["shared"]
        assert not result.equivalent
    finally:
        close_tables(cores)


def test_lock_with_lost_frames_is_judged_over_processed_packets(frames, packets, tmp_path):
    """A shared view holds exactly the packets some core processed: judged against the
    reference without the lost ones it passes, against the strict one it does not."""
    lost = {5, 6, 17, 100, 101, 250}
    order = [i for i in range(len(frames)) if i not in lost]
    _, cores = run_strategy("lock", "ddos", 2, frames, tmp_path, order=order)
    try:
        log = verdict_log(cores)
        processed = {s for s, _, _ in log}
        assert processed == set(order)
        last = len(frames) - 1
        lacking = frozenset(set(range(last + 1)) - processed)
        assert lacking == lost
        state = table_json(cores)
        lenient = check_views(nf_for("ddos"), packets, log,
                              [StateView("shared", state, last, lacking)], {0: 0, 1: 0})
        assert lenient.equivalent, lenient.summary()
        strict = check_views(nf_for("ddos"), packets, log,
                             [StateView("shared", state, last)], {0: 0, 1: 0})
        assert strict.diverged_replicas == ["shared"]
    finally:
        close_tables(cores)


# --- what each strategy's sequencer emits -------------------------------------------------


def test_lock_sequencer_sends_no_history(frames):
    seq = Sequencer(nf_for("knock"), 3, "lock")
    for i, frame in enumerate(frames[:10]):
        slot, out = seq.sequence(frame, ts_of(i))
        hdr, records, inner = h.decode(out)
        assert (slot, hdr.slot, hdr.seq, hdr.count, hdr.n_cores) == (i % 3, i % 3, i, 0, 3)
        assert (records, inner, hdr.timestamp_ns) == ([], frame, ts_of(i))
    for slot, stop in enumerate(seq.stop_frames(7)):
        hdr = h.unpack_header(stop)
        assert (hdr.flags, hdr.count, hdr.slot, hdr.seq) == (h.FLAG_STOP, 0, slot, 10)


def test_shard_sequencer_appends_a_trailer(frames):
    seq = Sequencer(nf_for("ddos"), 4, "shard")
    for i, frame in enumerate(frames[:10]):
        slot, out = seq.sequence(frame, ts_of(i))
        assert slot == -1
        assert out[: -tr.TRAILER_SIZE] == frame  # the original frame, untouched
        assert tr.unpack_trailer(out) == (i, ts_of(i))
        assert parse(out) == parse(frame)  # IPv4's length hides the trailer
    assert list(seq.trace_ids) == list(range(10))
    stops = seq.stop_frames(0)
    assert [h.unpack_header(s).slot for s in stops] == [0, 1, 2, 3]
    assert all(h.unpack_header(s).count == 0 for s in stops)


def test_shard_sequencer_bad_ingress_spends_no_seq(frames):
    seq = Sequencer(nf_for("ddos"), 2, "shard")
    seq.sequence(frames[0], 0)
    with pytest.raises(h.MalformedFrame) as info:
        seq.sequence(b"\x00" * 20, 1)
    assert info.value.reason == "truncated"
    assert tr.unpack_trailer(seq.sequence(frames[1], 2)[1])[0] == 1
    assert seq.next_seq == 2


def test_unknown_spray_mode():
    with pytest.raises(ValueError, match="unknown spray mode 'rss'; choose from scr, lock"):
        Sequencer(nf_for("ddos"), 2, "rss")


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategy 'rss'; choose from scr, lock"):
        get_strategy("rss")


# --- the shard trailer codec ----------------------------------------------------------------


def test_trailer_round_trip():
    trailer = tr.pack_trailer(7, 123_456_789)
    assert len(trailer) == tr.TRAILER_SIZE == 14
    assert trailer == struct.pack("!IQH", 7, 123_456_789, 0x5CAF)
    frame = bytes(range(40)) + trailer
    assert tr.unpack_trailer(frame) == (7, 123_456_789)


def test_trailer_seq_wraps():
    assert tr.unpack_trailer(b"\0" * 14 + tr.pack_trailer(h.SEQ_MODULUS + 3, 1)) == (3, 1)


@pytest.mark.parametrize("length", [0, 13, 27])
def test_trailer_truncated(length):
    frame = (b"\0" * 30 + tr.pack_trailer(1, 2))[-length:] if length else b""
    with pytest.raises(h.MalformedFrame) as info:
        tr.unpack_trailer(frame)
    assert info.value.reason == "truncated"


def test_trailer_bad_magic():
    frame = bytearray(b"\0" * 30 + tr.pack_trailer(1, 2))
    frame[-1] ^= 0xFF
    with pytest.raises(h.MalformedFrame) as info:
        tr.unpack_trailer(bytes(frame))
    assert info.value.reason == "bad_trailer"


# --- STOP frames ----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["scr", "lock", "shard"])
@pytest.mark.parametrize("n", [1, 3, 8])
def test_stop_frames_stop_every_core(strategy, n, frames, tmp_path):
    """Even cores that got no packet; SCR replicas end at the last sequence number."""
    _, cores = run_strategy(strategy, "knock", n, frames[:5], tmp_path)
    try:
        assert all(core.stopped for core in cores)
        assert all(not core.malformed for core in cores)
        assert sum(core.stats["processed"] for core in cores) == 5
        if strategy == "scr":
            ref = run_reference(nf_for("knock"),
                                [(parse(f), ts_of(i)) for i, f in enumerate(frames[:5])])
            assert all(core.applied == 4 for core in cores)
            assert all(core.state_json() == ref.state for core in cores)
    finally:
        if strategy == "lock":
            close_tables(cores)


def test_replica_stop_after_a_gap_fast_forwards_to_the_last_seq(frames):
    seq = Sequencer(nf_for("ddos"), 3)
    outputs = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames[:12])]
    replica = Replica(nf_for("ddos"), 2, 3)
    replica.handle(outputs[2][1])  # then everything else for core 2 is lost
    replica.handle(seq.stop_frames(0)[2])
    assert replica.stopped
    assert replica.applied == 11
    assert replica.gaps == [(3, 9)]  # the STOP carried records 10 and 11
    assert replica.stats["gap_records"] == 7


# --- malformed frames: counted by reason, state untouched -----------------------------------


def snapshot(core: Core):
    return (state_of(core), core.applied, dict(core.stats), list(core.log_seq), core.stopped)


def assert_dropped(core: Core, frame: bytes, reason: str) -> None:
    before = snapshot(core)
    malformed_before = sum(core.malformed.values())
    assert core.handle(bytes(frame)) is None
    assert snapshot(core) == before
    assert core.malformed[reason] >= 1
    assert sum(core.malformed.values()) == malformed_before + 1


@pytest.fixture()
def lock_setup(frames, tmp_path):
    """Core 0 of 2 lock cores, fed seq 0 and 2; the sequencer's outputs for seq 0..7."""
    seq = Sequencer(nf_for("ddos"), 2, "lock")
    outputs = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames[:8])]
    cores = lock_cores(tmp_path, "ddos", 2)
    for i in (0, 2):
        cores[0].handle(outputs[i][1])
    assert cores[0].applied == 2
    assert list(cores[0].log_seq) == [0, 2]
    yield cores[0], outputs
    close_tables(cores)


@pytest.mark.parametrize("length", [0, 10, 33, h.PAYLOAD_OFFSET + 20])
def test_lock_drops_truncated(lock_setup, length):
    core, outputs = lock_setup
    assert_dropped(core, outputs[4][1][:length], "truncated")


def test_lock_drops_wrong_slot(lock_setup):
    core, outputs = lock_setup
    assert_dropped(core, outputs[5][1], "wrong_core")


def test_lock_drops_frames_with_history(lock_setup, frames):
    """An SCR-mode frame (history records) reaching a lock core is refused."""
    core, _ = lock_setup
    scr = Sequencer(nf_for("ddos"), 2)
    scr_outputs = [scr.sequence(f, ts_of(i)) for i, f in enumerate(frames[:8])]
    assert h.unpack_header(scr_outputs[4][1]).count == 1
    assert_dropped(core, scr_outputs[4][1], "bad_header")


def test_lock_drops_bad_magic_and_duplicates(lock_setup):
    core, outputs = lock_setup
    frame = bytearray(outputs[4][1])
    frame[h.SCR_OFFSET] = 0
    assert_dropped(core, frame, "bad_header")
    assert_dropped(core, outputs[2][1], "stale_seq")


def test_lock_drops_inner_frame_that_is_not_ipv4(lock_setup):
    core, outputs = lock_setup
    hdr, _, inner = h.decode(outputs[4][1])
    assert_dropped(core, h.encode(hdr, [], b"\x02" * 12 + b"\x86\xdd" + inner[14:]),
                   "ethertype")


def test_lock_carries_on_after_malformed(lock_setup):
    core, outputs = lock_setup
    core.handle(b"")
    core.handle(outputs[4][1])
    assert core.applied == 4
    assert list(core.log_seq) == [0, 2, 4]


@pytest.fixture()
def shard_setup(frames):
    """Shard core 0 of 2 with seq 0 handled; the shard sequencer's outputs for seq 0..7."""
    seq = Sequencer(nf_for("ddos"), 2, "shard")
    outputs = [seq.sequence(f, ts_of(i))[1] for i, f in enumerate(frames[:8])]
    core = ShardCore(nf_for("ddos"), 0, 2)
    core.handle(outputs[0])
    assert core.applied == 0
    return core, outputs


@pytest.mark.parametrize("length", [0, 12, 27])
def test_shard_drops_truncated(shard_setup, length):
    core, outputs = shard_setup
    assert_dropped(core, outputs[3][:length], "truncated")


def test_shard_drops_bad_trailer_magic(shard_setup):
    core, outputs = shard_setup
    frame = bytearray(outputs[3])
    frame[-2:] = b"\xde\xad"
    assert_dropped(core, frame, "bad_trailer")


def test_shard_drops_frame_without_trailer(shard_setup, frames):
    core, _ = shard_setup
    assert frames[3][-2:] != tr.TRAILER_MAGIC.to_bytes(2, "big")
    assert_dropped(core, frames[3], "bad_trailer")


def test_shard_drops_scr_data_frames(shard_setup, frames):
    core, _ = shard_setup
    _, out = Sequencer(nf_for("ddos"), 2).sequence(frames[3], 0)
    assert_dropped(core, out, "unexpected_scr")
    stop = Sequencer(nf_for("ddos"), 2).stop_frames(0)[0]
    assert_dropped(core, stop[: h.PAYLOAD_OFFSET - 1], "truncated")  # a broken STOP


def test_shard_drops_stop_for_another_slot(shard_setup):
    core, _ = shard_setup
    stop_for_core1 = Sequencer(nf_for("ddos"), 2, "shard").stop_frames(0)[1]
    assert_dropped(core, stop_for_core1, "wrong_core")
    assert not core.stopped


def test_shard_drops_trailer_around_junk_and_duplicates(shard_setup):
    core, outputs = shard_setup
    junk = b"\x02" * 12 + b"\x86\xdd" + bytes(40) + tr.pack_trailer(5, 0)
    assert_dropped(core, junk, "ethertype")
    assert_dropped(core, outputs[0], "stale_seq")


def test_shard_takes_other_keys_out_of_sequence_order(frames):
    """OVS may swap two keys' packets on their way to one core: both are processed."""
    seq = Sequencer(nf_for("ddos"), 1, "shard")
    outs = [seq.sequence(frame, 1000 * i)[1] for i, frame in enumerate(frames[:3])]
    core = ShardCore(nf_for("ddos"), 0, 1)
    for out in (outs[1], outs[0], outs[2]):
        assert core.handle(out) is not None or core.stats["dropped"]
    assert core.stats["processed"] == 3 and core.stats["reordered"] == 1
    assert core.applied == 2


def test_replica_drops_shard_frames(frames):
    """A trailer frame (no SCR header) reaching an SCR core is not taken for one."""
    replica = Replica(nf_for("ddos"), 0, 2)
    _, out = Sequencer(nf_for("ddos"), 2, "shard").sequence(frames[0], 0)
    assert_dropped(replica, out, "ethertype")


# --- lock: the cost of state moving between cores ---------------------------------------


def one_source_frames(count: int) -> list[bytes]:
    return [build(src=ip_to_int("198.18.7.7"), dst=ip_to_int("198.19.255.1"), proto=PROTO_TCP,
                  sport=1234, dport=80, trace_id=i) for i in range(count)]


@pytest.mark.parametrize("transfer_work", [0, 50])
def test_lock_counts_moved_when_alternating_cores(transfer_work, tmp_path):
    frames = one_source_frames(7)
    seq = Sequencer(nf_for("ddos"), 2, "lock")
    cores = lock_cores(tmp_path, "ddos", 2, transfer_work)
    try:
        assert cores[0].transfer_work == transfer_work
        for i, frame in enumerate(frames):
            slot, out = seq.sequence(frame, ts_of(i))
            cores[slot].handle(out)
        # The key's slot changes hands on every packet after the first.
        assert cores[0].stats["moved"] == 3  # seq 2, 4, 6
        assert cores[1].stats["moved"] == 3  # seq 1, 3, 5
        assert table_json(cores) == {"198.18.7.7": 7}
    finally:
        close_tables(cores)


def test_lock_one_core_never_moves(tmp_path):
    seq = Sequencer(nf_for("ddos"), 2, "lock")
    cores = lock_cores(tmp_path, "ddos", 2, transfer_work=50)
    try:
        for i, frame in enumerate(one_source_frames(8)):
            slot, out = seq.sequence(frame, ts_of(i))
            if slot == 0:
                cores[0].handle(out)
        assert cores[0].stats["moved"] == 0
        assert cores[0].stats["processed"] == 4
    finally:
        close_tables(cores)


# --- make_core ------------------------------------------------------------------------------


def test_make_core_types(tmp_path):
    nf = nf_for("ddos")
    new_table(tmp_path / "t", nf)
    assert type(make_core("scr", nf, 0, 2)) is Replica
    assert type(make_core("single", nf, 0, 1)) is Replica
    assert type(make_core("shard", nf, 1, 2)) is ShardCore
    core = make_core("lock", nf, 1, 2, tmp_path / "t", 3)
    try:
        assert type(core) is LockCore
        assert core.transfer_work == 3
    finally:
        core.table.close()


@pytest.mark.parametrize(("args", "message"), [
    (("single", 0, 2), "exactly one core"),
    (("lock", 0, 2), "needs --table"),
    (("rss", 0, 2), "unknown strategy 'rss'"),
])
def test_make_core_errors(args, message):
    strategy, core, n = args
    with pytest.raises(ValueError, match=message):
        make_core(strategy, nf_for("ddos"), core, n)


def test_make_core_lock_needs_an_existing_table(tmp_path):
    with pytest.raises(ValueError, match="no shared table there"):
        make_core("lock", nf_for("ddos"), 0, 2, tmp_path / "missing")


def test_make_core_lock_refuses_another_nfs_table(tmp_path):
    new_table(tmp_path / "t", nf_for("conntrack"))
    with pytest.raises(ValueError, match="key/value formats"):
        make_core("lock", nf_for("ddos"), 0, 2, tmp_path / "t")


def test_make_core_negative_transfer_work(tmp_path):
    new_table(tmp_path / "t", nf_for("ddos"))
    with pytest.raises(ValueError, match="transfer work must be >= 0"):
        make_core("lock", nf_for("ddos"), 0, 2, tmp_path / "t", -1)


# --- check_views: the oracle of every strategy ------------------------------------------


@pytest.fixture(scope="module")
def scr_run(frames):
    """A clean 3-core SCR run of knock: (cores, verdict log)."""
    _, cores = run_strategy("scr", "knock", 3, frames)
    return cores, verdict_log(cores)


def strict_views(cores: list[Core]) -> tuple[list[StateView], dict[int, int]]:
    return ([StateView(f"core{c.core}", c.state_json(), c.applied) for c in cores],
            {c.core: i for i, c in enumerate(cores)})


def old_check(packets, log, states: dict[int, tuple[object, int]]):
    ref = run_reference(nf_for("knock"), [packets[s] for s in sorted(packets)],
                        snapshot_at={applied for _, applied in states.values()})
    return compare_replicas(ref, log, states)


def test_strict_check_equals_compare_replicas(scr_run, packets):
    cores, log = scr_run
    views, view_of_core = strict_views(cores)
    new = check_views(nf_for("knock"), packets, log, views, view_of_core)
    old = old_check(packets, log, {c.core: (c.state_json(), c.applied) for c in cores})
    assert new.equivalent and old.equivalent
    assert new.packets_checked == old.packets_checked == len(packets)
    assert new.verdict_mismatches == old.verdict_mismatches == []


def test_strict_check_equals_compare_replicas_on_a_bad_run(scr_run, packets):
    cores, log = scr_run
    log = [(s, c, 1 - v if s in (10, 11) else v) for s, c, v in log]
    states = {c.core: (c.state_json(), c.applied) for c in cores}
    tampered = dict(states[1][0])
    key = next(iter(tampered))
    tampered[key] = "OPEN" if tampered[key] != "OPEN" else "CLOSED_0"
    states[1] = (tampered, states[1][1])
    views = [StateView(f"core{c}", state, applied) for c, (state, applied) in states.items()]
    new = check_views(nf_for("knock"), packets, log, views, {0: 0, 1: 1, 2: 2})
    old = old_check(packets, log, states)
    assert new.verdict_mismatches == old.verdict_mismatches
    assert [m[0] for m in new.verdict_mismatches] == [10, 11]
    assert old.diverged_replicas == [1]
    assert new.diverged_replicas == ["core1"]
    assert not new.equivalent and not old.equivalent


def test_verdict_mismatch_reports_the_expected_verdict(scr_run, packets):
    cores, log = scr_run
    ref = run_reference(nf_for("knock"), [packets[s] for s in sorted(packets)])
    # Flip the verdict of one passing and one dropped packet.
    passing = next(s for s, v in enumerate(ref.verdicts) if v == PASS)
    dropped = next(s for s, v in enumerate(ref.verdicts) if v == DROP)
    flipped = [(s, c, 1 - v if s in (passing, dropped) else v) for s, c, v in log]
    views, view_of_core = strict_views(cores)
    result = check_views(nf_for("knock"), packets, flipped, views, view_of_core)
    assert sorted(result.verdict_mismatches) == sorted([
        (passing, passing % 3, DROP, PASS),
        (dropped, dropped % 3, PASS, DROP),
    ])
    assert result.diverged_replicas == []
    summary = result.summary()
    assert summary["verdict_mismatches"] == 2
    assert {"seq": passing, "core": passing % 3, "verdict": DROP, "reference": PASS} in \
        summary["first_mismatches"]


def test_replica_with_a_lost_update_is_judged_without_it(frames, packets):
    """A frame lost on its way to core 0: its replica lacks the updates in its gap. Judged
    against the reference without them it passes; against the strict one it does not."""
    lost = 40
    seq = Sequencer(nf_for("ddos"), 2)
    outputs = [seq.sequence(f, ts_of(i)) for i, f in enumerate(frames)]
    cores = [Replica(nf_for("ddos"), c, 2) for c in range(2)]
    for i, (slot, out) in enumerate(outputs):
        if i != lost:
            cores[slot].handle(out)
    for core, stop in zip(cores, seq.stop_frames(0), strict=True):
        core.handle(stop)
    assert cores[0].gaps == [(39, 40)]  # frame 40 carried record 39; 40 itself was lost
    assert cores[1].gaps == []  # core 1 got record 40 in frame 41's history
    log = verdict_log(cores)
    assert lost not in {s for s, _, _ in log}
    skips = [frozenset(s for lo, hi in c.gaps for s in range(lo, hi + 1)) for c in cores]
    views = [StateView(f"core{c.core}", c.state_json(), c.applied, skip)
             for c, skip in zip(cores, skips, strict=True)]
    lenient = check_views(nf_for("ddos"), packets, log, views, {0: 0, 1: 1})
    assert lenient.equivalent, lenient.summary()
    strict, view_of_core = strict_views(cores)
    result = check_views(nf_for("ddos"), packets, log, strict, view_of_core)
    assert result.diverged_replicas == ["core0"]


def test_skip_set_that_is_not_really_missing_fails(scr_run, packets):
    """A view that claims to lack an update it actually holds is found out."""
    cores, log = scr_run
    views = [StateView(f"core{c.core}", c.state_json(), c.applied, frozenset({3}))
             for c in cores]
    result = check_views(nf_for("knock"), packets, log, views, {0: 0, 1: 1, 2: 2})
    assert not result.equivalent


def test_views_at_other_points(packets):
    nf = nf_for("ddos")
    ref = run_reference(nf, [packets[s] for s in sorted(packets)], snapshot_at={-1, 99})
    views = [StateView("empty", ref.state_after(-1), -1),
             StateView("mid", ref.state_after(99), 99),
             StateView("end", ref.state, len(packets) - 1),
             StateView("beyond", ref.state, len(packets) + 5)]
    result = check_views(nf, packets, [], views, {})
    assert ref.state_after(-1) == {}
    assert result.diverged_replicas == ["beyond"]  # no packet there: nothing to equal


def test_verdict_of_an_unknown_core_is_a_mismatch(packets):
    nf = nf_for("ddos")
    ref = run_reference(nf, [packets[s] for s in sorted(packets)])
    view = StateView("end", ref.state, len(packets) - 1)
    result = check_views(nf, packets, [(0, 0, ref.verdicts[0]), (1, 7, ref.verdicts[1])],
                         [view], {0: 0})
    assert result.verdict_mismatches == [(1, 7, ref.verdicts[1], None)]
    assert result.packets_checked == 2


# --- the NF interface that sharding relies on ---------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shard_fields_determine_the_key(name, frames):
    """Packets with one state key share their shard fields' values, so an RSS hash over
    ``shard_fields`` keeps every key on one core."""
    nf = nf_for(name)
    assert nf.shard_fields
    assert set(nf.shard_fields) <= set(FIELD_OF), nf.shard_fields
    seen: dict[tuple, tuple] = {}
    for i, frame in enumerate(frames):
        pkt = parse(frame)
        key = nf.key(nf.record(pkt, ts_of(i)))
        assert nf.unpack_key(nf.pack_key(key)) == key
        shard = tuple(getattr(pkt, FIELD_OF[f]) for f in nf.shard_fields)
        assert seen.setdefault(key, shard) == shard, f"key {key} on two shards"


@pytest.mark.parametrize("name", NAMES)
def test_lock_transition_matches_process(name, frames):
    """The lock strategy runs ``apply`` + ``verdict`` per key; that must be ``process``."""
    nf = nf_for(name)
    state, table = nf.new_state(), {}
    for i, frame in enumerate(frames):
        pkt = parse(frame)
        fields = nf.record(pkt, ts_of(i))
        key = nf.key(fields)
        old = table.get(key)
        new = nf.apply(old, fields)
        if new is None:
            table.pop(key, None)
        else:
            table[key] = new
        assert nf.verdict(old, new, fields) == nf.process(state, pkt, ts_of(i)), i
    assert nf.state_to_json(table) == nf.state_to_json(state)


def test_make_nf_errors():
    with pytest.raises(ValueError, match="unknown NF 'nope'; choose from ddos"):
        make_nf("nope")
    with pytest.raises(ValueError, match="bad parameters for NF 'ddos'"):
        make_nf("ddos", colour="red")
    with pytest.raises(ValueError, match="threshold must be"):
        make_nf("ddos", threshold=0)
    with pytest.raises(ValueError, match="knocks must be three ports"):
        make_nf("knock", knocks=[1, 2])
    assert make_nf("ddos", **make_nf("ddos", threshold=7).params()).threshold == 7


# --- quota-aware locking ---------------------------------------------------------------------


class FakeClocks:
    """Stands for ``time`` in ``nfs.cores.lock``: a wall clock and a CPU clock, in ns."""

    def __init__(self):
        self.wall = self.cpu = 0

    def run(self, ns: int) -> None:  # on the CPU
        self.wall += ns
        self.cpu += ns

    def off(self, ns: int) -> None:  # throttled, or waiting
        self.wall += ns

    def monotonic_ns(self) -> int:
        return self.wall

    def thread_time_ns(self) -> int:
        return self.cpu

    def sleep(self, seconds: float) -> None:
        self.wall += round(seconds * 1e9)


def test_the_quota_window_counts_the_cpu_time_of_the_last_period(monkeypatch):
    clocks = FakeClocks()
    monkeypatch.setattr(lock_module, "time", clocks)
    window = lock_module.QuotaWindow(1_000_000, 10_000_000)
    clocks.run(300_000)
    assert window.room_ns() == 700_000
    clocks.off(4_000_000)  # waiting for a lock or a CPU uses no quota
    clocks.run(600_000)
    window.note()
    assert window.room_ns() == 100_000
    clocks.off(6_000_000)  # the first 300 µs are now more than a period old
    assert window.room_ns() == 400_000
    with pytest.raises(ValueError):
        lock_module.QuotaWindow(2, 1)


def test_the_quota_window_errs_on_the_side_of_used(monkeypatch):
    """CPU time between the last sample and the window's start is counted as in it."""
    clocks = FakeClocks()
    monkeypatch.setattr(lock_module, "time", clocks)
    window = lock_module.QuotaWindow(1_000_000, 10_000_000)
    clocks.run(500_000)  # no sample in between
    clocks.off(9_700_000)
    # Truly 300 µs of it are in the last 10 ms; the window counts all 500 µs.
    assert window.room_ns() == 500_000


def test_the_quota_window_sleeps_until_the_section_fits(monkeypatch):
    clocks = FakeClocks()
    monkeypatch.setattr(lock_module, "time", clocks)
    window = lock_module.QuotaWindow(1_000_000, 10_000_000)
    clocks.run(950_000)
    window.note()
    assert window.wait_for(100_000) > 0  # it had to wait for old CPU time to leave
    assert window.room_ns() >= 100_000
    assert window.wait_for(100_000) == 0  # and now it fits at once


def test_the_throttle_counter_reads_nr_throttled_by_name(tmp_path):
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.write_text("nr_periods 42\nnr_throttled 3\nthrottled_time 9\n")
    v2.write_text("usage_usec 77\nuser_usec 70\nsystem_usec 7\nnr_periods 42\n"
                  "nr_throttled 5\nthrottled_usec 9\n")
    assert lock_module.throttle_counter(v1)() == 3
    assert lock_module.throttle_counter(v2)() == 5


def test_a_quota_aware_core_does_its_work_first_near_the_end_of_its_slice(tmp_path):
    """Same verdicts and state as without quota awareness; the work is paid exactly once
    per packet either way, before the lock when the slice is nearly spent."""
    results = []
    for remaining in (None, 10_000_000, 0):
        seq = Sequencer(nf_for("ddos"), 2, "lock")
        (tmp_path / f"r{remaining}").mkdir()
        cores = lock_cores(tmp_path / f"r{remaining}", "ddos", 2)
        paid = []
        try:
            for core in cores:
                core._work = paid.append
                if remaining is not None:
                    core.window = SimpleNamespace(room_ns=lambda r=remaining: r,
                                                  wait_for=lambda _need: 0, note=lambda: None,
                                                  quota_ns=1_000_000)
            for i, frame in enumerate(one_source_frames(12)):
                slot, out = seq.sequence(frame, ts_of(i))
                cores[slot].handle(out)
            assert sorted(paid) == list(range(12))
            first = sum(core.stats["work_first"] for core in cores)
            assert first == (12 if remaining == 0 else 0)
            results.append((table_json(cores), [list(c.log_verdict) for c in cores]))
        finally:
            close_tables(cores)
    assert results[0] == results[1] == results[2]


def test_the_lock_core_counts_long_waits_as_stalls(tmp_path):
    seq = Sequencer(nf_for("ddos"), 2, "lock")
    cores = lock_cores(tmp_path, "ddos", 2)
    try:
        waits = iter([10_000, 5_000_000, 20_000, 2_000_000])
        for core in cores:
            transact = core.table.transact

            def slow(*args, _transact=transact, _table=core.table, **kwargs):
                out = _transact(*args, **kwargs)
                _table.last_wait_ns = next(waits)
                return out

            core.table.transact = slow
        for i, frame in enumerate(one_source_frames(4)):
            slot, out = seq.sequence(frame, ts_of(i))
            cores[slot].handle(out)
        stats = [core.stats for core in cores]
        assert sum(s["lock_stalls"] for s in stats) == 2
        assert sum(s["lock_stall_us"] for s in stats) == 7_000
        assert sum(s["lock_wait_us"] for s in stats) == 7_030
    finally:
        close_tables(cores)
