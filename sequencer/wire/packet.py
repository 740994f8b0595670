"""Parse and build the testbed's IPv4 frames with ``struct`` (Scapy is too slow per packet).

``parse(frame)`` turns an Ethernet/IPv4/(TCP|UDP) frame into a :class:`Packet` with the
fields the NFs use; anything else raises :class:`~sequencer.wire.header.MalformedFrame` with a
short reason, which callers count and drop.

``build(...)`` makes the frames the traffic generator sends. Each frame carries, in the
first four bytes of its L4 payload, its *trace id*: its index in the trace. The sink and the
correctness oracle use it to tell which packet is which; the NFs ignore it.

Caveats: IPv4 options are skipped, not interpreted; fragments are treated as whole packets;
the TCP/UDP checksums are computed so that captures look right, but nothing verifies them.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from sequencer.wire.header import ETH_HEADER, ETH_P_IP, MalformedFrame, mac_bytes

PROTO_TCP = 6
PROTO_UDP = 17

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

MIN_FRAME = 60  # Ethernet minimum without FCS; the generator pads up to it

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIHHHH")
_UDP = struct.Struct("!HHHH")
_PORTS = struct.Struct("!HH")
_TCP_SEQ_ACK_OFF = struct.Struct("!IIH")
_TRACE_ID = struct.Struct("!I")
_ETHERTYPE_IP = ETH_P_IP.to_bytes(2, "big")

NO_TRACE_ID = -1


class Packet(NamedTuple):
    """The fields of one frame that NFs may read. Addresses are 32-bit integers."""

    src: int
    dst: int
    proto: int
    sport: int
    dport: int
    tcp_flags: int
    length: int  # IPv4 total length: the bytes the NF accounts for
    tcp_seq: int
    tcp_ack: int
    trace_id: int  # index in the trace, or NO_TRACE_ID


def parse(frame: bytes, offset: int = 0) -> Packet:
    """Parse the Ethernet frame that starts at ``offset`` of ``frame``."""
    end = len(frame)
    ip = offset + 14
    if end < ip + 20:
        raise MalformedFrame("truncated", f"{end - offset} bytes")
    if frame[offset + 12 : ip] != _ETHERTYPE_IP:
        raise MalformedFrame("ethertype", frame[offset + 12 : ip].hex())
    vihl, _tos, total_len, _id, _frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(
        frame, ip
    )
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or total_len < ihl or ip + ihl > end:
        raise MalformedFrame("bad_ip", f"version/ihl {vihl:#x} length {total_len}")
    l4 = ip + ihl
    sport = dport = flags = tcp_seq = tcp_ack = 0
    if proto == PROTO_TCP:
        if l4 + 20 > end:
            raise MalformedFrame("truncated", "TCP header")
        sport, dport = _PORTS.unpack_from(frame, l4)
        tcp_seq, tcp_ack, off_flags = _TCP_SEQ_ACK_OFF.unpack_from(frame, l4 + 4)
        flags = off_flags & 0x1FF
        if off_flags >> 12 < 5:
            raise MalformedFrame("bad_tcp", f"data offset {off_flags >> 12}")
        payload = l4 + (off_flags >> 12) * 4
    elif proto == PROTO_UDP:
        if l4 + 8 > end:
            raise MalformedFrame("truncated", "UDP header")
        sport, dport = _PORTS.unpack_from(frame, l4)
        payload = l4 + 8
    else:
        payload = l4
    trace_id = (
        _TRACE_ID.unpack_from(frame, payload)[0]
        if payload + 4 <= min(end, ip + total_len)
        else NO_TRACE_ID
    )
    return Packet(
        int.from_bytes(src, "big"),
        int.from_bytes(dst, "big"),
        proto,
        sport,
        dport,
        flags,
        total_len,
        tcp_seq,
        tcp_ack,
        trace_id,
    )


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_to_int(address: str) -> int:
    return int(ipaddress.IPv4Address(address))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def build(
    *,
    src: int,
    dst: int,
    proto: int,
    sport: int,
    dport: int,
    trace_id: int,
    size: int = MIN_FRAME,
    tcp_flags: int = TCP_ACK,
    tcp_seq: int = 0,
    tcp_ack: int = 0,
    src_mac: str = "02:00:00:00:00:01",
    dst_mac: str = "02:00:00:00:00:02",
) -> bytes:
    """An Ethernet/IPv4/TCP-or-UDP frame of ``size`` bytes whose payload starts with ``trace_id``.

    The default MACs are unicast addresses no interface owns, so a kernel that happens to
    see the frame drops it instead of routing it.
    """
    if proto == PROTO_TCP:
        l4_len = 20
    elif proto == PROTO_UDP:
        l4_len = 8
    else:
        raise ValueError(f"protocol {proto} is neither TCP nor UDP")
    header_len = 14 + 20 + l4_len
    payload = _TRACE_ID.pack(trace_id) + bytes(max(0, size - header_len - 4))
    total_len = 20 + l4_len + len(payload)
    ip_header = _IPV4.pack(
        0x45, 0, total_len, trace_id & 0xFFFF, 0, 64, proto, 0,
        src.to_bytes(4, "big"), dst.to_bytes(4, "big"),
    )
    ip_header = ip_header[:10] + checksum(ip_header).to_bytes(2, "big") + ip_header[12:]
    pseudo = ip_header[12:20] + struct.pack("!BBH", 0, proto, l4_len + len(payload))
    if proto == PROTO_TCP:
        l4 = _TCP.pack(sport, dport, tcp_seq, tcp_ack, (5 << 12) | tcp_flags, 65535, 0, 0)
        csum = checksum(pseudo + l4 + payload)
        l4 = l4[:16] + csum.to_bytes(2, "big") + l4[18:]
    else:
        l4 = _UDP.pack(sport, dport, l4_len + len(payload), 0)
        csum = checksum(pseudo + l4 + payload) or 0xFFFF
        l4 = l4[:6] + csum.to_bytes(2, "big")
    eth = ETH_HEADER.pack(mac_bytes(dst_mac), mac_bytes(src_mac), ETH_P_IP)
    return eth + ip_header + l4 + payload
