"""``sequencer.wire.packet``: frames from ``build`` against Scapy, and ``parse`` of good and bad
frames.

Scapy dissects every built frame (Ethernet, IPv4, TCP/UDP fields, the trace id in the
payload) and recomputes the IPv4/TCP/UDP checksums, which must equal ``build``'s.
``parse`` must return the fields ``build`` was given, at any offset, and reject malformed
frames with ``MalformedFrame`` and the right reason.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from sequencer.wire import packet as p
from sequencer.wire.header import MalformedFrame

SRC = p.ip_to_int("198.18.3.4")
DST = p.ip_to_int("198.19.255.1")

TCP_CASES = [
    # (sport, dport, trace_id, size, flags, seq, ack)
    (1024, 80, 0, 60, p.TCP_SYN, 0, 0),
    (40000, 22, 7, 64, p.TCP_ACK, 123, 456),
    (65535, 1, 0xFFFF_FFFF, 128, p.TCP_FIN | p.TCP_ACK, 0xFFFF_FFFF, 0xFFFF_FFFF),
    (5, 102, 70_000, 1514, p.TCP_RST | p.TCP_PSH | p.TCP_ACK, 1, 2),
    (9, 9, 1, 61, p.TCP_SYN | p.TCP_ACK, 77, 0),  # odd length: checksum padding
]
UDP_CASES = [
    # (sport, dport, trace_id, size)
    (53, 5353, 0, 60),
    (1, 65535, 12345, 64),
    (4000, 4001, 0xFFFF_FFFF, 1514),
    (7, 8, 3, 63),
]


def build_tcp(sport, dport, trace_id, size, flags, seq, ack, **kw):
    return p.build(src=SRC, dst=DST, proto=p.PROTO_TCP, sport=sport, dport=dport,
                   trace_id=trace_id, size=size, tcp_flags=flags, tcp_seq=seq, tcp_ack=ack, **kw)


def build_udp(sport, dport, trace_id, size, **kw):
    return p.build(src=SRC, dst=DST, proto=p.PROTO_UDP, sport=sport, dport=dport,
                   trace_id=trace_id, size=size, **kw)


def recomputed(frame: bytes, l4) -> tuple[int, int]:
    """Scapy's own IPv4 and L4 checksums for ``frame``."""
    pkt = Ether(frame)
    del pkt[IP].chksum
    del pkt[l4].chksum
    fresh = Ether(bytes(pkt))
    return fresh[IP].chksum, fresh[l4].chksum


def check_ip(pkt, frame: bytes, trace_id: int, l4_len: int) -> None:
    ip = pkt[IP]
    assert pkt.type == 0x0800
    assert (ip.version, ip.ihl, ip.tos, ip.ttl, ip.flags, ip.frag) == (4, 5, 0, 64, 0, 0)
    assert ip.src == "198.18.3.4"
    assert ip.dst == "198.19.255.1"
    assert ip.id == trace_id & 0xFFFF
    assert ip.len == len(frame) - 14
    payload = bytes(pkt[IP].payload)[l4_len:]
    assert payload[:4] == trace_id.to_bytes(4, "big")
    assert payload[4:] == bytes(len(payload) - 4)


# --- build vs Scapy ----------------------------------------------------------------------


@pytest.mark.parametrize("case", TCP_CASES)
def test_build_tcp_dissected_by_scapy(case):
    sport, dport, trace_id, size, flags, seq, ack = case
    frame = build_tcp(*case)
    assert len(frame) == size
    pkt = Ether(frame)
    assert pkt.src == "02:00:00:00:00:01"
    assert pkt.dst == "02:00:00:00:00:02"
    check_ip(pkt, frame, trace_id, 20)
    tcp = pkt[TCP]
    assert pkt[IP].proto == p.PROTO_TCP
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (sport, dport, seq, ack)
    assert int(tcp.flags) == flags
    assert (tcp.dataofs, tcp.reserved, tcp.window, tcp.urgptr) == (5, 0, 65535, 0)


@pytest.mark.parametrize("case", TCP_CASES)
def test_build_tcp_checksums_valid(case):
    frame = build_tcp(*case)
    pkt = Ether(frame)
    assert (pkt[IP].chksum, pkt[TCP].chksum) == recomputed(frame, TCP)
    ip_header = frame[14:34]
    assert p.checksum(ip_header) == 0  # a valid header sums to 0xFFFF


@pytest.mark.parametrize("case", UDP_CASES)
def test_build_udp_dissected_by_scapy(case):
    sport, dport, trace_id, size = case
    frame = build_udp(*case)
    assert len(frame) == size
    pkt = Ether(frame)
    check_ip(pkt, frame, trace_id, 8)
    udp = pkt[UDP]
    assert pkt[IP].proto == p.PROTO_UDP
    assert (udp.sport, udp.dport) == (sport, dport)
    assert udp.len == len(frame) - 14 - 20


@pytest.mark.parametrize("case", UDP_CASES)
def test_build_udp_checksums_valid(case):
    frame = build_udp(*case)
    pkt = Ether(frame)
    assert pkt[UDP].chksum != 0  # 0 would mean "no checksum"
    assert (pkt[IP].chksum, pkt[UDP].chksum) == recomputed(frame, UDP)


def test_build_udp_zero_checksum_sent_as_ffff():
    """RFC 768: a computed checksum of 0 goes on the wire as 0xFFFF; find such a frame."""
    for trace_id in range(200_000):
        frame = build_udp(1000, 2000, trace_id, 60)
        if frame[40:42] == b"\xff\xff":
            break
    else:
        pytest.fail("no frame with a 0xFFFF UDP checksum found")
    assert Ether(frame)[UDP].chksum == recomputed(frame, UDP)[1] == 0xFFFF


def test_build_small_size_still_holds_headers_and_trace_id():
    tcp = build_tcp(1, 2, 42, 0, p.TCP_ACK, 0, 0)
    udp = build_udp(1, 2, 42, 0)
    assert len(tcp) == 14 + 20 + 20 + 4
    assert len(udp) == 14 + 20 + 8 + 4
    assert p.parse(tcp).trace_id == p.parse(udp).trace_id == 42


def test_build_default_size_is_ethernet_minimum():
    assert p.MIN_FRAME == 60
    assert len(p.build(src=SRC, dst=DST, proto=p.PROTO_TCP, sport=1, dport=2, trace_id=0)) == 60
    assert len(p.build(src=SRC, dst=DST, proto=p.PROTO_UDP, sport=1, dport=2, trace_id=0)) == 60


def test_build_custom_macs():
    frame = build_udp(1, 2, 3, 60, src_mac="02:aa:bb:cc:dd:ee", dst_mac="02:11:22:33:44:55")
    pkt = Ether(frame)
    assert (pkt.src, pkt.dst) == ("02:aa:bb:cc:dd:ee", "02:11:22:33:44:55")


@pytest.mark.parametrize("proto", [0, 1, 58, 132])
def test_build_rejects_other_protocols(proto):
    with pytest.raises(ValueError, match="neither TCP nor UDP"):
        p.build(src=SRC, dst=DST, proto=proto, sport=1, dport=2, trace_id=0)


# --- parse -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", TCP_CASES)
def test_parse_built_tcp(case):
    sport, dport, trace_id, size, flags, seq, ack = case
    assert p.parse(build_tcp(*case)) == p.Packet(
        SRC, DST, p.PROTO_TCP, sport, dport, flags, size - 14, seq, ack, trace_id
    )


@pytest.mark.parametrize("case", UDP_CASES)
def test_parse_built_udp(case):
    sport, dport, trace_id, size = case
    assert p.parse(build_udp(*case)) == p.Packet(
        SRC, DST, p.PROTO_UDP, sport, dport, 0, size - 14, 0, 0, trace_id
    )


@pytest.mark.parametrize("prefix", [0, 1, 34, 34 + 4 * 3, 100])
def test_parse_with_offset(prefix):
    frame = build_tcp(1234, 80, 99, 64, p.TCP_SYN, 5, 6)
    junk = bytes((i * 7 + 1) & 0xFF for i in range(prefix))
    assert p.parse(junk + frame, prefix) == p.parse(frame)
    assert p.parse(junk + frame, prefix).trace_id == 99


def test_parse_offset_does_not_read_before_it():
    frame = build_udp(1, 2, 3, 60)
    # An IPv4 frame before the offset must not be what gets parsed.
    other = build_tcp(9, 9, 9, 60, p.TCP_ACK, 0, 0)
    assert p.parse(other + frame, len(other)).proto == p.PROTO_UDP


def test_parse_scapy_frames():
    tcp = Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / TCP(
        sport=11, dport=22, flags="SA", seq=3, ack=4) / Raw(b"\x00\x00\x01\x00rest")
    got = p.parse(bytes(tcp))
    assert got == p.Packet(p.ip_to_int("1.2.3.4"), p.ip_to_int("5.6.7.8"), p.PROTO_TCP, 11, 22,
                           p.TCP_SYN | p.TCP_ACK, 48, 3, 4, 256)


def test_parse_skips_ip_and_tcp_options():
    frame = bytes(
        Ether() / IP(src="1.2.3.4", dst="5.6.7.8", options=[b"\x01\x01\x01\x00"])
        / TCP(sport=7, dport=8, options=[("NOP", None)] * 4 + [("MSS", 1460)])
        / Raw((42).to_bytes(4, "big"))
    )
    got = p.parse(frame)
    assert (got.sport, got.dport, got.trace_id) == (7, 8, 42)
    assert got.length == 24 + 28 + 4


def test_parse_other_protocol_has_no_ports():
    frame = bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / ICMP(type=8, id=1, seq=2))
    got = p.parse(frame)
    assert got.proto == 1
    assert (got.sport, got.dport, got.tcp_flags, got.tcp_seq, got.tcp_ack) == (0, 0, 0, 0, 0)
    assert got.trace_id == int.from_bytes(frame[34:38], "big")


def test_parse_no_trace_id_without_payload():
    assert p.parse(bytes(Ether() / IP() / TCP())).trace_id == p.NO_TRACE_ID
    assert p.parse(bytes(Ether() / IP() / UDP() / Raw(b"abc"))).trace_id == p.NO_TRACE_ID


def test_parse_ethernet_padding_is_not_a_trace_id():
    frame = bytes(Ether() / IP() / TCP())
    padded = frame + b"\x00\x00\x00\x05" * 2
    assert p.parse(padded).trace_id == p.NO_TRACE_ID
    assert p.parse(padded).length == 40


def test_parse_tcp_flags_include_ns_bit():
    frame = bytearray(build_tcp(1, 2, 3, 60, p.TCP_ACK, 0, 0))
    frame[14 + 20 + 12] |= 0x01  # NS, the ninth flag bit
    assert p.parse(bytes(frame)).tcp_flags == 0x100 | p.TCP_ACK


# --- parse errors ------------------------------------------------------------------------


def bad(reason: str, frame: bytes, offset: int = 0) -> None:
    with pytest.raises(MalformedFrame) as info:
        p.parse(bytes(frame), offset)
    assert info.value.reason == reason


@pytest.mark.parametrize("length", [0, 1, 14, 33])
def test_parse_truncated_ip(length):
    bad("truncated", build_tcp(1, 2, 3, 60, p.TCP_ACK, 0, 0)[:length])


def test_parse_truncated_at_offset():
    frame = build_tcp(1, 2, 3, 60, p.TCP_ACK, 0, 0)
    bad("truncated", b"x" * 40 + frame[:33], 40)
    bad("truncated", frame, 30)


@pytest.mark.parametrize("cut", [34, 40, 53])
def test_parse_truncated_tcp_header(cut):
    bad("truncated", build_tcp(1, 2, 3, 60, p.TCP_ACK, 0, 0)[:cut])


@pytest.mark.parametrize("cut", [34, 41])
def test_parse_truncated_udp_header(cut):
    bad("truncated", build_udp(1, 2, 3, 60)[:cut])


@pytest.mark.parametrize(
    "frame",
    [
        bytes(Ether() / ARP()),
        bytes(Ether() / IPv6() / UDP()),
        bytes(Ether(type=0x88B5) / Raw(bytes(50))),
    ],
    ids=["arp", "ipv6", "scr"],
)
def test_parse_wrong_ethertype(frame):
    bad("ethertype", frame)


def test_parse_vlan_tag_is_not_ipv4():
    frame = build_tcp(1, 2, 3, 60, p.TCP_ACK, 0, 0)
    tagged = frame[:12] + b"\x81\x00\x00\x05" + frame[12:]
    bad("ethertype", tagged)


def mutate(index: int, value: int, frame: bytes | None = None) -> bytes:
    data = bytearray(frame or build_tcp(1, 2, 3, 60, p.TCP_ACK, 0, 0))
    data[index] = value
    return bytes(data)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (14, 0x65),  # version 6
        (14, 0x05),  # version 0
        (14, 0x44),  # IHL 4 (16 bytes) below the minimum
        (14, 0x40),  # IHL 0
        (14, 0x4F),  # IHL 15: options run past the end of a 60-byte frame
        (16, 0x00),  # total length high byte 0 ...
    ],
)
def test_parse_bad_ip(index, value):
    frame = mutate(index, value)
    if index == 16:
        frame = mutate(17, 19, frame)  # ... total length 19 < IHL 20
    bad("bad_ip", frame)
