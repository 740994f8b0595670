"""The heartbeat (``sequencer.wire.heartbeat``): its layout against hand-built bytes, the round
trip, the frames it refuses, the Scapy ``Heartbeat`` layer byte for byte, and that it has
its own ethertype now: no SCR decoder takes a heartbeat, and no heartbeat decoder takes an
SCR frame or a spray command (which shares the ethertype and differs by its magic)."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether
from scapy.packet import Padding

from sequencer.wire import header as h
from sequencer.wire import heartbeat as hb
from sequencer.wire import spray as sp
from sequencer.wire.packet import PROTO_TCP, build
from sequencer.wire.scapy_layers import SCR, Heartbeat, SprayCommand

COUNTERS = [0, 41, -1, 2**63 - 1, -(2**63)]
INNER = build(src=1, dst=2, proto=PROTO_TCP, sport=1, dport=2, trace_id=0)


def test_layout_against_hand_built_bytes():
    expected = (bytes.fromhex("02534352fffd" "02534352fe02" "88b6") + b"SCRH"
                + bytes.fromhex("01" "02" "0000000000000029"))
    assert hb.heartbeat_frame(hb.CORE, 41) == expected + bytes(60 - len(expected))


def test_its_ethertype_is_local_experimental_2_not_scrs():
    assert hb.ETH_P_HEARTBEAT == 0x88B6 != h.ETH_P_SCR


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("role", sorted(hb.ROLES))
def test_round_trip(role, counter):
    frame = hb.heartbeat_frame(role, counter)
    assert len(frame) == hb.HEARTBEAT_FRAME_SIZE == 60
    assert hb.unpack_heartbeat(frame) == hb.parse_heartbeat(frame) == (role, counter)


def test_heartbeat_frame_refuses_an_unknown_role():
    with pytest.raises(ValueError, match="unknown role"):
        hb.heartbeat_frame(7, 0)


def refused(frame: bytes) -> str:
    assert hb.parse_heartbeat(frame) is None
    with pytest.raises(h.MalformedFrame) as err:
        hb.unpack_heartbeat(frame)
    return err.value.reason


@pytest.mark.parametrize(("offset", "value", "reason"), [
    (12, 0x88, "ethertype"), (13, 0xB5, "ethertype"),  # the old, shared ethertype
    (14, ord("X"), "bad_heartbeat"), (17, ord("C"), "bad_heartbeat"),  # magic
    (18, 2, "bad_heartbeat"),  # version
    (19, 3, "bad_heartbeat"),  # role
])
def test_a_mutated_byte_is_refused(offset, value, reason):
    frame = bytearray(hb.heartbeat_frame(hb.PRIMARY, 7))
    frame[offset] = value if frame[offset] != value else value ^ 1
    assert refused(bytes(frame)) == reason


def test_truncated():
    assert refused(hb.heartbeat_frame(hb.BACKUP, 1)[:hb.HEARTBEAT.size - 1]) == "truncated"
    assert refused(b"") == "truncated"


# --- the Scapy face ----------------------------------------------------------------------


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("role", sorted(hb.ROLES))
def test_codec_frame_dissected_by_scapy(role, counter):
    frame = hb.heartbeat_frame(role, counter)
    pkt = Ether(frame)
    beat = pkt[Heartbeat]
    assert pkt.type == 0x88B6 and pkt.dst == hb.HEARTBEAT_DST_MAC
    assert (beat.magic, beat.version, beat.role, beat.counter) == (
        hb.HEARTBEAT_MAGIC, hb.HEARTBEAT_VERSION, role, counter)
    assert bytes(pkt[Padding]) == bytes(60 - hb.HEARTBEAT.size)
    assert bytes(pkt) == frame


@pytest.mark.parametrize("role", sorted(hb.ROLES))
def test_scapy_built_frame_equals_the_codec(role):
    pkt = (Ether(dst=hb.HEARTBEAT_DST_MAC, src=f"{hb.HEARTBEAT_SRC_PREFIX}{role:02x}")
           / Heartbeat(role=role, counter=-5) / Padding(bytes(60 - hb.HEARTBEAT.size)))
    assert bytes(pkt) == hb.heartbeat_frame(role, -5)  # the ethertype comes from the binding


# --- heartbeats, SCR frames and spray commands keep apart ----------------------------------


def test_a_heartbeat_is_no_scr_frame():
    beat = hb.heartbeat_frame(hb.CORE, 3)
    with pytest.raises(h.MalformedFrame) as err:
        h.unpack_header(beat)
    assert err.value.reason == "ethertype"
    with pytest.raises(h.MalformedFrame):
        h.decode(beat)
    pkt = Ether(beat)
    assert not pkt.haslayer(SCR) and not pkt.haslayer(SprayCommand)


@pytest.mark.parametrize("flags", [0, h.FLAG_STOP])
def test_an_scr_frame_is_no_heartbeat(flags):
    frame = h.encode(h.ScrHeader(flags, 1, 4, 1, 2, 2, 5, 6), [b"abcd"],
                     b"" if flags else INNER)
    assert refused(frame) == "ethertype"
    assert Ether(frame).haslayer(SCR) and not Ether(frame).haslayer(Heartbeat)


def test_a_spray_command_is_no_heartbeat_and_the_reverse():
    spray, beat = sp.spray_frame(1, [0, 1]), hb.heartbeat_frame(hb.CORE, 1)
    assert spray[12:14] == beat[12:14]  # one ethertype: the magic tells them apart
    assert refused(spray) == "bad_heartbeat"
    with pytest.raises(h.MalformedFrame) as err:
        sp.unpack_spray(beat)
    assert err.value.reason == "bad_spray"
    assert Ether(spray).haslayer(SprayCommand) and not Ether(spray).haslayer(Heartbeat)
    assert Ether(beat).haslayer(Heartbeat) and not Ether(beat).haslayer(SprayCommand)
