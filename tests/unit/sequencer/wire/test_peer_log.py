"""The peer record log (``sequencer.wire.peer_log``): the ring file's header and slot layout
against hand-built bytes, and the snapshot codec (round trip, hand-built bytes, refusals),
with a stand-in for the NF's state layout (this package knows no NF)."""

from __future__ import annotations

import struct
import sys

import pytest

from sequencer.wire import peer_log as pl


class Codec:
    """An NF's state layout, as the snapshot codec needs it: (ip, port) -> (count, flag)."""

    key_format = struct.Struct("!IH")
    value_format = struct.Struct("!qB")

    def pack_key(self, key: tuple) -> bytes:
        return self.key_format.pack(*key)

    def unpack_key(self, data: bytes) -> tuple:
        return self.key_format.unpack(data)

    def pack_value(self, value: tuple) -> bytes:
        return self.value_format.pack(*value)

    def unpack_value(self, data: bytes) -> tuple:
        return self.value_format.unpack(data)


def native(value: int, size: int, signed: bool = False) -> bytes:
    return value.to_bytes(size, sys.byteorder, signed=signed)


# --- the ring file -------------------------------------------------------------------------


def test_ring_header_against_hand_built_bytes():
    expected = (b"SCRL" + native(1, 2) + native(4, 2) + native(8, 4) + bytes(4)
                + native(-1, 8, signed=True) + bytes(40))
    assert pl.pack_ring_header(4, 8) == expected
    assert len(expected) == pl.RING_HEADER_SIZE == 64
    assert expected[pl.HORIZON_OFFSET:pl.HORIZON_OFFSET + 8] == native(-1, 8, signed=True)
    assert expected[pl.STOPPED_OFFSET] == 0


@pytest.mark.parametrize(("size", "capacity"), [(1, 1), (4, 65536), (255, 3), (65535, 2**32 - 1)])
def test_ring_header_round_trip(size, capacity):
    assert pl.unpack_ring_header(pl.pack_ring_header(size, capacity)) == (size, capacity)


@pytest.mark.parametrize(("size", "capacity"), [(0, 1), (65536, 1), (4, 0), (4, 2**32)])
def test_ring_header_refuses_what_it_cannot_say(size, capacity):
    with pytest.raises(ValueError):
        pl.pack_ring_header(size, capacity)


@pytest.mark.parametrize("offset", [0, 3, 4, 5])
def test_a_mutated_ring_header_is_refused(offset):
    data = bytearray(pl.pack_ring_header(4, 8))
    data[offset] ^= 0x01
    with pytest.raises(ValueError, match="not a record ring"):
        pl.unpack_ring_header(bytes(data))


def test_a_short_ring_header_is_refused():
    with pytest.raises(ValueError, match="64 bytes"):
        pl.unpack_ring_header(pl.pack_ring_header(4, 8)[:63])


def test_slots():
    assert pl.slot_size(4) == 12
    assert pl.empty_slot(4) == native(-1, 8, signed=True) + bytes(4)
    assert pl.slot_offset(0, 8, 4) == 64
    assert pl.slot_offset(9, 8, 4) == 64 + 12  # seq % capacity
    assert pl.ring_file_size(4, 8) == 64 + 8 * 12


# --- the snapshot --------------------------------------------------------------------------


STATE = {(0xC6120001, 80): (5, 1), (0xC6120002, 443): (-7, 0)}


def test_snapshot_against_hand_built_bytes():
    data = pl.encode_snapshot(Codec(), STATE, 41, -77, [(3, 5)])
    assert data == (bytes.fromhex("0000000000000029" "ffffffffffffffb3" "00000001" "00000002"
                                  "0000000000000003" "0000000000000005")
                    + bytes.fromhex("c6120001" "0050" "0000000000000005" "01")
                    + bytes.fromhex("c6120002" "01bb" "fffffffffffffff9" "00"))


@pytest.mark.parametrize(("state", "gaps"), [({}, []), (STATE, []), (STATE, [(0, 0), (3, 9)])])
def test_snapshot_round_trip(state, gaps):
    data = pl.encode_snapshot(Codec(), state, 12, 34, gaps)
    assert pl.decode_snapshot(Codec(), data) == (state, 12, 34, gaps)


def test_a_cut_or_padded_snapshot_is_refused():
    data = pl.encode_snapshot(Codec(), STATE, 41, -77, [(3, 5)])
    with pytest.raises(ValueError, match="truncated snapshot"):
        pl.decode_snapshot(Codec(), data[:pl.SNAPSHOT.size - 1])
    for bad in (data[:-1], data + b"\0"):
        with pytest.raises(ValueError, match="does not hold 2 entries"):
            pl.decode_snapshot(Codec(), bad)
