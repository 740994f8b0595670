"""The state-service protocol (``sequencer.wire.state_service``): requests and answers against
hand-built bytes and round trips, with a stand-in for the NF's layouts (this package knows
no NF)."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from sequencer.wire import state_service as ss

NF = SimpleNamespace(record_format=struct.Struct("!IH"), value_format=struct.Struct("!qB"))


def test_request_against_hand_built_bytes():
    assert ss.pack_request(NF, 5, (0xC6120001, 80)) == bytes.fromhex(
        "0000000000000005" "0006" "c6120001" "0050")


@pytest.mark.parametrize("seq", [0, 5, -1, 2**63 - 1])
def test_request_round_trip(seq):
    data = b"xx" + ss.pack_request(NF, seq, (1, 2))
    assert ss.unpack_request(NF, data, 2) == (seq, (1, 2))


def test_a_bad_request_is_refused_with_one_line():
    good = ss.pack_request(NF, 5, (1, 2))
    wrong_length = ss.REQUEST_HEADER.pack(5, 7) + bytes(7)
    for bad, message in ((good[:9], "truncated request: 9"), (good[:-1], "truncated request 5"),
                         (wrong_length, "record of 7 bytes, not 6")):
        with pytest.raises(ValueError, match=message) as err:
            ss.unpack_request(NF, bad)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(("old", "new", "expected"), [
    (None, None, "00" + "00" * 9 + "00" * 9),
    (None, (1, 2), "02" + "00" * 9 + "000000000000000102"),
    ((-1, 0), None, "01" + "ffffffffffffffff00" + "00" * 9),
    ((3, 4), (5, 6), "03" + "000000000000000304" + "000000000000000506"),
])
def test_response_against_hand_built_bytes_and_round_trip(old, new, expected):
    data = ss.pack_response(NF, old, new)
    assert data == bytes.fromhex(expected)
    assert len(data) == ss.response_size(NF) == 19
    assert ss.unpack_response(NF, b"\xff" + data, 1) == (old, new)


def test_unknown_flag_bits_are_ignored():
    data = bytearray(ss.pack_response(NF, None, (1, 2)))
    data[0] |= 0xF0
    assert ss.unpack_response(NF, bytes(data)) == (None, (1, 2))
