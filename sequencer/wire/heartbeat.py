"""The heartbeat frame: how a core or a primary/backup instance tells the controller it lives.

Each instance sends a 60-byte frame out of its core port every period, to a unicast MAC that
no interface owns; the controller's pipeline sends the frames of ethertype
:data:`ETH_P_HEARTBEAT` arriving on core ports to the controller (``controller.dispatch``),
which resprays (SCR cores) or fails over (primary-backup) when an instance's heartbeats stop.

Layout (network byte order)::

    | Ethernet (dst HEARTBEAT_DST_MAC, src HEARTBEAT_SRC_PREFIX + role, type 0x88B6) |
    | magic "SCRH" | version (u8) | role (u8) | counter (i64) | zero padding to 60 bytes |

The ethertype is IEEE 802's "local experimental ethertype 2", not the SCR header's (0x88B5):
a heartbeat is no SCR frame, and neither the SCR codec nor Scapy's ``SCR`` layer takes it for
one. It shares that ethertype with the controller's spray command
(:mod:`sequencer.wire.spray`); the magic (``SCRH``/``SCRC``) tells them apart, and they never
take the same path (heartbeats: core port -> controller; spray commands: controller -> shim).

The Scapy face is ``Heartbeat`` in :mod:`sequencer.wire.scapy_layers`.

Caveat: a heartbeat proves the process is alive, not that its packet loop is.
"""

from __future__ import annotations

import struct

from sequencer.wire.header import ETH_MIN_FRAME, MalformedFrame, mac_bytes

ETH_P_HEARTBEAT = 0x88B6  # IEEE 802 "local experimental ethertype 2"; the pipeline matches it
HEARTBEAT_MAGIC = b"SCRH"
HEARTBEAT_VERSION = 1
HEARTBEAT_DST_MAC = "02:53:43:52:ff:fd"  # the testbed's scheme (header.slot_mac), no owner
HEARTBEAT_SRC_PREFIX = "02:53:43:52:fe:"
HEARTBEAT = struct.Struct("!6s6sH4sBBq")  # Ethernet, magic, version, role, counter
HEARTBEAT_FRAME_SIZE = ETH_MIN_FRAME
PRIMARY, BACKUP, CORE = 0, 1, 2
ROLES = {PRIMARY: "primary", BACKUP: "backup", CORE: "core"}  # CORE: an SCR core's health
DEFAULT_HEARTBEAT_MS = 20.0


def heartbeat_frame(role: int, counter: int) -> bytes:
    """A heartbeat of ``role`` (a key of ROLES), padded to the Ethernet minimum."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")
    src = mac_bytes(f"{HEARTBEAT_SRC_PREFIX}{role:02x}")
    frame = HEARTBEAT.pack(mac_bytes(HEARTBEAT_DST_MAC), src, ETH_P_HEARTBEAT,
                           HEARTBEAT_MAGIC, HEARTBEAT_VERSION, role, counter)
    return frame + bytes(HEARTBEAT_FRAME_SIZE - len(frame))


def unpack_heartbeat(frame: bytes) -> tuple[int, int]:
    """``(role, counter)`` of a heartbeat frame; MalformedFrame if ``frame`` is not one."""
    if len(frame) < HEARTBEAT.size:
        raise MalformedFrame("truncated", f"{len(frame)} bytes")
    _dst, _src, ethertype, magic, version, role, counter = HEARTBEAT.unpack_from(frame)
    if ethertype != ETH_P_HEARTBEAT:
        raise MalformedFrame("ethertype", hex(ethertype))
    if magic != HEARTBEAT_MAGIC or version != HEARTBEAT_VERSION or role not in ROLES:
        raise MalformedFrame("bad_heartbeat", f"magic {magic!r} version {version} role {role}")
    return role, counter


def parse_heartbeat(frame: bytes) -> tuple[int, int] | None:
    """``(role, counter)`` of a heartbeat frame, or None if ``frame`` is not one (the
    controller's form: anything else sent to it is ignored, never an error)."""
    try:
        return unpack_heartbeat(frame)
    except MalformedFrame:
        return None
