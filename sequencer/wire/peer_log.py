"""The peer record log: the layout of a core's record ring in shared memory, and the
snapshot a replacement core asks a peer for.

Both belong to SCR's loss recovery (``nfs.cores.recovery``, which owns the rings, their
seqlock discipline and the snapshot server; this module only says where the bytes go).

**The ring file** (native byte order: it never leaves the machine; one per core,
``<prefix>.core<i>`` in ``/dev/shm``)::

    | magic "SCRL" | version (u16) | record size (u16) | capacity (u32) | pad to 16 |
    | horizon (i64, at HORIZON_OFFSET = 16) | stopped (u8, at STOPPED_OFFSET = 24) | pad to 64 |
    | slot 0 | slot 1 | ... | slot capacity-1 |      slot = | seq (i64) | record |

A record of sequence number ``seq`` lives in slot ``seq % capacity``; a slot's seq is
``EMPTY_SLOT`` (-1) while empty or being written. The horizon is the highest sequence number
the owner received (-1: none yet); ``stopped`` is 1 once the owner got its STOP frame.

**The snapshot** (network byte order), the answer to ``SNAPSHOT_REQUEST`` (the byte ``S``)::

    | applied (i64) | chain (i64) | n gap ranges (u32) | n entries (u32) |
    | n x (lo, hi) (i64 each) | n x (key, value), packed by the NF |

The NF's key and value layouts are the NF's (``nfs``), which this package must not import:
the codec takes an object with the NF's ``key_format``/``value_format`` and its
``pack_key``/``unpack_key``/``pack_value``/``unpack_value`` (an ``nfs.base.NetworkFunction``
is one, see :class:`StateCodec`).

Caveats: the ring's integers are in native byte order and assume 8-byte aligned i64 stores
are atomic (x86-64); the ring's magic is the same ``SCRL`` as the primary-backup log's
(:mod:`sequencer.wire.pb_log`): the two never meet. A snapshot has no version: donor and
replacement run the same code.
"""

from __future__ import annotations

import struct
from typing import Protocol

RING_MAGIC = b"SCRL"
RING_VERSION = 1
RING_HEADER = struct.Struct("=4sHHI")  # magic, version, record size, capacity
RING_HEADER_SIZE = 64  # the slots start here
HORIZON_OFFSET = 16  # i64, 8-byte aligned
STOPPED_OFFSET = 24  # u8
SLOT_SEQ = struct.Struct("=q")  # a slot's sequence number, before its record
EMPTY_SLOT = -1
MAX_RECORD_SIZE = (1 << 16) - 1  # the header's record size is a u16

SNAPSHOT_REQUEST = b"S"
SNAPSHOT = struct.Struct("!qqII")  # applied, chain, number of gap ranges, of state entries
GAP = struct.Struct("!qq")  # a range of lost records, inclusive


class StateCodec(Protocol):
    """How an NF packs its state (``nfs.base.NetworkFunction`` has all of it)."""

    key_format: struct.Struct
    value_format: struct.Struct

    def pack_key(self, key: tuple) -> bytes: ...

    def unpack_key(self, data: bytes) -> tuple: ...

    def pack_value(self, value: tuple) -> bytes: ...

    def unpack_value(self, data: bytes) -> tuple: ...


# --- the ring file ---------------------------------------------------------------------


def slot_size(record_size: int) -> int:
    """Bytes per slot: the sequence number and the record."""
    return SLOT_SEQ.size + record_size


def slot_offset(seq: int, capacity: int, record_size: int) -> int:
    """Where the slot of ``seq`` starts in the ring file."""
    return RING_HEADER_SIZE + (seq % capacity) * slot_size(record_size)


def ring_file_size(record_size: int, capacity: int) -> int:
    return RING_HEADER_SIZE + capacity * slot_size(record_size)


def pack_ring_header(record_size: int, capacity: int) -> bytes:
    """The 64 bytes that start an empty ring: horizon -1, not stopped."""
    if not 0 < record_size <= MAX_RECORD_SIZE or not 0 < capacity < 1 << 32:
        raise ValueError(f"a ring of {capacity} records of {record_size} B cannot be described")
    head = RING_HEADER.pack(RING_MAGIC, RING_VERSION, record_size, capacity)
    return (head.ljust(HORIZON_OFFSET, b"\0")
            + SLOT_SEQ.pack(-1).ljust(RING_HEADER_SIZE - HORIZON_OFFSET, b"\0"))


def empty_slot(record_size: int) -> bytes:
    """A slot that holds no record."""
    return SLOT_SEQ.pack(EMPTY_SLOT) + bytes(record_size)


def unpack_ring_header(data) -> tuple[int, int]:
    """``(record size, capacity)`` of the ring whose file starts with ``data``; ValueError
    if it is no ring of this version."""
    if len(data) < RING_HEADER_SIZE:
        raise ValueError(f"a ring header has {RING_HEADER_SIZE} bytes, not {len(data)}")
    magic, version, record_size, capacity = RING_HEADER.unpack_from(data, 0)
    if magic != RING_MAGIC or version != RING_VERSION:
        raise ValueError(f"not a record ring: magic {magic!r} version {version}")
    return record_size, capacity


# --- the snapshot --------------------------------------------------------------------------


def encode_snapshot(codec: StateCodec, state: dict, applied: int, chain: int,
                    gaps: list[tuple[int, int]]) -> bytes:
    """The snapshot of a replica at ``applied``: its chain, its gaps, its state."""
    parts = [SNAPSHOT.pack(applied, chain, len(gaps), len(state))]
    parts += [GAP.pack(lo, hi) for lo, hi in gaps]
    parts += [codec.pack_key(k) + codec.pack_value(v) for k, v in state.items()]
    return b"".join(parts)


def decode_snapshot(codec: StateCodec, data: bytes
                    ) -> tuple[dict, int, int, list[tuple[int, int]]]:
    """``(state, applied, chain, gaps)`` of a snapshot; ValueError if ``data`` is not one."""
    try:
        applied, chain, n_gaps, n_items = SNAPSHOT.unpack_from(data)
    except struct.error:
        raise ValueError("truncated snapshot") from None
    key_size, value_size = codec.key_format.size, codec.value_format.size
    offset = SNAPSHOT.size + n_gaps * GAP.size
    if len(data) != offset + n_items * (key_size + value_size):
        raise ValueError(f"snapshot of {len(data)} bytes does not hold {n_items} entries")
    gaps = [GAP.unpack_from(data, SNAPSHOT.size + i * GAP.size) for i in range(n_gaps)]
    state = {}
    for start in range(offset, len(data), key_size + value_size):
        key = codec.unpack_key(data[start:start + key_size])
        state[key] = codec.unpack_value(data[start + key_size:start + key_size + value_size])
    return state, applied, chain, gaps
