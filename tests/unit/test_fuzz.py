"""Fuzzing every parser of bytes that come from the network, and the cores behind them.

Property-based (Hypothesis), bounded and reproducible: every test runs a fixed number of
examples from a derandomized seed (the ``scr-fuzz`` profile below), so CI sees the same
inputs on every run. Inputs are random bytes and, to reach deep code, *structured* ones:
valid frames of a real trace (through the real ``Sequencer``) with random mutations: bytes
flipped or overwritten, truncated or extended, header fields (record count, record size,
slot, number of cores, sequence number, flags, magic, ethertypes, IPv4 and TCP lengths, the
shard trailer) set to edge or random values, frames replayed, frames of other cores.

What must hold, for every input:

* the decoders (``sequencer.wire.header``: ``unpack_header``, ``decode``;
  ``sequencer.wire.trailer.unpack_trailer``; ``sequencer.wire.packet.parse``;
  ``sequencer.wire.heartbeat.parse_heartbeat``; ``experiments.workload.traffic``'s pcap
  reader) raise nothing but their own one-line error (``MalformedFrame`` with a known
  reason, ``TraceError``), and what they accept re-encodes to the same bytes (a pcap:
  accounts for every byte);
* the shim's ``Sequencer`` (``sequence`` and the count path of its loop) and every core
  (``Replica``, ``LockCore`` on a real ``SharedTable``, ``ShardCore``, and a store core's
  ``accept``), for every NF: each frame ends as exactly one of processed, a counted drop
  (a ``MalformedFrame`` reason) or a STOP; a dropped frame leaves the state, the last
  applied sequence number, the gaps and the log untouched; and
  ``processed + sum(malformed) + stops == frames fed``;
* whatever the shim accepts, every SCR core accepts too, and the replicas and verdicts are
  equal to sequential processing of the accepted packets;
* the primary-backup log receiver only raises ``ReplicationError`` and applies exactly what
  an independent decoder of the same bytes finds, however the stream is split;
* the state service's request decoder (``StateService.serve``, and a connection fed in
  random chunks) answers exactly the whole, well-formed requests before the first bad one,
  in order, and applies nothing else; the service's client resolves its pending applies
  from the whole answers, in order, and an answer to no request fails the rest with a
  ConnectionError; a Redis value that does not unpack is a ``StoreProtocolError``;
* the sink's summary counts every frame, well-formed or not.

Two findings are fixed and kept as tests: a heartbeat of another version is refused, and a
lock core whose key finds the shared table full drops and counts that packet
(``table_full``) instead of raising ``TableFull`` out of its loop.

Runs in about 20 s; nothing here needs root or a network (one socket on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scapy.utils import RawPcapNgWriter

from experiments.analysis.offline import ground_truth, report
from experiments.hosts.sink import summarize
from experiments.workload.traffic import TraceError, TraceSpec, make_trace, parse_pcap, write_pcap
from nfs import NF_CLASSES, make_nf
from nfs.cores import replication as r
from nfs.cores.base import Core
from nfs.cores.lock import LockCore
from nfs.cores.replica import Replica
from nfs.cores.shard import ShardCore
from nfs.cores.shared_table import SharedTable
from nfs.cores.store import StoreCore
from nfs.oracle import check_run
from nfs.stores.clients import ServiceClient, StoreProtocolError, _ServiceProtocol, decode_value
from nfs.stores.service import StateService, _Connection
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire import heartbeat as hb
from sequencer.wire import pb_log as pb
from sequencer.wire import trailer as tr
from sequencer.wire.packet import MIN_FRAME, NO_TRACE_ID, PROTO_TCP, PROTO_UDP, Packet, build, parse
from sequencer.wire.state_service import (
    REQUEST_HEADER,
    pack_response,
    response_size,
    unpack_response,
)

settings.register_profile(
    "scr-fuzz",
    max_examples=300,  # per test of a pure function; the stream tests lower it (below)
    deadline=None,  # CI machines stall; a deadline would make the suite flaky
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ = settings.get_profile("scr-fuzz")
#: A stream test feeds up to 40 frames (or requests) per example: 50 examples of ~30 such
#: tests are some 30 000 frames.
FUZZ_STREAMS = settings(FUZZ, max_examples=50)

NAMES = list(NF_CLASSES)
NF_PARAMS = {"ddos": {"threshold": 5}, "hh": {"threshold": 400}}
N_CORES = 3
HEADER_REASONS = {"truncated", "ethertype", "bad_header"}
PARSE_REASONS = {"truncated", "ethertype", "bad_ip", "bad_tcp"}
TRAILER_REASONS = {"truncated", "bad_trailer"}
CORE_REASONS = HEADER_REASONS | PARSE_REASONS | TRAILER_REASONS | {
    "wrong_core", "stale_seq", "unexpected_scr", "short_history", "long_history"}

#: A small trace with every kind of packet the generator makes (flows, attackers, knocks).
TRACE = make_trace(TraceSpec(packets=120, flows=8, skew=1.0, attackers=1, attack_share=0.1,
                             knockers=1, seed=11))

# (offset, size) of the fields worth setting to edge values; negative: from the end.
_SCR_FIELDS = [(12, 2), (14, 1), (15, 1), (16, 1), (17, 1), (18, 1), (19, 1), (20, 1),
               (21, 1), (22, 4), (26, 8)]


def _ipv4_fields(base: int) -> list[tuple[int, int]]:
    """Ethertype, version/IHL, total length, protocol and TCP data offset of the IPv4
    frame that starts at ``base``."""
    return [(base + 12, 2), (base + 14, 1), (base + 16, 2), (base + 23, 1), (base + 46, 1)]


PLAIN_FIELDS = _ipv4_fields(0)
SHARD_FIELDS = PLAIN_FIELDS + [(-14, 4), (-10, 8), (-2, 2)]


def ts_of(i: int) -> int:
    return 1_000_000 + 1_500 * i


def nf_for(name: str):
    return make_nf(name, **NF_PARAMS.get(name, {}))


# --- strategies ----------------------------------------------------------------------------


@st.composite
def mutated(draw, frame: bytes, fields: list[tuple[int, int]]) -> bytes:
    """``frame`` with one to three random mutations."""
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("field", "field", "flip", "truncate", "extend",
                                   "overwrite")))
        if op == "field":
            offset, size = draw(st.sampled_from(fields))
            start = offset if offset >= 0 else len(data) + offset
            top = (1 << (8 * size)) - 1
            value = draw(st.one_of(st.sampled_from((0, 1, 2, 3, top - 1, top)),
                                   st.integers(0, top)))
            if start >= 0 and start + size <= len(data):
                data[start:start + size] = value.to_bytes(size, "big")
        elif op == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))):]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=40))
        elif op == "overwrite" and data:
            at = draw(st.integers(0, len(data) - 1))
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(chunk)] = chunk
    return bytes(data)


@st.composite
def scr_shaped(draw) -> bytes:
    """A dummy Ethernet + SCR header with every field random (magic and version mostly
    right, so that the checks behind them are reached), then random bytes."""
    magic = draw(st.sampled_from((h.SCR_MAGIC, h.SCR_MAGIC, h.SCR_MAGIC, 0)))
    version = draw(st.sampled_from((h.SCR_VERSION, h.SCR_VERSION, 1)))
    fields = draw(st.tuples(st.integers(0, 255), st.integers(0, 8), st.integers(0, 40),
                            st.integers(0, 8), st.integers(0, 8), st.integers(0, 9),
                            st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)))
    flags, count, size, slot, n_cores, spray, seq, ts = fields
    head = h.ETH_HEADER.pack(b"\x02" * 6, b"\x02" * 6, h.ETH_P_SCR) + h.SCR_HEADER.pack(
        magic, version, flags, count, size, slot, n_cores, spray, seq, ts)
    return head + draw(st.binary(max_size=120))


def any_frame(valid: list[bytes], fields: list[tuple[int, int]]):
    """Random bytes, SCR-shaped bytes, or a mutated valid frame."""
    return st.one_of(st.binary(max_size=120), scr_shaped(),
                     st.sampled_from(valid).flatmap(lambda f: mutated(f, fields)))


# --- the wire-format decoders --------------------------------------------------------------


@cache
def scr_frames(name: str, n: int, strategy: str = "scr") -> tuple[list, list[bytes]]:
    """The sequencer's ``(slot, frame)`` outputs for TRACE, and its STOP frames."""
    seq = Sequencer(nf_for(name), n, strategy)
    outputs = [seq.sequence(frame, ts_of(i)) for i, frame in enumerate(TRACE)]
    return outputs, seq.stop_frames(ts_of(len(TRACE)))


ALL_SCR = [frame for name in NAMES for _slot, frame in scr_frames(name, N_CORES)[0][:30]]


@FUZZ
@given(frame=any_frame(ALL_SCR, _SCR_FIELDS + _ipv4_fields(h.PAYLOAD_OFFSET)))
def test_unpack_header_and_decode(frame):
    try:
        hdr = h.unpack_header(frame)
    except h.MalformedFrame as err:
        assert err.reason in HEADER_REASONS
        with pytest.raises(h.MalformedFrame):
            h.decode(frame)
        return
    assert 0 <= hdr.slot < hdr.n_cores and hdr.count < hdr.n_cores
    assert h.PAYLOAD_OFFSET + hdr.count * hdr.record_size <= len(frame)
    header, records, inner = h.decode(frame)
    assert header == hdr
    assert [len(rec) for rec in records] == [hdr.record_size] * hdr.count
    # What was accepted re-encodes to the same bytes (the MACs aside: encode writes its own).
    assert h.encode(header, records, inner)[12:] == frame[12:]


@FUZZ
@given(frame=any_frame([f for _slot, f in scr_frames("tb", 2, "shard")[0]], SHARD_FIELDS))
def test_unpack_trailer(frame):
    try:
        seq, ts = tr.unpack_trailer(frame)
    except h.MalformedFrame as err:
        assert err.reason in TRAILER_REASONS
        return
    assert tr.pack_trailer(seq, ts) == frame[-tr.TRAILER_SIZE:]


@FUZZ
@given(frame=any_frame(TRACE, PLAIN_FIELDS), pad=st.binary(max_size=24))
def test_parse(frame, pad):
    try:
        pkt = parse(frame)
    except h.MalformedFrame as err:
        assert err.reason in PARSE_REASONS
        with pytest.raises(h.MalformedFrame):
            parse(pad + frame, len(pad))
        return
    assert parse(pad + frame, len(pad)) == pkt  # the offset form is the same parser
    assert 0 <= pkt.proto < 256 and 20 <= pkt.length < 65536
    assert 0 <= pkt.sport < 65536 and 0 <= pkt.dport < 65536 and 0 <= pkt.tcp_flags < 512
    assert pkt.trace_id == NO_TRACE_ID or 0 <= pkt.trace_id < 2**32
    if pkt.proto not in (PROTO_TCP, PROTO_UDP):
        assert pkt.sport == pkt.dport == pkt.tcp_flags == 0


@FUZZ
@given(src=st.integers(0, 2**32 - 1), dst=st.integers(0, 2**32 - 1),
       proto=st.sampled_from((PROTO_TCP, PROTO_UDP)), sport=st.integers(0, 65535),
       dport=st.integers(0, 65535), trace_id=st.integers(0, 2**32 - 1),
       size=st.integers(MIN_FRAME, 1514), flags=st.integers(0, 255),
       seq=st.integers(0, 2**32 - 1))
def test_parse_reads_back_what_build_wrote(src, dst, proto, sport, dport, trace_id, size,
                                           flags, seq):
    frame = build(src=src, dst=dst, proto=proto, sport=sport, dport=dport,
                  trace_id=trace_id, size=size, tcp_flags=flags, tcp_seq=seq)
    pkt = parse(frame)
    assert (pkt.src, pkt.dst, pkt.proto, pkt.sport, pkt.dport, pkt.trace_id) == (
        src, dst, proto, sport, dport, trace_id)
    assert pkt.length == len(frame) - 14
    if proto == PROTO_TCP:
        assert (pkt.tcp_flags, pkt.tcp_seq) == (flags, seq)


HEARTBEATS = [hb.heartbeat_frame(role, counter) for role in hb.ROLES
              for counter in (0, 1, 2**40, 2**63 - 1)]


@FUZZ
@given(frame=any_frame(HEARTBEATS, [(12, 2), (14, 4), (18, 1), (19, 1), (20, 8)]))
def test_parse_heartbeat(frame):
    beat = hb.parse_heartbeat(frame)  # never raises
    if beat is not None:
        role, counter = beat
        assert role in hb.ROLES
        expected = hb.heartbeat_frame(role, counter)
        assert frame[12:18] == expected[12:18]  # ethertype and magic
        assert frame[19:hb.HEARTBEAT.size] == expected[19:hb.HEARTBEAT.size]  # role, counter


def test_parse_heartbeat_refuses_another_version():
    beat = bytearray(hb.heartbeat_frame(hb.PRIMARY, 7))
    beat[18] = hb.HEARTBEAT_VERSION + 1
    assert hb.parse_heartbeat(bytes(beat)) is None


@FUZZ
@given(role=st.sampled_from(sorted(hb.ROLES)), counter=st.integers(-2**63, 2**63 - 1))
def test_heartbeat_round_trip(role, counter):
    assert hb.parse_heartbeat(hb.heartbeat_frame(role, counter)) == (role, counter)


def _pcap(frames: list[bytes]) -> bytes:
    """The bytes ``write_pcap`` writes for ``frames`` (through a file, as it is used)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.pcap"
        write_pcap(path, frames)
        return path.read_bytes()


def _pcapng(frames: list[bytes]) -> bytes:
    """``frames`` as a pcapng file, as Scapy writes one (fixed stamps: the same bytes on
    every run)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.pcapng"
        with RawPcapNgWriter(str(path)) as writer:
            writer.linktype = 1
            writer.write_header(None)
            for frame in frames:
                writer.write_packet(frame, sec=1)
        return path.read_bytes()


PCAPS = [_pcap(TRACE[:3]), _pcap([]), _pcap([b"x"]), _pcapng(TRACE[:3]), _pcapng([b"x"])]
# pcap: magic, link type, first record's lengths; pcapng: the section's and the interface's
# lengths and link type, the first packet block's length, interface and captured length.
PCAP_FIELDS = [(0, 4), (20, 4), (24, 4), (32, 4), (36, 4),
               (4, 4), (32, 2), (52, 4), (56, 4), (68, 4), (-4, 4)]
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


@FUZZ
@given(data=st.one_of(st.binary(max_size=120),  # random bytes, or a mutated capture file
                      st.sampled_from(PCAPS).flatmap(lambda f: mutated(f, PCAP_FIELDS))))
def test_pcap_reader(data):
    try:
        frames = parse_pcap(data, "trace.pcap")
    except TraceError as err:
        assert "\n" not in str(err) and "trace.pcap" in str(err)
        return
    assert frames  # a capture without packets is an error
    if data[:4] == _PCAPNG_MAGIC:
        assert sum(map(len, frames)) < len(data)
    else:  # a classic pcap accounts for every byte: header, record headers, frames
        assert sum(16 + len(f) for f in frames) == len(data) - 24


# --- the shim -----------------------------------------------------------------------------


def shim_feed(seq: Sequencer, frames: list[bytes]) -> list[tuple[int, int, bytes]]:
    """Feed ``frames`` as the shim's loop does (``sequence``, else the STOP marker, else a
    counted drop) and check every step; the accepted ``(index, slot, output)``."""
    accepted = []
    for i, frame in enumerate(frames):
        ring, next_seq = list(seq.ring), seq.next_seq
        malformed, stops = sum(seq.malformed.values()), seq.stops
        try:
            slot, out = seq.sequence(frame, ts_of(i))
        except h.MalformedFrame as err:
            assert err.reason in PARSE_REASONS
            if seq.is_stop_marker(frame):
                assert len(seq.stop_frames(ts_of(i))) == seq.n_cores
            else:
                seq.count_malformed(err.reason, frame)
            # A refused frame spends no sequence number and adds no history.
            assert (list(seq.ring), seq.next_seq) == (ring, next_seq)
            assert sum(seq.malformed.values()) + seq.stops == malformed + stops + 1
            continue
        assert seq.next_seq == next_seq + 1
        if seq.mode == "shard":
            assert slot == -1 and out[:-tr.TRAILER_SIZE] == frame
            assert tr.unpack_trailer(out) == (next_seq, ts_of(i))
        else:
            header, records, inner = h.decode(out)
            assert (header.seq, header.slot, header.flags) == (next_seq, slot, 0)
            assert slot == next_seq % seq.n_cores and inner == frame
            assert records == (ring if seq.mode == "scr" else [])
        accepted.append((i, slot, out))
    assert len(seq.trace_ids) == len(seq.timestamps) == seq.next_seq == len(accepted)
    assert seq.next_seq + sum(seq.malformed.values()) + seq.stops == len(frames)
    assert len(seq.malformed_samples) <= 5
    return accepted


STOP_MARKER = h.encode(h.ScrHeader(h.FLAG_STOP, 0, 0, 0, 1, 1, 0, 0), [])


@st.composite
def ingress(draw) -> list[bytes]:
    """What reaches the shim: trace frames in order, with mutated and random frames, and
    maybe the generator's end-of-trace marker, in between."""
    frames, position = [], 0
    for _ in range(draw(st.integers(1, 40))):
        op = draw(st.sampled_from(("trace", "trace", "trace", "mutated", "random", "marker")))
        if op == "trace":
            frames.append(TRACE[position % len(TRACE)])
            position += 1
        elif op == "mutated":
            frames.append(draw(mutated(draw(st.sampled_from(TRACE)), PLAIN_FIELDS)))
        elif op == "random":
            frames.append(draw(st.one_of(st.binary(max_size=80), scr_shaped())))
        else:
            frames.append(draw(mutated(STOP_MARKER, _SCR_FIELDS)) if draw(st.booleans())
                          else STOP_MARKER)
    return frames


@pytest.mark.parametrize("name", NAMES)
@FUZZ_STREAMS
@given(frames=ingress())
def test_whatever_the_shim_accepts_every_scr_core_processes_equivalently(name, frames):
    seq = Sequencer(nf_for(name), N_CORES, "scr")
    accepted = shim_feed(seq, frames)
    cores = [Replica(nf_for(name), core, N_CORES) for core in range(N_CORES)]
    for _i, slot, out in accepted:
        cores[slot].handle(out)
    for core, stop in zip(cores, seq.stop_frames(ts_of(len(frames))), strict=True):
        core.handle(stop)
    assert all(c.stopped and not c.malformed for c in cores)
    assert sum(c.stats["processed"] for c in cores) == len(accepted)
    # The oracle of a live run, on the sequencer's own ground truth: strictly equivalent.
    result = check_run(nf_for(name), ground_truth(seq), [report(c) for c in cores])
    assert result.equivalent, result.problems


@pytest.mark.parametrize("strategy", ["lock", "shard"])
@FUZZ_STREAMS
@given(frames=ingress())
def test_shim_in_lock_and_shard_mode(strategy, frames):
    shim_feed(Sequencer(nf_for("conntrack"), N_CORES, strategy), frames)


# --- the cores ----------------------------------------------------------------------------


@st.composite
def core_feed(draw, own: list[bytes], foreign: list[bytes], stop: bytes,
              fields: list[tuple[int, int]]) -> list[bytes]:
    """What reaches one core: its own frames in order (some lost), with mutated, replayed,
    other cores' and random frames in between, and maybe its STOP (mutated or not)."""
    frames, position = [], 0
    for _ in range(draw(st.integers(1, 40))):
        op = draw(st.sampled_from(("own", "own", "own", "lost", "mutated", "mutated",
                                   "replay", "foreign", "random", "stop")))
        if op in ("own", "lost") and position < len(own):
            if op == "own":
                frames.append(own[position])
            position += 1
        elif op == "mutated":
            frames.append(draw(mutated(draw(st.sampled_from(own)), fields)))
        elif op == "replay" and position:
            frames.append(own[draw(st.integers(0, position - 1))])
        elif op == "foreign" and foreign:
            frames.append(draw(st.sampled_from(foreign)))
        elif op == "random":
            frames.append(draw(st.one_of(st.binary(max_size=100), scr_shaped())))
        elif op == "stop":
            frames.append(draw(mutated(stop, fields)) if draw(st.booleans()) else stop)
    return frames


def replica_snapshot(core: Replica):
    return (dict(core.state), core.applied, list(core.gaps), len(core.log_seq),
            dict(core.stats), core.stopped)


def shard_snapshot(core: ShardCore):
    return (dict(core.state), core.applied, set(core._seen), len(core.log_seq),
            dict(core.stats), core.stopped)


def lock_snapshot(core: LockCore):
    return (core.table.items(), core.applied, len(core.log_seq), dict(core.stats),
            core.stopped)


def is_stop(frame: bytes) -> bool:
    try:
        return bool(h.unpack_header(frame).flags & h.FLAG_STOP)
    except h.MalformedFrame:
        return False


def feed_core(core: Core, frames: list[bytes], snapshot) -> None:
    """Hand ``frames`` to ``core.handle`` one by one and check the accounting of each."""
    stops = 0
    for frame in frames:
        before = snapshot(core)
        processed, malformed = core.stats["processed"], core.malformed.copy()
        out = core.handle(frame)  # must not raise, whatever the frame
        new_processed = core.stats["processed"] - processed
        new_malformed = core.malformed - malformed
        if new_malformed:
            # A counted drop: one reason, nothing forwarded, nothing else changed.
            assert sum(new_malformed.values()) == 1 and new_processed == 0 and out is None
            assert set(new_malformed) <= CORE_REASONS, new_malformed
            event(f"dropped: {next(iter(new_malformed))}")
            assert snapshot(core) == before
        elif new_processed:
            assert new_processed == 1
            event("processed")
            assert out is None or frame.endswith(out) or frame.startswith(out)
            if out is not None:
                parse(out)  # what a core forwards is a well-formed packet
        else:  # neither processed nor dropped: only a STOP frame may do that
            assert out is None and core.stopped and is_stop(frame), frame.hex()
            event("stop")
            stops += 1
    total = core.stats["processed"] + sum(core.malformed.values()) + stops
    assert total == len(frames)
    if isinstance(core, Replica):
        assert core.fast_forwarded >= 0
    json_state = core.state_json()
    assert json_state is None or isinstance(json_state, dict)


def own_and_foreign(name: str, strategy: str = "scr") -> tuple[list, list, bytes]:
    outputs, stops = scr_frames(name, N_CORES, strategy)
    own = [frame for slot, frame in outputs if slot == 0]
    foreign = [frame for slot, frame in outputs if slot != 0][:10] + stops[1:]
    return own, foreign, stops[0]


@pytest.mark.parametrize("name", NAMES)
@FUZZ_STREAMS
@given(data=st.data())
def test_replica_handle(name, data):
    own, foreign, stop = own_and_foreign(name)
    frames = data.draw(core_feed(own, foreign, stop, _SCR_FIELDS + _ipv4_fields(
        h.PAYLOAD_OFFSET + 2 * nf_for(name).record_size)))
    feed_core(Replica(nf_for(name), 0, N_CORES), frames, replica_snapshot)


_tables = itertools.count()


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tables")


@pytest.mark.parametrize("name", NAMES)
@FUZZ_STREAMS
@given(data=st.data())
def test_lock_core_handle(name, data, table_dir):
    own, foreign, stop = own_and_foreign(name, "lock")
    frames = data.draw(core_feed(own, foreign, stop, _SCR_FIELDS + _ipv4_fields(
        h.PAYLOAD_OFFSET)))
    nf = nf_for(name)
    path = table_dir / f"{name}-{next(_tables)}.table"
    # Large enough for every key a 40-frame feed can make: a full table is not malformed
    # input (see the report on TableFull).
    SharedTable(path, nf.key_format, nf.value_format, capacity=1024, stripes=4,
                create=True).close()
    core = LockCore(nf, 0, N_CORES, SharedTable(path, nf.key_format, nf.value_format), 3)
    try:
        feed_core(core, frames, lock_snapshot)
    finally:
        core.table.close()
        path.unlink()


@pytest.mark.parametrize("name", NAMES)
@FUZZ_STREAMS
@given(data=st.data())
def test_shard_core_handle(name, data):
    outputs, stops = scr_frames(name, N_CORES, "shard")
    frames = data.draw(core_feed([f for _s, f in outputs], stops[1:], stops[0],
                                 SHARD_FIELDS + _SCR_FIELDS))
    feed_core(ShardCore(nf_for(name), 0, N_CORES), frames, shard_snapshot)


@pytest.mark.parametrize("name", NAMES)
@FUZZ_STREAMS
@given(data=st.data())
def test_store_core_accept(name, data):
    """A store core's frame check (``accept``); the store is never reached."""
    own, foreign, stop = own_and_foreign(name, "lock")
    frames = data.draw(core_feed(own, foreign, stop, _SCR_FIELDS + _ipv4_fields(
        h.PAYLOAD_OFFSET)))
    core = StoreCore("service", nf_for(name), 0, N_CORES, store=None)
    accepted = stops = 0
    for frame in frames:
        applied, malformed, stopped = core.applied, sum(core.malformed.values()), core.stopped
        item = core.accept(frame)  # must not raise, whatever the frame
        if item is not None:
            seq, pkt, _ts = item
            assert seq == core.applied > applied and isinstance(pkt, Packet)
            accepted += 1
        elif sum(core.malformed.values()) == malformed + 1:
            assert core.applied == applied and core.stopped == stopped
        else:
            assert core.stopped and is_stop(frame)
            stops += 1
    assert accepted + sum(core.malformed.values()) + stops == len(frames)


# --- the primary-backup log -----------------------------------------------------------------


def decode_log(data: bytes, record_size: int) -> tuple[list[tuple[int, int]], bool] | None:
    """An independent decoder of a log stream: the whole messages ``(type, seq)`` before
    the first bad one, and whether a bad one came; None if the hello is incomplete."""
    if len(data) < pb.HELLO.size:
        return None
    magic, version, size = pb.HELLO.unpack_from(data)
    if (magic, version, size) != (pb.LOG_MAGIC, pb.LOG_VERSION, record_size):
        return [], True
    messages, pos = [], pb.HELLO.size
    while len(data) - pos >= pb.MESSAGE.size:
        kind, seq = pb.MESSAGE.unpack_from(data, pos)
        length = pb.MESSAGE.size + (record_size if kind == pb.RECORD else 0)
        if kind not in (pb.RECORD, pb.END):
            return messages, True
        if len(data) - pos < length:
            break
        messages.append((kind, seq))
        pos += length
    return messages, False


@st.composite
def log_stream(draw, record_size: int) -> tuple[bytes, list[int]]:
    """A primary's log (hello, records, END), with junk and mutations, and cut points."""
    hello = pb.HELLO.pack(pb.LOG_MAGIC, pb.LOG_VERSION, record_size)
    parts = [draw(st.one_of(st.just(hello), mutated(hello, [(0, 4), (4, 1), (5, 2)])))]
    seqs = draw(st.lists(st.integers(-3, 60), max_size=20))
    for seq in seqs:
        message = draw(st.sampled_from((pb.RECORD, pb.RECORD, pb.RECORD, pb.END, 7)))
        body = pb.MESSAGE.pack(message, seq)
        if message == pb.RECORD:
            body += draw(st.binary(min_size=record_size, max_size=record_size))
        if draw(st.integers(0, 9)) == 0:
            body = draw(mutated(body, [(0, 1), (1, 8)]))
        parts.append(body)
    data = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return data, cuts


@pytest.fixture(scope="module")
def receiver():
    receiver = r.LogReceiver(("127.0.0.1", 0), make_nf("hh").record_size)
    yield receiver
    receiver.close()


@FUZZ
@given(stream=log_stream(make_nf("hh").record_size))
def test_log_receiver_applies_what_the_bytes_say(stream, receiver):
    """Fed in chunks as ``on_readable`` does: ReplicationError or acks, and the backup
    applies exactly the records an independent decoder finds, in order."""
    data, cuts = stream
    backup = r.BackupReplica(make_nf("hh"), 0, 1)
    receiver.buffer, receiver.greeted = bytearray(), False
    acks, failed = b"", False
    for start, end in itertools.pairwise([0, *cuts, len(data)]):
        receiver.buffer += data[start:end]
        try:
            acks += receiver._consume(backup)
        except r.ReplicationError:
            failed = True
            break
    decoded = decode_log(data, backup.nf.record_size)
    if decoded is None:
        assert acks == b"" and not failed and backup.applied == -1
        return
    messages, bad = decoded
    assert failed == bad
    if failed:  # the acks of the chunk that failed are never sent
        assert len(acks) <= pb.HELLO_REPLY.size + pb.ACK.size * len(messages)
        return
    assert acks[:pb.HELLO_REPLY.size] == pb.HELLO_REPLY.pack(pb.LOG_MAGIC, pb.LOG_VERSION, -1)
    expected_acks, applied = [], -1
    for kind, seq in messages:
        if kind == pb.END:
            expected_acks.append(pb.ACK.pack(pb.ENDED, seq))
        elif seq > applied:
            applied = seq
            expected_acks.append(pb.ACK.pack(pb.APPLIED, seq))
        else:
            expected_acks.append(pb.ACK.pack(pb.REFUSED, seq))
    assert acks[pb.HELLO_REPLY.size:] == b"".join(expected_acks)
    assert backup.applied == applied
    assert backup.stopped == any(kind == pb.END for kind, _seq in messages)


# --- the state service and its clients --------------------------------------------------------


@st.composite
def requests(draw, nf) -> bytes:
    """Requests to the service: mostly well-formed (any record bytes: the service cannot
    tell a garbage record), some with a wrong length, maybe cut short."""
    size = nf.record_format.size
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        seq = draw(st.integers(-2**63, 2**63 - 1))
        length = draw(st.sampled_from((size, size, size, size, 0, size + 1, 65535)))
        parts.append(REQUEST_HEADER.pack(seq, length)
                     + draw(st.binary(min_size=size, max_size=size)))
    data = b"".join(parts)
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return data


def serve_reference(nf, data: bytes) -> tuple[dict, list[int], bytes, bool]:
    """What the service must do with ``data``: the state, order and answers of the
    whole, well-formed requests before the first bad one, and whether one came."""
    state, order, answers = nf.new_state(), [], []
    size, pos = nf.record_format.size, 0
    while len(data) - pos >= REQUEST_HEADER.size:
        seq, length = REQUEST_HEADER.unpack_from(data, pos)
        if length != size:
            return state, order, b"".join(answers), True
        if len(data) - pos < REQUEST_HEADER.size + length:
            break
        fields = nf.record_format.unpack_from(data, pos + REQUEST_HEADER.size)
        key = nf.key(fields)
        old = state.get(key)
        new = nf.step(old, fields)
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
        order.append(seq)
        answers.append(pack_response(nf, old, new))
        pos += REQUEST_HEADER.size + length
    return state, order, b"".join(answers), False


class _Transport:
    """The two things ``_Connection`` asks of its transport, recorded."""

    def __init__(self):
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@pytest.mark.parametrize("name", NAMES)
@FUZZ_STREAMS
@given(data=st.data())
def test_state_service_serves_exactly_the_well_formed_requests(name, data):
    nf = nf_for(name)
    stream = data.draw(st.one_of(requests(nf), st.binary(max_size=200)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    state, order, answers, bad = serve_reference(nf, stream)

    service = StateService(nf)  # one call, as for a client's single write
    used, got, ok = service.serve(stream, 0)
    assert (dict(service.state), list(service.order), got, ok) == (state, order, answers,
                                                                   not bad)
    assert 0 <= used <= len(stream) and service.malformed == bad

    service = StateService(nf)  # a connection fed in random chunks
    connection, transport = _Connection(service), _Transport()
    connection.connection_made(transport)
    for start, end in itertools.pairwise([0, *cuts, len(stream)]):
        connection.data_received(stream[start:end])
    assert (dict(service.state), list(service.order), bytes(transport.written)) == (
        state, order, answers)
    assert transport.closed == bad and service.malformed == bad


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.binary(max_size=40))
def test_redis_value_decoder(name, data):
    nf = nf_for(name)
    try:
        value = decode_value(nf, data, "k")
    except StoreProtocolError as err:
        assert len(data) != nf.value_format.size and "\n" not in str(err)
        return
    assert nf.value_format.pack(*value) == data


@pytest.mark.parametrize("name", ["ddos", "conntrack"])
@FUZZ
@given(chunks=st.lists(st.binary(max_size=60), max_size=5), pending=st.integers(0, 6))
def test_service_client_decodes_answers_or_fails_cleanly(name, chunks, pending):
    """The client's side of a service connection, fed random answers in chunks: the first
    whole answers resolve the pending applies in order, with ``(old, new)`` as decoded
    from their bytes; an answer to no request fails every apply still pending with a
    ConnectionError and aborts the connection; nothing raises out of the protocol."""
    nf = nf_for(name)
    size = response_size(nf)
    data = b"".join(chunks)
    resolved, received, overflow = 0, 0, False  # what must happen, chunk by chunk
    for chunk in chunks:
        received += len(chunk)
        if received // size > pending:
            overflow = True
            break
        resolved = received // size
    loop = asyncio.new_event_loop()
    try:
        client = ServiceClient(nf, "127.0.0.1", 1)
        futures = [loop.create_future() for _ in range(pending)]
        client.pending.extend(futures)
        protocol, transport = _ServiceProtocol(client), _AbortableTransport()
        protocol.connection_made(transport)
        for chunk in chunks:
            protocol.data_received(chunk)
        for i, future in enumerate(futures):
            if i < resolved:
                assert future.result() == unpack_response(nf, data, i * size)
            elif overflow:
                assert isinstance(future.exception(), ConnectionError)
            else:
                assert not future.done()
        assert transport.closed == overflow
    finally:
        loop.close()


class _AbortableTransport(_Transport):
    def abort(self) -> None:
        self.closed = True


# --- the sink ------------------------------------------------------------------------------


@FUZZ
@given(frames=st.lists(any_frame(TRACE, PLAIN_FIELDS), max_size=20))
def test_sink_summary_counts_every_frame(frames):
    result = summarize(frames, [1, 2], [0])
    assert result["received"] == len(frames)
    assert len(result["trace_ids"]) + sum(result["malformed"].values()) == len(frames)
    assert set(result["malformed"]) <= PARSE_REASONS


# --- a full table is not malformed input ---------------------------------------------------


def test_lock_core_drops_and_counts_a_packet_whose_key_finds_the_table_full(tmp_path):
    """A flood of new sources can fill a segment of the shared table: the packet that
    cannot get a slot must be a counted drop, not the end of the core."""
    nf = nf_for("ddos")
    path = tmp_path / "t.table"
    SharedTable(path, nf.key_format, nf.value_format, capacity=4, stripes=1,
                create=True).close()
    core = LockCore(nf, 0, 1, SharedTable(path, nf.key_format, nf.value_format))
    seq = Sequencer(nf, 1, "lock")
    frames = [build(src=src, dst=1, proto=PROTO_TCP, sport=1, dport=2, trace_id=src)
              for src in range(5)]
    try:
        for i, frame in enumerate(frames):
            core.handle(seq.sequence(frame, ts_of(i))[1])
        assert core.stats["processed"] + sum(core.malformed.values()) == len(frames)
    finally:
        core.table.close()

