"""pcap output (``sequencer.wire.pcap``): the bytes of a written file against a hand-built
pcap (header, record headers, frames), in nanoseconds and in microseconds, and read back
with Scapy's reader."""

from __future__ import annotations

import struct

import pytest
from scapy.utils import RawPcapReader

from sequencer.wire import pcap

FRAMES = [bytes(range(60)), b"\x02" * 14 + b"payload", bytes(1514)]


def hand_built(magic: int, stamps: list[tuple[int, int]], frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for (sec, frac), frame in zip(stamps, frames, strict=True):
        out += struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame
    return out


def test_nanosecond_pcap_against_hand_built_bytes(tmp_path):
    stamps_ns = [0, 1_999_999_999, 10**10 + 7]
    path = tmp_path / "ns.pcap"
    pcap.write_pcap_ns(path, FRAMES, stamps_ns)
    assert path.read_bytes() == hand_built(
        0xA1B23C4D, [(0, 0), (1, 999_999_999), (10, 7)], FRAMES)


def test_microsecond_pcap_against_hand_built_bytes(tmp_path):
    stamps = [(1, 2), (3, 999_999), (4, 0)]
    path = tmp_path / "us.pcap"
    pcap.write_pcap(path, FRAMES, stamps, nano=False)
    assert path.read_bytes() == hand_built(0xA1B2C3D4, stamps, FRAMES)


def test_an_empty_capture_is_a_header(tmp_path):
    path = tmp_path / "empty.pcap"
    pcap.write_pcap_ns(path, [], [])
    assert path.read_bytes() == hand_built(0xA1B23C4D, [], [])


def test_round_trip_through_scapys_reader(tmp_path):
    stamps_ns = [5, 1_000_000_123, 2_000_000_000]
    path = tmp_path / "rt.pcap"
    pcap.write_pcap_ns(path, FRAMES, stamps_ns)
    with RawPcapReader(str(path)) as reader:
        records = list(reader)
    assert [frame for frame, _meta in records] == FRAMES
    assert [meta.sec * 10**9 + meta.usec for _frame, meta in records] == stamps_ns


def test_stamps_and_frames_must_pair_up(tmp_path):
    with pytest.raises(ValueError):
        pcap.write_pcap(tmp_path / "x.pcap", FRAMES, [(0, 0)], nano=True)
