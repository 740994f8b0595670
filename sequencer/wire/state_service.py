"""The state-service protocol: a core's state queries and the service's answers, over TCP.

The ``service`` strategy's cores (``nfs.stores.clients.ServiceClient``) send every state
transition to one state-service process (``nfs.stores.service``), pipelined over one TCP
connection per core; the service answers each connection's requests in order, so answers
carry no id. Layout (network byte order):

* request: ``REQUEST_HEADER`` = ``!qH`` (sequence number, record length), then the record
  packed with the NF's ``record_format``;
* response (:func:`response_size` bytes): one flag byte (``FLAG_OLD``: the old value is
  present, ``FLAG_NEW``: the new one is), then the old and the new value packed with the
  NF's ``value_format``, zeros when absent.

The record and value layouts are the NF's (``nfs``), which this package must not import: the
codec takes any object with the NF's ``record_format`` and ``value_format`` structs (an
``nfs.base.NetworkFunction`` is one, see :class:`NfFormats`). The service's and the client's
hot loops inline this codec (``REQUEST_HEADER`` and the formats' own ``pack``/``unpack``);
the tests hold them to it byte for byte.

Caveats: a request's length is redundant with the NF's record size; the service treats a
request whose length differs as malformed and closes its connection. Flag bits other than
the two are ignored by the decoder.
"""

from __future__ import annotations

import struct
from typing import Protocol

REQUEST_HEADER = struct.Struct("!qH")  # sequence number, record length
FLAG_OLD = 0x01
FLAG_NEW = 0x02


class NfFormats(Protocol):
    """The NF's layouts the protocol carries (``nfs.base.NetworkFunction`` has both)."""

    record_format: struct.Struct
    value_format: struct.Struct


def pack_request(nf: NfFormats, seq: int, fields: tuple) -> bytes:
    """The request that asks the service to run ``nf``'s transition for ``fields``."""
    record = nf.record_format.pack(*fields)
    return REQUEST_HEADER.pack(seq, len(record)) + record


def unpack_request(nf: NfFormats, data: bytes | memoryview,
                   offset: int = 0) -> tuple[int, tuple]:
    """``(seq, fields)`` of the whole request at ``offset``; ValueError (one line) if the
    request is cut short or its length is not the NF's record size."""
    if len(data) - offset < REQUEST_HEADER.size:
        raise ValueError(f"truncated request: {len(data) - offset} bytes")
    seq, length = REQUEST_HEADER.unpack_from(data, offset)
    if length != nf.record_format.size:
        raise ValueError(f"request {seq} has a record of {length} bytes, not "
                         f"{nf.record_format.size}")
    if len(data) - offset < REQUEST_HEADER.size + length:
        raise ValueError(f"truncated request {seq}")
    return seq, nf.record_format.unpack_from(data, offset + REQUEST_HEADER.size)


def response_size(nf: NfFormats) -> int:
    return 1 + 2 * nf.value_format.size


def pack_response(nf: NfFormats, old: tuple | None, new: tuple | None) -> bytes:
    """The service's answer: the key's value before and after the transition."""
    zero = bytes(nf.value_format.size)
    flags = (FLAG_OLD if old is not None else 0) | (FLAG_NEW if new is not None else 0)
    pack = nf.value_format.pack
    return (bytes((flags,)) + (pack(*old) if old is not None else zero)
            + (pack(*new) if new is not None else zero))


def unpack_response(nf: NfFormats, data: bytes | memoryview,
                    offset: int = 0) -> tuple[tuple | None, tuple | None]:
    """``(old, new)`` from the response at ``offset`` of ``data``."""
    flags = data[offset]
    unpack, size = nf.value_format.unpack_from, nf.value_format.size
    old = unpack(data, offset + 1) if flags & FLAG_OLD else None
    new = unpack(data, offset + 1 + size) if flags & FLAG_NEW else None
    return old, new
