"""The heartbeat frame: how a core or a primary/backup instance tells the controller it lives.

Each instance sends a 60-byte frame out of its core port every period, to a unicast MAC that
no interface owns; the controller's pipeline sends the frames of ethertype
:data:`ETH_P_HEARTBEAT` to the controller (``controller.dispatch``), which resprays (SCR
cores) or fails over (primary-backup) when an instance's heartbeats stop.

Layout (network byte order): Ethernet (dst ``HEARTBEAT_DST_MAC``, src
``HEARTBEAT_SRC_PREFIX`` + role, ethertype), magic ``SCRH``, version (u8), role (u8),
counter (i64), zero padding to 60 bytes.

Caveat: a heartbeat proves the process is alive, not that its packet loop is.
"""

from __future__ import annotations

import struct

from sequencer.wire import header as h

ETH_P_HEARTBEAT = h.ETH_P_SCR  # IEEE local experimental; the pipeline matches it per port
HEARTBEAT_MAGIC = b"SCRH"
HEARTBEAT_VERSION = 1
HEARTBEAT_DST_MAC = "02:53:43:52:ff:fd"  # the testbed's scheme (header.slot_mac), no owner
HEARTBEAT_SRC_PREFIX = "02:53:43:52:fe:"
HEARTBEAT = struct.Struct("!6s6sH4sBBq")  # Ethernet, magic, version, role, counter
HEARTBEAT_FRAME_SIZE = 60  # the Ethernet minimum without FCS
PRIMARY, BACKUP, CORE = 0, 1, 2
ROLES = {PRIMARY: "primary", BACKUP: "backup", CORE: "core"}  # CORE: an SCR core's health
DEFAULT_HEARTBEAT_MS = 20.0


def heartbeat_frame(role: int, counter: int) -> bytes:
    """A heartbeat of ``role`` (PRIMARY or BACKUP), padded to the Ethernet minimum."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")
    src = h.mac_bytes(f"{HEARTBEAT_SRC_PREFIX}{role:02x}")
    frame = HEARTBEAT.pack(h.mac_bytes(HEARTBEAT_DST_MAC), src, ETH_P_HEARTBEAT,
                           HEARTBEAT_MAGIC, HEARTBEAT_VERSION, role, counter)
    return frame + bytes(HEARTBEAT_FRAME_SIZE - len(frame))


def parse_heartbeat(frame: bytes) -> tuple[int, int] | None:
    """``(role, counter)`` of a heartbeat frame, or None if ``frame`` is not one."""
    if len(frame) < HEARTBEAT.size:
        return None
    _dst, _src, ethertype, magic, version, role, counter = HEARTBEAT.unpack_from(frame)
    if (ethertype != ETH_P_HEARTBEAT or magic != HEARTBEAT_MAGIC or version != HEARTBEAT_VERSION
            or role not in ROLES):
        return None
    return role, counter
