"""The SCR wire format: the ``struct`` codec against the Scapy ``SCR`` layer, byte for byte.

Frames built with ``encode`` are dissected by Scapy (every header field, the history records
and the inner Ethernet/IPv4 packet are checked), frames built with Scapy must equal the
codec's bytes, and ``unpack_header`` must reject every kind of malformed frame with the
right ``MalformedFrame.reason``.
"""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from sequencer.wire import header as h
from sequencer.wire.packet import PROTO_TCP, PROTO_UDP, TCP_SYN, build, ip_to_int
from sequencer.wire.scapy_layers import SCR

INNER_TCP = build(
    src=ip_to_int("198.18.0.7"), dst=ip_to_int("198.19.255.1"), proto=PROTO_TCP,
    sport=4321, dport=80, trace_id=1234, size=64, tcp_flags=TCP_SYN, tcp_seq=99,
)
INNER_UDP = build(
    src=ip_to_int("10.1.2.3"), dst=ip_to_int("10.3.2.1"), proto=PROTO_UDP,
    sport=5353, dport=53, trace_id=0xDEADBEEF, size=100,
)


def records(count: int, size: int) -> list[bytes]:
    """``count`` distinct records of ``size`` bytes."""
    return [bytes((i * 37 + j) & 0xFF for j in range(size)) for i in range(count)]


# (header, inner frame): covers STOP and data frames, empty and full histories, field limits.
CASES = [
    (h.ScrHeader(0, 0, 4, 0, 1, 1, 0, 0), INNER_TCP),
    (h.ScrHeader(0, 1, 4, 1, 2, 2, 1, 1_000), INNER_TCP),
    (h.ScrHeader(0, 3, 7, 2, 4, 4, 123_456, 987_654_321_012), INNER_UDP),
    (h.ScrHeader(0, 7, 1, 7, 8, 8, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF), INNER_UDP),
    (h.ScrHeader(0, 63, 2, 63, 64, 64, 77, 5), INNER_TCP),
    (h.ScrHeader(h.FLAG_STOP, 3, 4, 3, 4, 4, 1_000, 42), b""),
    (h.ScrHeader(h.FLAG_STOP, 0, 7, 0, 1, 1, 0, 0), b""),
]
CASE_IDS = ["n1", "n2", "n4-udp", "limits", "n64", "stop", "stop-empty"]


def encode_case(header: h.ScrHeader, inner: bytes) -> tuple[bytes, list[bytes]]:
    recs = records(header.count, header.record_size)
    return h.encode(header, recs, inner), recs


# --- constants and MACs ------------------------------------------------------------------


def test_sizes_and_offsets():
    assert h.ETH_HEADER.size == 14
    assert h.SCR_HEADER.size == 20
    assert h.SCR_OFFSET == 14
    assert h.PAYLOAD_OFFSET == 34
    assert len(h.pack_header(h.ScrHeader(0, 0, 0, 0, 1, 1, 0, 0))) == 20
    assert len(bytes(SCR())) == 20


@pytest.mark.parametrize(
    ("slot", "mac"),
    [(0, "02:53:43:52:00:00"), (1, "02:53:43:52:00:01"), (10, "02:53:43:52:00:0a"),
     (254, "02:53:43:52:00:fe")],
)
def test_slot_mac(slot, mac):
    assert h.slot_mac(slot) == mac
    assert h.mac_bytes(mac) == bytes([0x02, 0x53, 0x43, 0x52, 0x00, slot])
    assert h.dummy_ethernet(slot) == (
        h.mac_bytes(h.DUMMY_DST_MAC) + h.mac_bytes(mac) + h.ETH_P_SCR.to_bytes(2, "big")
    )


def test_slot_macs_are_distinct_and_locally_administered_unicast():
    macs = [h.slot_mac(s) for s in range(h.MAX_CORES)]
    assert len(set(macs)) == h.MAX_CORES
    for mac in [*macs, h.DUMMY_DST_MAC]:
        first = h.mac_bytes(mac)[0]
        assert first & 0x01 == 0  # unicast
        assert first & 0x02 == 0x02  # locally administered
    assert h.DUMMY_DST_MAC not in macs


@pytest.mark.parametrize("slot", [-1, h.MAX_CORES, 1000])
def test_slot_mac_rejects_out_of_range(slot):
    with pytest.raises(ValueError, match="slot"):
        h.slot_mac(slot)


# --- codec -> Scapy -------------------------------------------------------------------


@pytest.mark.parametrize(("header", "inner"), CASES, ids=CASE_IDS)
def test_codec_frame_dissected_by_scapy(header, inner):
    frame, recs = encode_case(header, inner)
    assert len(frame) == h.PAYLOAD_OFFSET + header.count * header.record_size + len(inner)
    pkt = Ether(frame)
    assert pkt.dst == h.DUMMY_DST_MAC
    assert pkt.src == h.slot_mac(header.slot)
    assert pkt.type == h.ETH_P_SCR
    scr = pkt[SCR]
    assert scr.magic == h.SCR_MAGIC
    assert scr.version == h.SCR_VERSION
    assert int(scr.flags) == header.flags
    assert ("STOP" in str(scr.flags)) == bool(header.flags & h.FLAG_STOP)
    assert scr.count == header.count
    assert scr.record_size == header.record_size
    assert scr.slot == header.slot
    assert scr.n_cores == header.n_cores
    assert scr.seq == header.seq
    assert scr.timestamp_ns == header.timestamp_ns
    assert scr.history == recs
    assert bytes(scr.payload) == inner
    assert bytes(pkt) == frame


@pytest.mark.parametrize(("header", "inner"), [c for c in CASES if c[1]],
                         ids=[i for i, c in zip(CASE_IDS, CASES, strict=True) if c[1]])
def test_codec_inner_packet_dissected_by_scapy(header, inner):
    frame, _ = encode_case(header, inner)
    inner_eth = Ether(frame)[SCR].payload
    assert isinstance(inner_eth, Ether)
    expected = Ether(inner)
    assert inner_eth.src == expected.src == "02:00:00:00:00:01"
    assert inner_eth.dst == expected.dst == "02:00:00:00:00:02"
    assert inner_eth.type == h.ETH_P_IP
    ip = inner_eth[IP]
    assert (ip.src, ip.dst, ip.proto, ip.len) == (
        expected[IP].src, expected[IP].dst, expected[IP].proto, expected[IP].len)
    l4 = TCP if ip.proto == PROTO_TCP else UDP
    assert (ip[l4].sport, ip[l4].dport) == (expected[l4].sport, expected[l4].dport)
    assert bytes(inner_eth) == inner


def test_scapy_dissects_the_largest_history():
    """The format allows up to 254 records (255 cores); the Scapy face must read them all.

    Scapy's ``FieldListField`` stops at ``conf.max_list_count`` (100) items unless the field
    sets ``max_count``; past that, ``Ether(frame)`` silently loses the SCR layer.
    """
    header = h.ScrHeader(0, 254, 2, 254, 255, 255, 77, 5)
    frame, recs = encode_case(header, INNER_TCP)
    assert h.decode(frame) == (header, recs, INNER_TCP)
    pkt = Ether(frame)
    assert pkt.haslayer(SCR)
    assert pkt[SCR].history == recs
    assert bytes(pkt[SCR].payload) == INNER_TCP


def test_stop_frame_has_no_inner_packet():
    frame, _ = encode_case(h.ScrHeader(h.FLAG_STOP, 2, 4, 0, 3, 3, 9, 9), b"")
    pkt = Ether(frame)
    assert pkt[SCR].flags.STOP
    assert not pkt.haslayer(IP)
    assert len(pkt[SCR].payload) == 0


# --- Scapy -> codec ---------------------------------------------------------------------


@pytest.mark.parametrize(("header", "inner"), CASES, ids=CASE_IDS)
def test_scapy_built_frame_equals_codec(header, inner):
    recs = records(header.count, header.record_size)
    scr = SCR(
        flags=header.flags, record_size=header.record_size, slot=header.slot,
        n_cores=header.n_cores, spray=header.spray, seq=header.seq,
        timestamp_ns=header.timestamp_ns, history=recs,
    )
    pkt = Ether(dst=h.DUMMY_DST_MAC, src=h.slot_mac(header.slot), type=h.ETH_P_SCR) / scr
    if inner:
        pkt = pkt / Ether(inner)
    assert bytes(pkt) == h.encode(header, recs, inner)
    assert bytes(scr)[:20] == h.pack_header(header)


def test_scapy_default_ethertype_binding():
    """Without an explicit type, Scapy fills in ETH_P_SCR below an SCR layer."""
    header = h.ScrHeader(0, 1, 4, 1, 2, 2, 5, 6)
    pkt = (Ether(dst=h.DUMMY_DST_MAC, src=h.slot_mac(1))
           / SCR(record_size=4, slot=1, n_cores=2, spray=2, seq=5, timestamp_ns=6,
                   history=[b"abcd"])
           / Ether(INNER_TCP))
    assert bytes(pkt) == h.encode(header, [b"abcd"], INNER_TCP)


@pytest.mark.parametrize(("header", "inner"), CASES, ids=CASE_IDS)
def test_encode_decode_round_trip(header, inner):
    frame, recs = encode_case(header, inner)
    assert h.unpack_header(frame) == header
    assert h.decode(frame) == (header, recs, inner)


def test_pack_header_layout():
    header = h.ScrHeader(h.FLAG_STOP, 3, 0xF1, 5, 6, 4, 0x0A0B0C0D, 0x1122334455667788)
    assert h.pack_header(header) == bytes.fromhex(
        "5c" "02" "01" "03" "f1" "05" "06" "04" "0a0b0c0d" "1122334455667788"
    )


def test_record_size_is_one_byte():
    with pytest.raises(struct.error):
        h.pack_header(h.ScrHeader(0, 0, h.MAX_RECORD_SIZE + 1, 0, 1, 1, 0, 0))


def test_pack_header_rejects_unwrapped_seq():
    with pytest.raises(struct.error):
        h.pack_header(h.ScrHeader(0, 0, 0, 0, 1, 1, h.SEQ_MODULUS, 0))


def test_encode_rejects_wrong_record_count_or_size():
    with pytest.raises(ValueError, match="records"):
        h.encode(h.ScrHeader(0, 2, 4, 0, 4, 4, 0, 0), [b"abcd"])
    with pytest.raises(ValueError, match="4 bytes"):
        h.encode(h.ScrHeader(0, 2, 4, 0, 4, 4, 0, 0), [b"abcd", b"abc"])


# --- malformed frames -------------------------------------------------------------------


def good_frame() -> bytearray:
    return bytearray(h.encode(h.ScrHeader(0, 2, 4, 1, 4, 4, 10, 20), records(2, 4), INNER_TCP))


def malformed(reason: str, frame: bytes) -> None:
    with pytest.raises(h.MalformedFrame) as info:
        h.unpack_header(bytes(frame))
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize("length", [0, 1, 13, 14, 33])
def test_truncated_header(length):
    malformed("truncated", good_frame()[:length])


def test_header_without_records_or_inner_is_enough():
    frame = h.encode(h.ScrHeader(0, 0, 4, 0, 1, 1, 0, 0), [])
    assert len(frame) == h.PAYLOAD_OFFSET
    assert h.unpack_header(frame).count == 0


@pytest.mark.parametrize("ethertype", [0x0800, 0x0806, 0x86DD, 0x88B6, 0x0000])
def test_wrong_ethertype(ethertype):
    frame = good_frame()
    frame[12:14] = ethertype.to_bytes(2, "big")
    malformed("ethertype", frame)


def test_ipv4_frame_is_not_scr():
    malformed("ethertype", INNER_TCP)


@pytest.mark.parametrize("magic", [0x00, 0x5D, 0xFF])
def test_bad_magic(magic):
    frame = good_frame()
    frame[h.SCR_OFFSET] = magic
    malformed("bad_header", frame)


@pytest.mark.parametrize("version", [0, 1, 3, 255])
def test_bad_version(version):
    frame = good_frame()
    frame[h.SCR_OFFSET + 1] = version
    malformed("bad_header", frame)


def raw_header(count=0, rec_size=4, slot=0, n_cores=1, seq=0, ts=0, magic=h.SCR_MAGIC,
               spray=None):
    spray = n_cores if spray is None else spray
    return (h.dummy_ethernet(0)
            + h.SCR_HEADER.pack(magic, h.SCR_VERSION, 0, count, rec_size, slot, n_cores, spray,
                                seq, ts))


@pytest.mark.parametrize(("slot", "n_cores"), [(1, 1), (4, 4), (5, 4), (255, 1), (0, 0)])
def test_slot_not_below_n_cores(slot, n_cores):
    malformed("bad_header", raw_header(slot=slot, n_cores=n_cores) + INNER_TCP)


@pytest.mark.parametrize(("count", "n_cores"), [(1, 1), (4, 4), (9, 4)])
def test_count_not_below_n_cores(count, n_cores):
    malformed("bad_header", raw_header(count=count, n_cores=n_cores) + bytes(4 * count))


def test_count_just_below_n_cores_is_accepted():
    frame = raw_header(count=3, n_cores=4) + bytes(12)
    assert h.unpack_header(frame).count == 3


@pytest.mark.parametrize("missing", [1, 4, 12])
def test_records_that_do_not_fit(missing):
    frame = raw_header(count=3, rec_size=4, n_cores=4) + bytes(12 - missing)
    malformed("truncated", frame)


def test_huge_record_size_does_not_fit():
    malformed("truncated", raw_header(count=1, rec_size=0xFF, n_cores=2) + INNER_TCP)


@pytest.mark.parametrize(("spray", "n_cores"), [(0, 4), (5, 4), (2, 1)])
def test_spray_outside_one_to_n_cores(spray, n_cores):
    malformed("bad_header", raw_header(spray=spray, n_cores=n_cores) + INNER_TCP)


# --- the history rule -----------------------------------------------------------------------


@pytest.mark.parametrize(("seq", "previous", "spray", "n_cores", "count"), [
    (0, -1, 4, 4, 0),  # nothing before the first packet
    (2, -1, 4, 4, 2),  # the start: every record there is
    (9, 5, 4, 4, 3),  # a steady round robin of 4: spray - 1
    (9, 6, 3, 4, 2),  # of 3 (a core is dead): spray - 1
    (9, 5, 3, 4, 3),  # just after a respray from 4 to 3: since the previous frame
    (20, 5, 4, 4, 3),  # a core back after a long absence: no more than n_cores - 1
    (9, 8, 4, 4, 3),  # a respray from 3 to 4 sends at least spray - 1
    (5, -1, 1, 1, 0),  # one core: no history
])
def test_expected_count(seq, previous, spray, n_cores, count):
    assert h.expected_count(seq, previous, spray, n_cores) == count


def test_check_history_refuses_a_short_history():
    h.check_history(h.ScrHeader(0, 3, 4, 1, 4, 4, 9, 0))
    h.check_history(h.ScrHeader(0, 2, 4, 1, 4, 4, 2, 0))  # the start
    h.check_history(h.ScrHeader(0, 2, 4, 1, 4, 3, 9, 0))  # spray of 3
    for header in (h.ScrHeader(0, 2, 4, 1, 4, 4, 9, 0), h.ScrHeader(0, 1, 4, 1, 4, 4, 2, 0),
                   h.ScrHeader(h.FLAG_STOP, 0, 4, 1, 4, 2, 9, 0)):
        with pytest.raises(h.MalformedFrame) as info:
            h.check_history(header)
        assert info.value.reason == "short_history"
    with pytest.raises(h.MalformedFrame) as info:
        h.check_history(h.ScrHeader(0, 3, 4, 1, 4, 4, 2, 0))  # record -1 does not exist
    assert info.value.reason == "long_history"


def test_foreign_frames_are_not_scr():
    """Scapy and the codec agree on foreign frames: neither sees an SCR header in them."""
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP())
    assert not Ether(arp).haslayer(SCR)
    malformed("ethertype", arp)
    assert not Ether(bytes(Ether() / IP() / Raw(b"x" * 40))).haslayer(SCR)
