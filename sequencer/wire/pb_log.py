"""The primary-backup log: what a primary NF instance tells its backup, over one TCP stream.

The primary sends every packet's history record, with its sequence number, and waits for
the backup's ack before it forwards the packet (``nfs.cores.replication``, output commit).
Messages (network byte order):

* primary -> backup: ``HELLO`` (magic ``SCRL``, version, record size: ``!4sBH``) once, then
  per packet ``RECORD`` (type 1, seq: ``!Bq``, then the record's bytes), and ``END`` (type 2,
  the primary's last seq) when the primary got its STOP frame;
* backup -> primary: ``HELLO_REPLY`` (magic, version, the backup's last applied seq:
  ``!4sBq``), then one ``ACK`` (status, seq: ``!Bq``) per message: ``APPLIED``, ``REFUSED``
  (the backup already holds a newer sequence number: it has taken over, and the primary
  must not forward the packet: fencing) or ``ENDED``.

The decoders raise :class:`ReplicationError` (one line) for anything else. A stream has no
framing of its own: a receiver unpacks a message once ``MESSAGE.size`` bytes are there and
then waits for :func:`message_size` bytes in all.

Caveat: the record size is fixed per connection by the hello (the NF's), so a record carries
no length; the hello is all that keeps a primary and a backup of different NFs apart.
"""

from __future__ import annotations

import struct

LOG_MAGIC = b"SCRL"
LOG_VERSION = 1
HELLO = struct.Struct("!4sBH")  # magic, version, record size
HELLO_REPLY = struct.Struct("!4sBq")  # magic, version, backup's last applied seq
MESSAGE = struct.Struct("!Bq")  # type, seq (a RECORD's bytes follow)
ACK = struct.Struct("!Bq")  # status, seq
RECORD, END = 1, 2
REFUSED, APPLIED, ENDED = 0, 1, 2
MAX_RECORD_SIZE = (1 << 16) - 1  # the hello's record size is a u16


class ReplicationError(RuntimeError):
    """The log connection failed or the peer spoke something else."""


def pack_hello(record_size: int) -> bytes:
    """The primary's hello: it will send records of ``record_size`` bytes."""
    if not 0 < record_size <= MAX_RECORD_SIZE:
        raise ValueError(f"record size must be in 1..{MAX_RECORD_SIZE}, got {record_size}")
    return HELLO.pack(LOG_MAGIC, LOG_VERSION, record_size)


def unpack_hello(data: bytes | bytearray, offset: int = 0) -> int:
    """The record size of the hello at ``offset`` of ``data`` (``HELLO.size`` bytes there)."""
    magic, version, size = HELLO.unpack_from(data, offset)
    if magic != LOG_MAGIC or version != LOG_VERSION:
        raise ReplicationError(f"bad hello {magic!r} v{version}")
    return size


def pack_hello_reply(applied: int) -> bytes:
    """The backup's answer to a hello: the last sequence number it applied (-1: none)."""
    return HELLO_REPLY.pack(LOG_MAGIC, LOG_VERSION, applied)


def unpack_hello_reply(data: bytes | bytearray, offset: int = 0) -> int:
    """The backup's last applied sequence number, from its hello reply."""
    magic, version, applied = HELLO_REPLY.unpack_from(data, offset)
    if magic != LOG_MAGIC or version != LOG_VERSION:
        raise ReplicationError(f"the backup speaks {magic!r} version {version}")
    return applied


def pack_record(seq: int, record: bytes) -> bytes:
    """A RECORD message: packet ``seq``'s history record."""
    return MESSAGE.pack(RECORD, seq) + record


def pack_end(seq: int) -> bytes:
    """An END message: the primary stopped normally after ``seq``."""
    return MESSAGE.pack(END, seq)


def unpack_message(data: bytes | bytearray, offset: int = 0) -> tuple[int, int]:
    """``(type, seq)`` of the message at ``offset``; a RECORD's bytes follow at
    ``offset + MESSAGE.size``."""
    kind, seq = MESSAGE.unpack_from(data, offset)
    if kind not in (RECORD, END):
        raise ReplicationError(f"unknown message type {kind}")
    return kind, seq


def message_size(kind: int, record_size: int) -> int:
    """The whole size of a message of type ``kind`` (RECORD or END)."""
    return MESSAGE.size + (record_size if kind == RECORD else 0)


def pack_ack(status: int, seq: int) -> bytes:
    """The backup's ack of the message about ``seq``: APPLIED, REFUSED or ENDED."""
    return ACK.pack(status, seq)


def unpack_ack(data: bytes | bytearray, offset: int = 0) -> tuple[int, int]:
    """``(status, seq)`` of the ack at ``offset``."""
    status, seq = ACK.unpack_from(data, offset)
    if status not in (REFUSED, APPLIED, ENDED):
        raise ReplicationError(f"ack {status}/{seq}: unknown status")
    return status, seq
