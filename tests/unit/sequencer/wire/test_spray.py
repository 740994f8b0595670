"""The spray command (``sequencer.wire.spray``): its layout against hand-built bytes, the round
trip, the frames it refuses, and the Scapy ``SprayCommand`` layer byte for byte."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import Ether
from scapy.packet import Padding

from sequencer.wire import header as h
from sequencer.wire import spray as sp
from sequencer.wire.scapy_layers import SprayCommand

CORE_LISTS = [[0], [0, 2, 3], [3, 1], list(range(40)), list(range(255))]


def test_layout_against_hand_built_bytes():
    expected = (bytes.fromhex("02534352fffe" "02534352fffc" "88b6") + b"SCRC"
                + bytes.fromhex("00000007" "03" "000203"))
    expected += bytes(60 - len(expected))
    assert sp.spray_frame(7, [0, 2, 3]) == expected


@pytest.mark.parametrize("cores", CORE_LISTS, ids=lambda c: f"{len(c)}cores")
@pytest.mark.parametrize("epoch", [0, 1, 2**32 - 1])
def test_round_trip(epoch, cores):
    frame = sp.spray_frame(epoch, cores)
    assert len(frame) == max(60, 14 + sp.SPRAY_HEADER.size + len(cores))
    assert sp.unpack_spray(frame) == (epoch, tuple(cores))


@pytest.mark.parametrize(("epoch", "cores"), [(1, []), (1, [1, 1]), (1, [255]), (1, [-1]),
                                              (-1, [0]), (2**32, [0])])
def test_spray_frame_refuses_what_the_format_cannot_say(epoch, cores):
    with pytest.raises(ValueError):
        sp.spray_frame(epoch, cores)


def malformed(frame: bytes) -> str:
    with pytest.raises(h.MalformedFrame) as err:
        sp.unpack_spray(frame)
    assert "\n" not in str(err.value)
    return err.value.reason


def test_refused_frames():
    frame = sp.spray_frame(7, [0, 2, 3])
    assert malformed(frame[:22]) == "truncated"
    assert malformed(frame[:12] + b"\x88\xb5" + frame[14:]) == "ethertype"
    assert malformed(frame[:14] + b"SCRX" + frame[18:]) == "bad_spray"
    assert malformed(frame[:22] + b"\x00" + frame[23:]) == "bad_spray"  # no core
    assert malformed(frame[:23] + bytes([2, 2]) + frame[25:]) == "bad_spray"  # repeated
    long = sp.spray_frame(1, list(range(60)))
    assert malformed(long[:-1]) == "bad_spray"  # fewer core ids than it says


# --- the Scapy face ----------------------------------------------------------------------


@pytest.mark.parametrize("cores", CORE_LISTS, ids=lambda c: f"{len(c)}cores")
def test_codec_frame_dissected_by_scapy(cores):
    frame = sp.spray_frame(9, cores)
    pkt = Ether(frame)
    assert pkt.type == sp.ETH_P_SPRAY and pkt.src == sp.CONTROLLER_MAC
    cmd = pkt[SprayCommand]
    assert (cmd.magic, cmd.epoch, cmd.count, cmd.cores) == (sp.SPRAY_MAGIC, 9, len(cores), cores)
    assert bytes(pkt) == frame


@pytest.mark.parametrize("cores", CORE_LISTS, ids=lambda c: f"{len(c)}cores")
def test_scapy_built_frame_equals_the_codec(cores):
    frame = sp.spray_frame(9, cores)
    pkt = Ether(dst=h.DUMMY_DST_MAC, src=sp.CONTROLLER_MAC) / SprayCommand(epoch=9, cores=cores)
    pad = 60 - len(pkt)
    if pad > 0:
        pkt = pkt / Padding(bytes(pad))
    assert bytes(pkt) == frame  # the ethertype comes from the binding
