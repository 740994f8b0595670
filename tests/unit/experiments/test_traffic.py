"""Synthetic traces and pcap files (``experiments.workload.traffic``).

``make_trace`` must be deterministic for a seed, number its frames by index, mix in the
attackers and knockers the spec asks for (good knockers knocking in order, bad ones not),
follow the Zipf shares of ``flow_shares``, open every TCP connection with SYN and close it
with FIN, number each connection's bytes consistently, and put in exactly
``bad_seq_share`` of out-of-window segments, which leave the connection's numbering alone.
``write_pcap``/``read_pcap`` (``experiments.workload.trace_files``, re-exported) must round-trip,
write files Scapy reads byte for byte, read big-endian and nanosecond pcaps, and reject
missing, foreign, truncated and empty files with a ``TraceError`` that says what is wrong.
"""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapWriter, rdpcap, wrpcap

from experiments.workload import traffic as t
from sequencer.wire.packet import PROTO_TCP, TCP_ACK, TCP_FIN, TCP_SYN, int_to_ip, parse

SPEC = t.TraceSpec(packets=1_000, flows=40, skew=1.2, attackers=3, attack_share=0.1,
                   knockers=3, service_packets=2, seed=11)


@pytest.fixture(scope="module")
def trace() -> list[bytes]:
    return t.make_trace(SPEC)


@pytest.fixture(scope="module")
def parsed(trace):
    return [parse(frame) for frame in trace]


# --- make_trace ------------------------------------------------------------------------------


def test_deterministic_for_a_seed(trace):
    assert t.make_trace(SPEC) == trace
    other = t.make_trace(t.TraceSpec(**{**SPEC.to_json(), "seed": SPEC.seed + 1}))
    assert other != trace
    assert len(other) == len(trace)


def test_length_and_frame_size(trace):
    assert len(trace) == SPEC.packets
    assert {len(frame) for frame in trace} == {SPEC.frame_size}
    big = t.make_trace(t.TraceSpec(packets=100, flows=5, knockers=1, frame_size=200))
    assert {len(frame) for frame in big} == {200}


def test_trace_ids_are_indexes(parsed):
    assert [p.trace_id for p in parsed] == list(range(SPEC.packets))


def connections(parsed) -> dict[tuple[int, int], list]:
    """The trace's TCP connections, by (source, destination port), packets in order."""
    by_conn: dict[tuple[int, int], list] = {}
    for p in parsed:
        by_conn.setdefault((p.src, p.dport), []).append(p)
    return by_conn


def bad_segments(parsed) -> list:
    """Segments that do not start where their connection's previous good one ended."""
    bad = []
    for packets in connections(parsed).values():
        expected = None
        for p in packets:
            if expected is not None and p.tcp_seq != expected:
                assert (p.tcp_seq - expected) % t.SEQ_SPACE >= 1 << 20, "in window"
                bad.append(p)
                continue
            segment = t.payload_length(SPEC.frame_size) + bool(p.tcp_flags & (TCP_SYN | TCP_FIN))
            expected = (p.tcp_seq + segment) % t.SEQ_SPACE
    return bad


def test_sequence_numbers_per_connection(parsed):
    assert t.payload_length(64) == 10
    assert all(p.length - 40 == t.payload_length(SPEC.frame_size) for p in parsed)
    bad = bad_segments(parsed)
    middle = sum(max(0, len(ps) - 2) for ps in connections(parsed).values())
    assert len(bad) == int(middle * SPEC.bad_seq_share) > 0
    assert all(p.tcp_flags == TCP_ACK for p in bad)  # never a connection's first or last
    isns = {ps[0].tcp_seq for ps in connections(parsed).values()}
    assert len(isns) == len(connections(parsed))  # random ISNs, not all alike


def test_bad_segments_only_change_sequence_numbers():
    spec = t.TraceSpec(packets=2_000, flows=20, bad_seq_share=0.2, seed=3)
    bad = [parse(frame) for frame in t.make_trace(spec)]
    clean = [parse(frame) for frame in t.make_trace(t.TraceSpec(**{**spec.to_json(),
                                                                   "bad_seq_share": 0}))]
    assert [p._replace(tcp_seq=0) for p in bad] == [p._replace(tcp_seq=0) for p in clean]
    assert bad_segments(clean) == []
    assert sum(a.tcp_seq != b.tcp_seq for a, b in zip(bad, clean, strict=True)) > 0


def test_all_tcp_to_the_server(parsed):
    assert {p.proto for p in parsed} == {PROTO_TCP}
    assert {p.dst for p in parsed} == {t.SERVER}
    assert int_to_ip(t.SERVER) == "198.19.255.1"
    for p in parsed:  # RFC 2544 benchmark range 198.18.0.0/15
        assert int_to_ip(p.src).startswith(("198.18.", "198.19."))


def test_trace_frames_are_valid_for_scapy(trace):
    for frame in trace[:50]:
        pkt = Ether(frame)
        assert pkt.haslayer(TCP)
        chk = pkt[TCP].chksum
        del pkt[TCP].chksum
        del pkt[IP].chksum
        assert Ether(bytes(pkt))[TCP].chksum == chk


def sources(parsed, net: int, count: int) -> dict[int, list]:
    by_src: dict[int, list] = {net + k: [] for k in range(count)}
    for p in parsed:
        if p.src in by_src:
            by_src[p.src].append(p)
    return by_src


def test_packet_mix(parsed):
    counts = Counter(p.src for p in parsed)
    attackers = sources(parsed, t.ATTACK_NET, SPEC.attackers)
    knockers = sources(parsed, t.KNOCK_NET, 2 * SPEC.knockers)
    assert sum(len(v) for v in attackers.values()) == SPEC.attack_packets == 100
    assert sum(len(v) for v in knockers.values()) == SPEC.knock_packets
    assert SPEC.knock_packets == 2 * 3 * (3 + 2)
    background = [p for p in parsed if t.BACKGROUND_NET <= p.src < t.BACKGROUND_NET + SPEC.flows]
    assert len(background) == SPEC.packets - SPEC.attack_packets - SPEC.knock_packets
    assert len(counts) <= SPEC.flows + SPEC.attackers + 2 * SPEC.knockers
    assert all(counts[src] > 0 for src in attackers)


def test_knockers_ports(parsed):
    knockers = sources(parsed, t.KNOCK_NET, 2 * SPEC.knockers)
    k0, k1, k2 = SPEC.knocks
    service = [SPEC.service_port] * SPEC.service_packets
    for k in range(2 * SPEC.knockers):
        ports = [p.dport for p in knockers[t.KNOCK_NET + k]]
        if k < SPEC.knockers:
            assert ports == [k0, k1, k2, *service], f"good knocker {k}"
        else:
            assert ports == [k1, k0, k2, *service], f"bad knocker {k}"


def test_knockers_in_order_for_many_seeds():
    for seed in range(20):
        spec = t.TraceSpec(packets=120, flows=3, attackers=0, knockers=4, service_packets=1,
                           knocks=(7, 8, 9), seed=seed)
        parsed = [parse(frame) for frame in t.make_trace(spec)]
        for k in range(spec.knockers):
            ports = [p.dport for p in parsed if p.src == t.KNOCK_NET + k]
            assert ports == [7, 8, 9, spec.service_port], f"seed {seed} knocker {k}"


def test_tcp_flags_syn_first_fin_last(parsed):
    for (src, dport), packets in connections(parsed).items():
        flags = [p.tcp_flags for p in packets]
        where = f"{int_to_ip(src)} -> {dport}"
        if len(flags) == 1:
            assert flags == [TCP_SYN], where
            continue
        assert flags[0] == TCP_SYN, where
        assert flags[-1] == TCP_FIN | TCP_ACK, where
        assert set(flags[1:-1]) <= {TCP_ACK}, where
    assert len({p.sport for p in parsed if p.src == t.KNOCK_NET}) == 1  # one port per source


def test_knocks_are_lone_syns(parsed):
    for k in range(2 * SPEC.knockers):
        packets = [p for p in parsed if p.src == t.KNOCK_NET + k]
        assert [p.tcp_flags for p in packets[:3]] == [TCP_SYN] * 3
        assert [p.tcp_flags for p in packets[3:]] == [TCP_SYN, TCP_FIN | TCP_ACK]


def test_background_follows_flow_shares():
    spec = t.TraceSpec(packets=20_000, flows=20, skew=1.2, attackers=0, knockers=0, seed=2)
    counts = Counter(parse(frame).src - t.BACKGROUND_NET for frame in t.make_trace(spec))
    shares = t.flow_shares(spec.flows, spec.skew)
    for flow in (0, 1, 2):
        assert counts[flow] / spec.packets == pytest.approx(shares[flow], abs=0.02)
    assert counts.most_common(1)[0][0] == 0


# --- flow_shares -----------------------------------------------------------------------------


@pytest.mark.parametrize("flows", [1, 2, 10, 200, 1000])
@pytest.mark.parametrize("skew", [0.0, 0.5, 1.0, 1.2, 2.0])
def test_flow_shares_sum_to_one_and_decrease(flows, skew):
    shares = t.flow_shares(flows, skew)
    assert len(shares) == flows
    assert sum(shares) == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False))
    assert all(s > 0 for s in shares)


def test_flow_shares_uniform_without_skew():
    assert t.flow_shares(4, 0) == [0.25] * 4


def test_flow_shares_zipf_law():
    shares = t.flow_shares(200, 1.2)
    harmonic = sum(k**-1.2 for k in range(1, 201))
    assert shares[0] == pytest.approx(1 / harmonic)
    assert shares[0] / shares[9] == pytest.approx(10**1.2)


def test_top_share_grows_with_skew():
    tops = [t.flow_shares(200, skew)[0] for skew in (0, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0)]
    assert tops[0] == pytest.approx(1 / 200)
    assert all(a < b for a, b in zip(tops, tops[1:], strict=False))
    top_12 = tops[3]
    assert 0.2 < top_12 < 0.35  # "about a third" in the docs: about a quarter, in fact


# --- TraceSpec -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"packets": 0}, {"flows": 0}, {"skew": -0.1}, {"attack_share": 1.0},
        {"attack_share": -0.1}, {"frame_size": 59}, {"frame_size": 1515},
        {"packets": 56, "knockers": 4},  # knock packets fill the whole trace
        {"packets": 100, "knockers": 1, "attack_share": 0.9, "attackers": 1},  # with attacks
        {"bad_seq_share": -0.01}, {"bad_seq_share": 1.0},
    ],
)
def test_trace_spec_validation(kwargs):
    with pytest.raises(ValueError):
        t.TraceSpec(**kwargs)


def test_trace_spec_counts_and_json():
    spec = t.TraceSpec(packets=1000, attackers=0, attack_share=0.5, knockers=1)
    assert spec.attack_packets == 0
    assert spec.knock_packets == 2 * (3 + spec.service_packets)
    data = spec.to_json()
    assert data["packets"] == 1000
    assert t.TraceSpec(**data) == spec


# --- pcap files -----------------------------------------------------------------------------


def test_pcap_round_trip(tmp_path, trace):
    path = tmp_path / "trace.pcap"
    t.write_pcap(path, trace)
    assert t.read_pcap(path) == trace
    assert t.read_pcap(str(path)) == trace
    assert path.stat().st_size == 24 + sum(16 + len(f) for f in trace)


def test_pcap_empty_and_odd_frames(tmp_path):
    path = tmp_path / "odd.pcap"
    frames = [b"", b"\x01", bytes(range(256)) * 5, bytes(9000)]
    t.write_pcap(path, frames)
    assert t.read_pcap(path) == frames
    t.write_pcap(path, [])  # a valid file, but nothing to replay
    assert path.stat().st_size == 24
    assert read_error(path) == f"{path} has no packets"


def test_scapy_reads_our_pcap(tmp_path, trace):
    path = tmp_path / "trace.pcap"
    t.write_pcap(path, trace[:200], rate_pps=1_000)
    packets = rdpcap(str(path))
    assert len(packets) == 200
    assert [bytes(pkt) for pkt in packets] == trace[:200]
    assert [float(pkt.time) for pkt in packets] == pytest.approx(
        [i / 1_000 for i in range(200)])
    assert packets[5][TCP].dport == parse(trace[5]).dport


def test_we_read_scapys_pcap(tmp_path, trace):
    path = tmp_path / "scapy.pcap"
    wrpcap(str(path), [Ether(frame) for frame in trace[:50]])
    assert t.read_pcap(path) == trace[:50]


def test_pcap_timestamps(tmp_path):
    path = tmp_path / "ts.pcap"
    t.write_pcap(path, [b"a"] * 3, rate_pps=0.5)
    data = path.read_bytes()
    stamps = [struct.unpack_from("<II", data, 24 + i * 17) for i in range(3)]
    assert stamps == [(0, 0), (2, 0), (4, 0)]


def read_error(path) -> str:
    with pytest.raises(t.TraceError) as info:
        t.read_pcap(path)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pcap"
    message = read_error(path)
    assert "cannot read" in message
    assert str(path) in message
    assert "No such file" in message


def test_directory_is_not_a_trace(tmp_path):
    assert "cannot read" in read_error(tmp_path)


def test_non_pcap_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a capture file, just some text\n" * 3)
    message = read_error(path)
    assert "not a" in message and "pcap" in message
    assert str(path) in message


@pytest.mark.parametrize("size, expected", [
    (0, "is empty, not a pcap or pcapng file"),
    (1, "is not a pcap or pcapng file (only 1 byte)"),
    (3, "is not a pcap or pcapng file (only 3 bytes)"),
    (23, "is truncated in its pcap file header"),
])
def test_too_short_for_a_pcap_header(tmp_path, size, expected):
    path = tmp_path / "short.pcap"
    path.write_bytes((b"\xd4\xc3\xb2\xa1" + bytes(30))[:size])
    assert read_error(path) == f"{path} {expected}"


@pytest.mark.parametrize("endianness, nano", [(">", False), ("<", True), (">", True)])
def test_big_endian_and_nanosecond_pcaps_are_read(tmp_path, trace, endianness, nano):
    path = tmp_path / "other.pcap"
    with RawPcapWriter(str(path), linktype=1, endianness=endianness, nano=nano) as writer:
        writer.write_header(None)
        for frame in trace[:20]:
            writer.write_packet(frame, sec=1, usec=2)
    assert t.read_pcap(path) == trace[:20]


def test_wrong_link_type(tmp_path):
    path = tmp_path / "raw.pcap"
    path.write_bytes(struct.pack("<IHHiIIIIIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101,
                                 0, 0, 20, 20) + bytes(20))
    assert read_error(path) == (f"{path} has link type 101 (raw IP), not Ethernet: import "
                                "it with python -m experiments.workload.trace_files")


@pytest.mark.parametrize("cut", [1, 8, 15, 16, 17, 50])
def test_truncated_pcap(tmp_path, trace, cut):
    path = tmp_path / "cut.pcap"
    t.write_pcap(path, trace[:3])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    message = read_error(path)
    assert "truncated" in message
    assert "record 2" in message


def test_corrupt_record_length(tmp_path, trace):
    path = tmp_path / "bad.pcap"
    t.write_pcap(path, trace[:2])
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24 + 8, 300_000)  # first record's incl_len > 262144
    path.write_bytes(bytes(data) + bytes(300_000))
    assert read_error(path) == f"{path} has a record longer than 262144 bytes (record 0)"
