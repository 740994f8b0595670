"""The shard trailer (``sequencer.wire.trailer``): its layout against hand-built bytes, the
round trip, the frames it refuses, and the Scapy ``ScrTrailer`` layer byte for byte."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Padding

from sequencer.wire import header as h
from sequencer.wire import trailer as tr
from sequencer.wire.packet import PROTO_TCP, build, ip_to_int
from sequencer.wire.scapy_layers import ScrTrailer, split_trailer

INNER = build(src=ip_to_int("198.18.0.7"), dst=ip_to_int("198.19.0.1"), proto=PROTO_TCP,
              sport=4321, dport=80, trace_id=7, size=64)


def test_layout_is_seq_timestamp_magic_in_network_order():
    assert tr.TRAILER_SIZE == 14
    assert tr.pack_trailer(0x01020304, 0x1122334455667788) == bytes.fromhex(
        "01020304" "1122334455667788" "5caf")


@pytest.mark.parametrize(("seq", "ts"), [(0, 0), (1, 1_000), (h.SEQ_MODULUS - 1, 2**64 - 1),
                                         (123_456, 987_654_321_012)])
def test_round_trip(seq, ts):
    frame = INNER + tr.pack_trailer(seq, ts)
    assert tr.unpack_trailer(frame) == (seq, ts)
    assert frame[:-tr.TRAILER_SIZE] == INNER


def test_seq_wraps_at_32_bits():
    assert tr.unpack_trailer(INNER + tr.pack_trailer(h.SEQ_MODULUS + 3, 9)) == (3, 9)


@pytest.mark.parametrize("length", [0, 1, 13, 27])
def test_truncated(length):
    with pytest.raises(h.MalformedFrame) as err:
        tr.unpack_trailer((INNER + tr.pack_trailer(1, 2))[:length])
    assert err.value.reason == "truncated"


@pytest.mark.parametrize("position", [-2, -1])
def test_a_mutated_magic_byte_is_refused(position):
    frame = bytearray(INNER + tr.pack_trailer(1, 2))
    frame[position] ^= 0x01
    with pytest.raises(h.MalformedFrame) as err:
        tr.unpack_trailer(bytes(frame))
    assert err.value.reason == "bad_trailer"


def test_a_frame_without_a_trailer_is_refused():
    with pytest.raises(h.MalformedFrame, match="bad_trailer"):
        tr.unpack_trailer(INNER)


# --- the Scapy face ----------------------------------------------------------------------


@pytest.mark.parametrize(("seq", "ts"), [(0, 0), (7, 123_456_789), (2**32 - 1, 2**64 - 1)])
def test_scapy_layer_equals_the_codec(seq, ts):
    assert bytes(ScrTrailer(seq=seq, timestamp_ns=ts)) == tr.pack_trailer(seq, ts)
    layer = ScrTrailer(tr.pack_trailer(seq, ts))
    assert (layer.seq, layer.timestamp_ns, layer.magic) == (seq, ts, tr.TRAILER_MAGIC)


def test_split_trailer_gives_the_untouched_frame_and_the_trailer():
    frame = INNER + tr.pack_trailer(42, 5_000)
    inner, trailer = split_trailer(frame)
    assert bytes(inner) == INNER and inner[TCP].dport == 80
    assert (trailer.seq, trailer.timestamp_ns, trailer.magic) == (42, 5_000, 0x5CAF)


def test_scapy_files_the_trailer_under_the_ip_packets_padding():
    """What the switch and Scapy see: IPv4's length ends the packet, the trailer follows."""
    frame = INNER + tr.pack_trailer(42, 5_000)
    pkt = Ether(frame)
    assert pkt[IP].len == Ether(INNER)[IP].len  # the trailer changes nothing for IP
    assert bytes(pkt[Padding]).endswith(tr.pack_trailer(42, 5_000))
    assert bytes(pkt) == frame
