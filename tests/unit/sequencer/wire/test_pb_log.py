"""The primary-backup log (``sequencer.wire.pb_log``): every message against hand-built bytes,
round trips, and the one-line ``ReplicationError`` for anything else."""

from __future__ import annotations

import pytest

from sequencer.wire import pb_log as pb


def test_messages_against_hand_built_bytes():
    assert pb.pack_hello(4) == b"SCRL" + bytes.fromhex("01" "0004")
    assert pb.pack_hello_reply(-1) == b"SCRL" + bytes.fromhex("01" "ffffffffffffffff")
    assert pb.pack_record(5, b"abcd") == bytes.fromhex("01" "0000000000000005") + b"abcd"
    assert pb.pack_end(258) == bytes.fromhex("02" "0000000000000102")
    assert pb.pack_ack(pb.APPLIED, 3) == bytes.fromhex("01" "0000000000000003")
    assert pb.pack_ack(pb.REFUSED, 3) == bytes.fromhex("00" "0000000000000003")
    assert pb.pack_ack(pb.ENDED, 3) == bytes.fromhex("02" "0000000000000003")


@pytest.mark.parametrize("size", [1, 4, 255, 65535])
def test_hello_round_trip(size):
    assert pb.unpack_hello(b"junk" + pb.pack_hello(size), 4) == size


@pytest.mark.parametrize("size", [0, 65536, -1])
def test_hello_refuses_a_record_size_it_cannot_say(size):
    with pytest.raises(ValueError, match="record size"):
        pb.pack_hello(size)


@pytest.mark.parametrize("applied", [-1, 0, 2**63 - 1])
def test_hello_reply_round_trip(applied):
    assert pb.unpack_hello_reply(pb.pack_hello_reply(applied)) == applied


@pytest.mark.parametrize(("offset", "what"), [(0, "magic"), (3, "magic"), (4, "version")])
def test_a_mutated_hello_is_refused(offset, what):
    for pack, unpack in ((lambda: pb.pack_hello(4), pb.unpack_hello),
                         (lambda: pb.pack_hello_reply(7), pb.unpack_hello_reply)):
        data = bytearray(pack())
        data[offset] ^= 0x20
        with pytest.raises(pb.ReplicationError) as err:
            unpack(bytes(data))
        assert "\n" not in str(err.value), what


@pytest.mark.parametrize("seq", [0, 1, -1, 2**63 - 1])
def test_messages_round_trip(seq):
    stream = pb.pack_record(seq, b"wxyz") + pb.pack_end(seq)
    assert pb.unpack_message(stream) == (pb.RECORD, seq)
    assert stream[pb.MESSAGE.size:pb.message_size(pb.RECORD, 4)] == b"wxyz"
    assert pb.unpack_message(stream, pb.message_size(pb.RECORD, 4)) == (pb.END, seq)
    assert pb.message_size(pb.END, 4) == pb.MESSAGE.size == len(pb.pack_end(seq))


@pytest.mark.parametrize("kind", [0, 3, 255])
def test_an_unknown_message_type_is_refused(kind):
    with pytest.raises(pb.ReplicationError, match=f"unknown message type {kind}"):
        pb.unpack_message(bytes([kind]) + bytes(8))


@pytest.mark.parametrize("status", [pb.REFUSED, pb.APPLIED, pb.ENDED])
def test_acks_round_trip(status):
    assert pb.unpack_ack(pb.pack_ack(status, 99)) == (status, 99)


def test_an_unknown_ack_status_is_refused():
    with pytest.raises(pb.ReplicationError, match="unknown status"):
        pb.unpack_ack(bytes([3]) + bytes(8))
