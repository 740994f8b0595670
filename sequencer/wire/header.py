"""The SCR header and its history records: the frame the sequencer sends each core.

Every frame the sequencer emits towards a core is::

    | dummy Ethernet (src = slot MAC, type 0x88B5) | SCR header | history records | frame |

* The dummy Ethernet source MAC carries the core slot (``02:53:43:52:00:<slot>``, "SCR" in
  ASCII), as the paper's artifact does, so that the switch can steer by an exact-match rule
  per slot: OVS has no per-packet round-robin of its own.
* The SCR header (20 bytes, network byte order) holds the sequence number the sequencer gave
  this packet, the sequencer's timestamp (the only clock NFs may read, so every replica
  computes the same thing), the number of history records and their size, the number of
  cores ``n_cores`` and the number of cores the sequencer sprays over right now (``spray``:
  fewer than ``n_cores`` while a dead core is sprayed around).
* History records are the state-relevant fields of the packets with sequence numbers
  ``seq - count .. seq - 1``, oldest first. Their layout belongs to the NF (``nfs``); here they
  are opaque fixed-size byte strings (at most 255 bytes each).
* **The history rule.** A frame to core ``c`` carries every record since the previous frame
  the sequencer sent to ``c``, and never fewer than ``spray - 1`` (nor more than
  ``n_cores - 1``, nor more than exist): ``count = min(seq, n_cores - 1, max(spray - 1,
  seq - previous - 1))``. In a steady round robin that is ``spray - 1``; when the spray
  changes, a core's history stays continuous, so a healthy core never sees a gap.
  :func:`expected_count` is the rule; :func:`check_history` is what a core can check
  without knowing the previous frame: ``count >= min(spray - 1, seq)``.

A frame with the STOP flag carries no original frame: it marks the end of a run. Its
history brings every replica up to the last sequence number, so all replicas end equal.

This module is also the base of the other Ethernet formats of ``sequencer.wire``: the
Ethernet header struct, the testbed's MAC scheme (``02:53:43:52:…``) and
:class:`MalformedFrame`, the one error every frame decoder raises.

The Scapy face of the format is ``SCR`` in :mod:`sequencer.wire.scapy_layers`, tested byte
for byte against this ``struct`` codec. This module never imports Scapy (nor that module):
importing Scapy costs ~0.7 s of CPU, which every data-path process (and every emulated
core, under its CPU quota) would pay at start-up for a layer it never uses.

Caveat: the sequence number is 32 bits and wraps after 4 G packets; runs here are far shorter.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

ETH_P_SCR = 0x88B5  # IEEE 802 "local experimental ethertype 1"
ETH_P_IP = 0x0800
SCR_MAGIC = 0x5C
SCR_VERSION = 2  # 2: the record size is one byte and the header carries the spray's size

FLAG_STOP = 0x01  # end of run: fast-forward the history, write results, exit
FLAG_MIGRATE = 0x02  # rsspp: the plan moved buckets away from this core (sequencer.rss)

#: Destination MAC of the dummy Ethernet header. Unicast and locally administered, and the
#: address of no interface, so a kernel that sees the frame drops it as "other host".
DUMMY_DST_MAC = "02:53:43:52:ff:fe"
_SLOT_MAC_PREFIX = "02:53:43:52:00:"
MAX_CORES = 255  # the header's number-of-cores field is one byte

ETH_HEADER = struct.Struct("!6s6sH")
ETH_MIN_FRAME = 60  # the Ethernet minimum without FCS: short control frames are padded to it
#: magic, version, flags, count, record size, slot, number of cores, cores sprayed over,
#: seq, timestamp (ns)
SCR_HEADER = struct.Struct("!BBBBBBBBIQ")
MAX_RECORD_SIZE = 255
SCR_OFFSET = ETH_HEADER.size
PAYLOAD_OFFSET = ETH_HEADER.size + SCR_HEADER.size  # first history record

SEQ_MODULUS = 1 << 32


class MalformedFrame(ValueError):
    """A frame that does not follow the wire format; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ScrHeader(NamedTuple):
    """The decoded SCR header."""

    flags: int
    count: int
    record_size: int
    slot: int
    n_cores: int
    spray: int  # cores sprayed over (the history's length is at least spray - 1)
    seq: int
    timestamp_ns: int


def slot_mac(slot: int) -> str:
    """The dummy source MAC that steers a frame to core ``slot``."""
    if not 0 <= slot < MAX_CORES:
        raise ValueError(f"slot {slot} outside 0..{MAX_CORES - 1}")
    return f"{_SLOT_MAC_PREFIX}{slot:02x}"


def check_fits(n_cores: int, record_size: int, nf_name: str) -> None:
    """ValueError (one line) unless ``n_cores`` cores and ``nf_name``'s records of
    ``record_size`` bytes fit this header's one-byte fields: what a sequencer checks when
    it is made."""
    if not 1 <= n_cores <= MAX_CORES:
        raise ValueError(f"cores must be in 1..{MAX_CORES}")
    if record_size > MAX_RECORD_SIZE:
        raise ValueError(f"{nf_name}'s records of {record_size} B exceed the header's "
                         f"{MAX_RECORD_SIZE} B")


def mac_bytes(mac: str) -> bytes:
    """``'aa:bb:..'`` to 6 bytes."""
    return bytes.fromhex(mac.replace(":", ""))


def dummy_ethernet(slot: int) -> bytes:
    """The 14-byte dummy Ethernet header for ``slot`` (precomputed once per slot)."""
    return ETH_HEADER.pack(mac_bytes(DUMMY_DST_MAC), mac_bytes(slot_mac(slot)), ETH_P_SCR)


def pack_header(header: ScrHeader) -> bytes:
    """The 20-byte SCR header."""
    return SCR_HEADER.pack(
        SCR_MAGIC,
        SCR_VERSION,
        header.flags,
        header.count,
        header.record_size,
        header.slot,
        header.n_cores,
        header.spray,
        header.seq,
        header.timestamp_ns,
    )


def encode(header: ScrHeader, records: list[bytes], inner: bytes = b"") -> bytes:
    """A whole frame: dummy Ethernet, header, records (oldest first), original frame."""
    if len(records) != header.count:
        raise ValueError(f"header says {header.count} records, got {len(records)}")
    if any(len(r) != header.record_size for r in records):
        raise ValueError(f"every record must be {header.record_size} bytes")
    return dummy_ethernet(header.slot) + pack_header(header) + b"".join(records) + inner


def unpack_header(frame: bytes) -> ScrHeader:
    """Validate the dummy Ethernet and SCR headers of ``frame`` and decode the latter.

    Raises :class:`MalformedFrame` for anything that is not a well-formed SCR frame whose
    records all fit inside it. The records and the inner frame start at ``PAYLOAD_OFFSET``.
    """
    if len(frame) < PAYLOAD_OFFSET:
        raise MalformedFrame("truncated", f"{len(frame)} bytes")
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype != ETH_P_SCR:
        raise MalformedFrame("ethertype", hex(ethertype))
    magic, version, flags, count, rec_size, slot, n_cores, spray, seq, ts = (
        SCR_HEADER.unpack_from(frame, SCR_OFFSET))
    if magic != SCR_MAGIC or version != SCR_VERSION:
        raise MalformedFrame("bad_header", f"magic {magic:#x} version {version}")
    if n_cores == 0 or slot >= n_cores or count >= n_cores or not 1 <= spray <= n_cores:
        raise MalformedFrame("bad_header",
                             f"slot {slot} count {count} cores {n_cores} spray {spray}")
    if PAYLOAD_OFFSET + count * rec_size > len(frame):
        raise MalformedFrame("truncated", f"{count} records of {rec_size} B do not fit")
    return ScrHeader(flags, count, rec_size, slot, n_cores, spray, seq, ts)


def expected_count(seq: int, previous: int, spray: int, n_cores: int) -> int:
    """The history length of frame ``seq`` to a core whose previous frame was ``previous``
    (-1: none yet), while the sequencer sprays over ``spray`` of ``n_cores`` cores."""
    return min(seq, n_cores - 1, max(spray - 1, seq - previous - 1))


def check_history(header: ScrHeader) -> None:
    """MalformedFrame (``short_history``) if ``header`` carries fewer records than its spray
    demands: a record the sequencer withheld would otherwise pass for a lost packet; and
    (``long_history``) if it carries records from before the first packet."""
    if header.count > header.seq:
        raise MalformedFrame("long_history", f"{header.count} records at seq {header.seq}")
    if header.count < min(header.spray - 1, header.seq):
        raise MalformedFrame("short_history", f"{header.count} records for a spray of "
                                              f"{header.spray} at seq {header.seq}")


def decode(frame: bytes) -> tuple[ScrHeader, list[bytes], bytes]:
    """Header, records and inner frame of ``frame`` (convenience form of the hot-path codec)."""
    header = unpack_header(frame)
    size = header.record_size
    records = [
        frame[PAYLOAD_OFFSET + i * size : PAYLOAD_OFFSET + (i + 1) * size]
        for i in range(header.count)
    ]
    return header, records, frame[PAYLOAD_OFFSET + header.count * size :]
