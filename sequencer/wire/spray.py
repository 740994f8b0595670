"""The spray command: the controller tells the shim which cores to spray over from now on.

When a core dies or comes back (``controller.dispatch``'s core watch), the controller sends
the shim this frame by packet-out into the shim's ingress port; the shim sprays round-robin
over the cores named from its next packet on. The epoch orders commands, so that a late or
repeated one cannot undo a newer one. Layout (network byte order), zero-padded to the
Ethernet minimum (60 bytes)::

    | Ethernet (dst DUMMY_DST_MAC, src CONTROLLER_MAC, type 0x88B6) |
    | magic "SCRC" | epoch (u32) | n (u8) | n core ids (u8 each) | padding |

The ethertype is IEEE 802's "local experimental ethertype 2", which the heartbeat
(:mod:`sequencer.wire.heartbeat`) uses too: the two travel different paths (this one
controller -> shim by packet-out, heartbeats core port -> controller by a flow rule) and
their magics (``SCRC``, ``SCRH``) tell them apart; each decoder refuses the other's frames.

The Scapy face is ``SprayCommand`` in :mod:`sequencer.wire.scapy_layers`. Caveat: the
command is not authenticated; anything that can send into the shim's ingress port can
respray it (in the testbed, only the controller's packet-out can).
"""

from __future__ import annotations

import struct

from sequencer.wire.header import (
    DUMMY_DST_MAC,
    ETH_HEADER,
    ETH_MIN_FRAME,
    MAX_CORES,
    SEQ_MODULUS,
    MalformedFrame,
    mac_bytes,
)

ETH_P_SPRAY = 0x88B6  # IEEE 802 "local experimental ethertype 2" (shared with heartbeats)
#: magic, epoch, number of cores; the core ids follow, one byte each
SPRAY_HEADER = struct.Struct("!4sIB")
SPRAY_MAGIC = b"SCRC"
CONTROLLER_MAC = "02:53:43:52:ff:fc"  # the spray command's source: the testbed's scheme


def spray_frame(epoch: int, cores) -> bytes:
    """The controller's spray command: spray over ``cores`` (core ids) from now on."""
    cores = list(cores)
    if not cores or len(set(cores)) != len(cores) or not all(0 <= c < MAX_CORES for c in cores):
        raise ValueError(f"a spray command needs distinct core ids in 0..{MAX_CORES - 1}")
    if not 0 <= epoch < SEQ_MODULUS:
        raise ValueError("the epoch must fit in 32 bits")
    head = ETH_HEADER.pack(mac_bytes(DUMMY_DST_MAC), mac_bytes(CONTROLLER_MAC), ETH_P_SPRAY)
    frame = head + SPRAY_HEADER.pack(SPRAY_MAGIC, epoch, len(cores)) + bytes(cores)
    return frame + bytes(max(0, ETH_MIN_FRAME - len(frame)))


def unpack_spray(frame: bytes) -> tuple[int, tuple[int, ...]]:
    """``(epoch, core ids)`` of a spray command; MalformedFrame if ``frame`` is not one."""
    start = ETH_HEADER.size + SPRAY_HEADER.size
    if len(frame) < start:
        raise MalformedFrame("truncated", f"{len(frame)} bytes")
    if int.from_bytes(frame[12:14], "big") != ETH_P_SPRAY:
        raise MalformedFrame("ethertype", frame[12:14].hex())
    magic, epoch, count = SPRAY_HEADER.unpack_from(frame, ETH_HEADER.size)
    cores = tuple(frame[start:start + count])
    if magic != SPRAY_MAGIC or count == 0 or len(cores) != count:
        raise MalformedFrame("bad_spray", f"magic {magic!r}, {count} cores")
    if len(set(cores)) != count:
        raise MalformedFrame("bad_spray", f"repeated core in {cores}")
    return epoch, cores
