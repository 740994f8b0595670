"""The shard trailer: the sequencer's number and clock after an unchanged frame.

The ``shard`` strategy needs no history, and the switch must still parse the frame (its RSS
hash reads the IPv4/TCP fields), so instead of the SCR header the sequencer appends a
14-byte trailer after the original frame (network byte order)::

    | original frame | seq (u32) | timestamp (ns, u64) | magic 0x5CAF (u16) |

IPv4's total length tells where the packet ends, so the trailer changes nothing for IP; a
core finds it by its position (the last 14 bytes) and checks the magic.

The Scapy face is ``ScrTrailer`` in :mod:`sequencer.wire.scapy_layers`. Caveats: the trailer
has no ethertype to bind a layer to (Scapy files it under the frame's ``Padding``), and its
magic is all that tells it from the end of a frame that has none: 2 bytes, so one frame in
65536 without a trailer passes for one.
"""

from __future__ import annotations

import struct

from sequencer.wire.header import ETH_HEADER, SEQ_MODULUS, MalformedFrame

#: seq, timestamp (ns), magic: the shard strategy's trailer after the original frame
SCR_TRAILER = struct.Struct("!IQH")
TRAILER_MAGIC = 0x5CAF
TRAILER_SIZE = SCR_TRAILER.size


def pack_trailer(seq: int, timestamp_ns: int) -> bytes:
    """The 14-byte trailer the shard strategy appends to a frame (``seq`` wraps at 2^32)."""
    return SCR_TRAILER.pack(seq % SEQ_MODULUS, timestamp_ns, TRAILER_MAGIC)


def unpack_trailer(frame: bytes) -> tuple[int, int]:
    """``(seq, timestamp_ns)`` from the trailer at the end of ``frame``; the original frame is
    ``frame[:-TRAILER_SIZE]``. MalformedFrame if there is no trailer."""
    if len(frame) < ETH_HEADER.size + TRAILER_SIZE:
        raise MalformedFrame("truncated", f"{len(frame)} bytes")
    seq, ts, magic = SCR_TRAILER.unpack_from(frame, len(frame) - TRAILER_SIZE)
    if magic != TRAILER_MAGIC:
        raise MalformedFrame("bad_trailer", f"magic {magic:#x}")
    return seq, ts
