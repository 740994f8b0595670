"""Capture files: read any pcap or pcapng, write the testbed's traces, import real captures.

Reading and writing go through Scapy (``RawPcapReader``, which also opens pcapng through
its metaclass, and ``RawPcapWriter``); this module adds what a testbed needs on top:

* ``read_capture(path)`` reads classic pcap (either byte order, µs or ns stamps) and
  pcapng (several interfaces, each with its link type and ``if_tsresol``), gzipped or not,
  into a :class:`Capture` of ``(ts_ns, linktype, data)`` records. Every problem is one
  :class:`TraceError` whose message is one line naming the file: Scapy ends a file
  silently on a record cut short, so the reads are watched and a cut is reported;
* ``read_pcap``/``parse_pcap``/``write_pcap``: the testbed's traces, classic Ethernet
  pcaps (``experiments.workload.traffic`` re-exports them);
* ``import_trace(src, dst)`` turns any capture into a trace the testbed can replay:
  Ethernet/IPv4 frames only, every IPv4 address mapped one-to-one into 198.18.0.0/15 (the
  RFC 2544 benchmark range) in order of first appearance, so flows and their skew are kept
  and a capture maps the same way every time; the testbed's MACs; checksums fixed;
* ``summarize(frames)`` and :class:`TraceSummary`: what a trace holds (flows, skew,
  protocol mix), as JSON or a table.

Run ``python -m experiments.workload.trace_files CAPTURE OUT.pcap [--addresses MAP.csv]`` to import
one and print its summary.

Caveats:

* link types: Ethernet (802.1Q/802.1ad tags removed), raw IP (101, 228, and 12, which is
  DLT_RAW on Linux and most BSDs but DLT_LOOP on OpenBSD: a 12 capture from OpenBSD's
  loopback is not recognized), Linux cooked SLL and SLL2, BSD loopback NULL and LOOP;
  anything else (802.11, PPP, ...) is refused;
* only IPv4 is kept; IPv6, ARP and the rest are counted by reason and dropped. Addresses
  inside payloads (ICMP errors quoting a header, FTP, DNS answers) are not rewritten;
* the TCP/UDP checksums are updated incrementally (RFC 1624) for the new addresses, never
  recomputed from a payload a snap length may have cut: a checksum that was wrong in the
  capture (checksum offload on the capturing host) stays wrong by the same amount;
* payloads are kept as captured, so imported frames carry no trace ids (the oracle does
  not need them: it replays what the sequencer recorded; see ``nfs.oracle``);
* a pcapng Enhanced Packet Block whose captured length exceeds its block is read short by
  Scapy without a sign; records longer than 262144 bytes (libpcap's limit) are refused.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import shutil
import struct
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from scapy.utils import RawPcapNgReader, RawPcapReader
from tabulate import tabulate

from sequencer.wire import pcap
from sequencer.wire.header import ETH_HEADER, ETH_P_IP, MalformedFrame, mac_bytes
from sequencer.wire.packet import (
    PROTO_TCP,
    PROTO_UDP,
    Packet,
    checksum,
    int_to_ip,
    ip_to_int,
    parse,
)
from sequencer.wire.pcap import DEFAULT_SNAPLEN, LINKTYPE_ETHERNET

MAX_RECORD = 262_144  # libpcap's largest snap length: longer records mean a corrupt file

LINKTYPE_NULL = 0
LINKTYPE_RAW_BSD = 12  # DLT_RAW on Linux and most BSDs (DLT_LOOP on OpenBSD)
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276
IMPORTABLE_LINKTYPES = (LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW_BSD, LINKTYPE_RAW,
                        LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_LINUX_SLL2)
_LINKTYPE_NAMES = {
    0: "BSD loopback", 1: "Ethernet", 9: "PPP", 12: "raw IP", 101: "raw IP",
    105: "IEEE 802.11", 108: "OpenBSD loopback", 113: "Linux cooked", 127: "802.11 radiotap",
    228: "raw IPv4", 229: "raw IPv6", 276: "Linux cooked v2",
}

# The testbed's frames (sequencer.wire.packet.build's defaults): unicast MACs that no
# interface owns.
SRC_MAC = "02:00:00:00:00:01"
DST_MAC = "02:00:00:00:00:02"
TESTBED_NET = "198.18.0.0/15"  # RFC 2544's benchmark range
_TESTBED_BASE = ip_to_int("198.18.0.0")
TESTBED_ADDRESSES = 1 << 17  # a /15

_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_ARP = 0x0806
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad, and the pre-standard QinQ tag
_AF_INET = 2
_AF_INET6 = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, macOS
_ETH = ETH_HEADER.pack(mac_bytes(DST_MAC), mac_bytes(SRC_MAC), ETH_P_IP)
_PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                b"\xa1\xb2\x3c\x4d")
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_ADDRESS_WORDS = struct.Struct("!4H")  # source and destination, as 16-bit words
_GZIP_MAGIC = b"\x1f\x8b"


class TraceError(ValueError):
    """An unreadable, corrupt or unusable capture file (the message is one line)."""


@dataclass(frozen=True)
class Capture:
    """The records of a capture file: ``(ts_ns, linktype, data)``, in file order."""

    name: str
    format: str  # "pcap" or "pcapng"
    records: list[tuple[int, int, bytes]]

    @property
    def linktypes(self) -> list[int]:
        """The link types the records use, in order of first appearance."""
        return list(dict.fromkeys(lt for _ts, lt, _data in self.records))

    @property
    def duration_s(self) -> float:
        stamps = [ts for ts, _lt, _data in self.records]
        return (max(stamps) - min(stamps)) / 1e9 if stamps else 0.0


# --- reading --------------------------------------------------------------------------------


class _RecordTooLong(Exception):
    def __init__(self, size: int):
        super().__init__(f"a length field of {size} bytes")


class _StreamError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _WatchedStream:
    """The file Scapy's readers read from, watched: Scapy treats a short read as the end of
    the file, so a record cut short would vanish without a word; this notes it. It also
    refuses absurd read sizes (a corrupt length field) before they allocate gigabytes."""

    def __init__(self, raw: BinaryIO, name: str, gzipped: bool):
        self._raw = raw
        self.name = name
        self.gzipped = gzipped
        self.head = b""  # the first bytes, to say what the file is in errors
        self.consumed = 0
        self.reads = 0
        self.partial = False  # a read got some bytes but fewer than asked
        self.at_eof = False  # a read got fewer bytes than asked

    def start_record(self) -> None:
        self.partial = self.at_eof = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > MAX_RECORD + 65_536:  # room for pcapng options
            raise _RecordTooLong(size)
        try:
            data = self._raw.read(size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            # gzip raises EOFError on a cut stream: Scapy would take it for a clean end.
            raise _StreamError(f"{self.name} is a truncated or corrupt gzip file ({err})") \
                from None
        except OSError as err:
            raise _StreamError(f"cannot read trace {self.name}: {err.strerror or err}") \
                from None
        self.reads += 1
        if len(data) < size:
            self.at_eof = True
            self.partial = self.partial or bool(data)
        if len(self.head) < 4:
            self.head = (self.head + data)[:4]
        self.consumed += len(data)
        return data


class _Collect(logging.Filter):
    """Keeps Scapy's warnings (they explain a corrupt pcapng) instead of printing them, each
    with the number of reads before it: one after the last read is what ended the file."""

    def __init__(self):
        super().__init__()
        self.stream: _WatchedStream | None = None
        self.messages: list[tuple[int, str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append((self.stream.reads if self.stream else 0, record.getMessage()))
        return False

    def last(self) -> str | None:
        return self.messages[-1][1] if self.messages else None

    def fatal(self) -> str | None:
        """The warning Scapy gave up on, if it ended the file: a harmless one (padding,
        unsupported options) is followed by more reads."""
        if self.messages and self.stream and self.messages[-1][0] == self.stream.reads:
            return self.messages[-1][1]
        return None


@contextmanager
def _scapy_warnings() -> Iterator[_Collect]:
    logger = logging.getLogger("scapy.runtime")
    collect = _Collect()
    # First in line, ahead of Scapy's rate limiter, so that every warning is seen (a limited
    # one would read as a clean file) and none reaches a handler.
    logger.filters.insert(0, collect)
    try:
        yield collect
    finally:
        logger.removeFilter(collect)


def read_capture(path: str | Path) -> Capture:
    """The records of the pcap or pcapng file ``path`` (gzipped or not).

    A missing, unreadable, foreign, truncated or empty file, or one with a record longer
    than 262144 bytes, is a one-line :class:`TraceError`.
    """
    try:
        with open(path, "rb") as f:
            return _read_stream(f, str(path))
    except OSError as err:  # opening: missing, a directory, no permission
        raise TraceError(f"cannot read trace {path}: {err.strerror or err}") from None


def _read_stream(raw: BinaryIO, name: str) -> Capture:
    try:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
    except OSError as err:  # e.g. a directory opened on a platform that allows it
        raise TraceError(f"cannot read trace {name}: {err.strerror or err}") from None
    if gzipped:
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            return _read_file(_WatchedStream(unzipped, name, gzipped=True))
    return _read_file(_WatchedStream(raw, name, gzipped=False))


def _read_file(stream: _WatchedStream) -> Capture:
    name = stream.name
    with _scapy_warnings() as warned:
        warned.stream = stream
        try:
            # RawPcapReader's metaclass tries pcap, then pcapng (the "alternative" class).
            reader = RawPcapReader(stream)
        except _StreamError as err:
            raise TraceError(err.message) from None
        except Exception as err:  # Scapy's refusal: say what the file is, in one line
            raise TraceError(_header_error(stream, warned.last(), err)) from None
        records = _read_records(reader, stream, warned)
    if not records:
        raise TraceError(f"{name} has no packets")
    return Capture(name, "pcapng" if isinstance(reader, RawPcapNgReader) else "pcap", records)


def _header_error(stream: _WatchedStream, warning: str | None, err: Exception) -> str:
    name, magic = stream.name, stream.head
    kind = "gzipped file" if stream.gzipped else "file"
    if stream.consumed == 0:
        return f"{name} is empty, not a pcap or pcapng file"
    if magic in _PCAP_MAGICS:  # the classic reader only fails on a short file header
        return f"{name} is truncated in its pcap file header"
    if magic == _PCAPNG_MAGIC:
        if stream.at_eof:
            return f"{name} is truncated in its pcapng section header"
        why = (_detail(warning) if warning
               else str(err) if isinstance(err, _RecordTooLong) else "bad section header")
        return f"{name} is not a readable pcapng file ({why})"
    if len(magic) < 4:
        n = stream.consumed
        return f"{name} is not a pcap or pcapng {kind} (only {n} byte{'' if n == 1 else 's'})"
    return f"{name} is not a pcap or pcapng {kind} (magic {magic.hex()})"


def _read_records(reader: RawPcapReader, stream: _WatchedStream,
                  warned: _Collect) -> list[tuple[int, int, bytes]]:
    name = stream.name
    pcapng = isinstance(reader, RawPcapNgReader)
    # Classic pcap keeps FCS information in the link type's upper bits (LT_FCS_*).
    file_linktype = None if pcapng else reader.linktype & 0xFFFF
    ns_per_tick = 1 if not pcapng and reader.nano else 1000
    records: list[tuple[int, int, bytes]] = []
    ts = 0
    while True:
        index = len(records)
        stream.start_record()
        try:
            # Not the iterator: it cuts every record to 65535 bytes without a word.
            data, meta = reader._read_packet(size=MAX_RECORD + 1)
        except EOFError:
            break
        except _RecordTooLong:
            raise TraceError(f"{name} has a record longer than {MAX_RECORD} bytes "
                             f"(record {index})") from None
        except _StreamError as err:
            raise TraceError(err.message) from None
        except Exception as err:  # Scapy's own (a pcapng block cut short, ...): one line
            what = "truncated" if stream.at_eof else f"corrupt ({_detail(str(err))})"
            raise TraceError(f"{name} is {what} in record {index}") from None
        caplen = len(data) if pcapng else meta.caplen
        if caplen > MAX_RECORD:
            raise TraceError(f"{name} has a record longer than {MAX_RECORD} bytes "
                             f"(record {index})")
        if len(data) < caplen:  # Scapy returns what it could read of the last record
            raise TraceError(f"{name} is truncated in record {index}")
        if pcapng:
            if meta.tshigh is not None:  # a Simple Packet Block has no stamp: keep the last
                ts = ((meta.tshigh << 32) | meta.tslow) * 1_000_000_000 // meta.tsresol
            records.append((ts, meta.linktype, data))
        else:
            ts = meta.sec * 1_000_000_000 + meta.usec * ns_per_tick
            records.append((ts, file_linktype, data))
    # Scapy ended the file: on a clean end, a read found nothing at a record's start.
    index = len(records)
    if stream.partial:
        raise TraceError(f"{name} is truncated in record {index}")
    fatal = warned.fatal()
    if fatal:  # pcapng: a block Scapy could not make sense of ends its reading
        if stream.at_eof:
            raise TraceError(f"{name} is truncated in record {index}")
        raise TraceError(f"{name} is corrupt in record {index} ({_detail(fatal)})")
    if not stream.at_eof:  # pcapng: a block whose two lengths differ
        raise TraceError(f"{name} is corrupt in record {index} (bad block length)")
    return records


def _detail(warning: str) -> str:
    """A Scapy warning or error, as the reason in a one-line error."""
    return " ".join(warning.split()).removeprefix("PcapNg: ").strip(" !")


def read_pcap(path: str | Path) -> list[bytes]:
    """The frames of an Ethernet capture (pcap or pcapng), such as ``write_pcap`` writes.

    Any problem (see :func:`read_capture`), or another link type, is a one-line
    :class:`TraceError`.
    """
    return _ethernet_frames(read_capture(path))


def parse_pcap(data: bytes, name: str | Path = "trace") -> list[bytes]:
    """The frames of the Ethernet capture file ``data`` (``name`` says which, in errors)."""
    return _ethernet_frames(_read_stream(io.BytesIO(data), str(name)))


def _ethernet_frames(capture: Capture) -> list[bytes]:
    for linktype in capture.linktypes:
        if linktype != LINKTYPE_ETHERNET:
            raise TraceError(f"{capture.name} has link type {_linktype_name(linktype)}, not "
                             "Ethernet: import it with python -m experiments.workload.trace_files")
    return [data for _ts, _lt, data in capture.records]


def _linktype_name(linktype: int) -> str:
    name = _LINKTYPE_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)


# --- writing --------------------------------------------------------------------------------


def write_pcap(path: str | Path, frames: Sequence[bytes], rate_pps: float = 10_000,
               timestamps_ns: Sequence[int] | None = None) -> None:
    """Save ``frames`` as a classic little-endian Ethernet pcap.

    With ``timestamps_ns``, each frame is stamped with its time in nanoseconds (a
    nanosecond pcap); otherwise in microseconds, as if sent at ``rate_pps``.
    """
    if timestamps_ns is None:
        if not rate_pps > 0:
            raise ValueError(f"rate_pps must be > 0, not {rate_pps}")
        stamps = [divmod(int(i * 1e6 / rate_pps), 1_000_000) for i in range(len(frames))]
        _write(path, frames, stamps, nano=False)
    else:
        if len(timestamps_ns) != len(frames):
            raise ValueError(f"{len(timestamps_ns)} timestamps for {len(frames)} frames")
        _write(path, frames, [divmod(ts, 1_000_000_000) for ts in timestamps_ns], nano=True)


def _write(path: str | Path, frames: Sequence[bytes], stamps: list[tuple[int, int]],
           nano: bool) -> None:
    """Write ``frames`` with ``(seconds, fraction)`` stamps (fraction in ns if ``nano``)."""
    longest = max((len(frame) for frame in frames), default=0)
    if longest > MAX_RECORD:
        raise ValueError(f"a frame of {longest} bytes is longer than {MAX_RECORD}")
    if any(not 0 <= sec < 1 << 32 for sec, _frac in stamps):
        raise ValueError("a timestamp is outside the 32-bit seconds of a pcap")
    pcap.write_pcap(path, frames, stamps, nano,
                    snaplen=DEFAULT_SNAPLEN if longest <= DEFAULT_SNAPLEN else MAX_RECORD)


# --- summaries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceSummary:
    """What a trace holds. Flows are ``(src, dst, proto, sport, dport)``."""

    packets_read: int
    ipv4_kept: int
    skipped: dict[str, int]  # frames dropped, by reason
    addresses: int  # distinct IPv4 addresses
    flows: int
    top_flow_share: float  # of the kept frames
    top_flows: list[dict]  # the 5 largest: src, dst, proto, sport, dport, packets
    protocols: dict[str, int]  # tcp, udp, other
    duration_s: float
    mean_frame_bytes: float

    def to_json(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        rows = [
            ("packets read", self.packets_read),
            ("IPv4 frames kept", self.ipv4_kept),
            ("skipped", skipped),
            ("distinct addresses", self.addresses),
            ("flows", self.flows),
            ("top flow's share", f"{100 * self.top_flow_share:.1f} %"),
            ("protocols", ", ".join(f"{k} {v}" for k, v in self.protocols.items())),
            ("duration", f"{self.duration_s:.6f} s"),
            ("mean frame size", f"{self.mean_frame_bytes:.1f} bytes"),
        ]
        flows = [(f["src"], f["dst"], f["proto"], f["sport"], f["dport"], f["packets"],
                  f"{100 * f['packets'] / self.ipv4_kept:.1f} %") for f in self.top_flows]
        top = tabulate(flows, headers=["src", "dst", "proto", "sport", "dport", "packets",
                                       "share"])
        return tabulate(rows, tablefmt="plain") + "\n\ntop flows\n" + top


def summarize(frames: Sequence[bytes], timestamps_ns: Sequence[int] | None = None
              ) -> TraceSummary:
    """The summary of a trace of Ethernet frames (frames that are not IPv4 count as skipped;
    the duration is 0 without ``timestamps_ns``)."""
    skipped: Counter[str] = Counter()
    packets: list[Packet] = []
    sizes = 0
    for frame in frames:
        result = _ipv4_frame(LINKTYPE_ETHERNET, frame)
        if isinstance(result, str):
            skipped[result] += 1
            continue
        packets.append(result[1])
        sizes += len(frame)
    stamps = list(timestamps_ns or [])
    return _summary(len(frames), packets, sizes, skipped,
                    (max(stamps) - min(stamps)) / 1e9 if stamps else 0.0)


def _summary(read: int, packets: list[Packet], sizes: int, skipped: Counter[str],
             duration_s: float) -> TraceSummary:
    flows = Counter((p.src, p.dst, p.proto, p.sport, p.dport) for p in packets)
    addresses = {p.src for p in packets} | {p.dst for p in packets}
    protocols = Counter({PROTO_TCP: "tcp", PROTO_UDP: "udp"}.get(p.proto, "other")
                        for p in packets)
    top = flows.most_common(5)
    return TraceSummary(
        packets_read=read,
        ipv4_kept=len(packets),
        skipped=dict(sorted(skipped.items())),
        addresses=len(addresses),
        flows=len(flows),
        top_flow_share=top[0][1] / len(packets) if top else 0.0,
        top_flows=[{"src": int_to_ip(src), "dst": int_to_ip(dst), "proto": proto,
                    "sport": sport, "dport": dport, "packets": n}
                   for (src, dst, proto, sport, dport), n in top],
        protocols={k: protocols[k] for k in ("tcp", "udp", "other")},
        duration_s=duration_s,
        mean_frame_bytes=sizes / len(packets) if packets else 0.0,
    )


# --- importing ------------------------------------------------------------------------------


def _network_header(linktype: int, data: bytes) -> tuple[int | None, int] | None:
    """``(ethertype, offset)`` of the network header in a record of ``linktype`` (the
    ethertype None when it is no known protocol), or None when the link header is cut."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype, offset = int.from_bytes(data[12:14], "big"), 14
    elif linktype in (LINKTYPE_RAW, LINKTYPE_RAW_BSD, LINKTYPE_IPV4):
        if not data:
            return None
        ethertype = {4: ETH_P_IP, 6: _ETHERTYPE_IPV6}.get(data[0] >> 4)
        offset = 0
    elif linktype == LINKTYPE_LINUX_SLL:  # ..., protocol at 14, 16 bytes in all
        if len(data) < 16:
            return None
        ethertype, offset = int.from_bytes(data[14:16], "big"), 16
    elif linktype == LINKTYPE_LINUX_SLL2:  # protocol first, 20 bytes in all
        if len(data) < 20:
            return None
        ethertype, offset = int.from_bytes(data[0:2], "big"), 20
    else:  # NULL and LOOP: a 4-byte address family, in either byte order
        if len(data) < 4:
            return None
        family = int.from_bytes(data[:4], "little")
        if family > 0xFFFF:  # families are small numbers: it was big-endian
            family = int.from_bytes(data[:4], "big")
        ethertype = (ETH_P_IP if family == _AF_INET
                     else _ETHERTYPE_IPV6 if family in _AF_INET6 else None)
        offset = 4
    while ethertype in _VLAN_TAGS:  # a tag: TCI, then the next ethertype
        if len(data) < offset + 4:
            return None
        ethertype, offset = int.from_bytes(data[offset + 2 : offset + 4], "big"), offset + 4
    return ethertype, offset


def _ipv4_frame(linktype: int, data: bytes) -> tuple[bytes, Packet] | str:
    """The record as a testbed Ethernet/IPv4 frame and its parse, or why it is skipped."""
    found = _network_header(linktype, data)
    if found is None:
        return "truncated_link_header"
    ethertype, offset = found
    if ethertype != ETH_P_IP:
        return {_ETHERTYPE_IPV6: "ipv6", _ETHERTYPE_ARP: "arp"}.get(ethertype,
                                                                    "other_ethertype")
    frame = _ETH + data[offset:]
    try:
        return frame, parse(frame)
    except MalformedFrame as err:
        return f"malformed_ipv4:{err.reason}"


def _checksum_update(old_sum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the checksum once the addresses ``old``
    (8 bytes, source and destination) became ``new``. One's complement sums can be added up
    first and folded once."""
    total = (0xFFFF - old_sum) + sum(0xFFFF - w for w in _ADDRESS_WORDS.unpack(old))
    total += sum(_ADDRESS_WORDS.unpack(new))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _rewrite(frame: bytes, addresses: dict[bytes, bytes], name: str) -> bytes:
    """``frame`` (a parsed Ethernet/IPv4 frame) with its addresses mapped into the testbed's
    range and its checksums fixed."""
    out = bytearray(frame)
    ip = 14
    old = bytes(out[ip + 12 : ip + 20])
    for at in (ip + 12, ip + 16):
        address = bytes(out[at : at + 4])
        mapped = addresses.get(address)
        if mapped is None:
            if len(addresses) == TESTBED_ADDRESSES:
                raise TraceError(f"{name} has more than {TESTBED_ADDRESSES} distinct IPv4 "
                                 f"addresses, more than {TESTBED_NET} holds")
            mapped = (_TESTBED_BASE + len(addresses)).to_bytes(4, "big")
            addresses[address] = mapped
        out[at : at + 4] = mapped
    new = bytes(out[ip + 12 : ip + 20])
    ihl = (out[ip] & 0x0F) * 4
    out[ip + 10 : ip + 12] = b"\0\0"
    out[ip + 10 : ip + 12] = checksum(bytes(out[ip : ip + ihl])).to_bytes(2, "big")
    # TCP and UDP checksums cover the addresses (pseudo-header). A non-first fragment has
    # no L4 header; a snap length may have cut the field itself.
    if int.from_bytes(out[ip + 6 : ip + 8], "big") & 0x1FFF:
        return bytes(out)
    proto = out[ip + 9]
    field = ip + ihl + {PROTO_TCP: 16, PROTO_UDP: 6}.get(proto, -1)
    if proto in (PROTO_TCP, PROTO_UDP) and field + 2 <= len(out):
        old_sum = int.from_bytes(out[field : field + 2], "big")
        if proto == PROTO_UDP and old_sum == 0:  # "no checksum" stays so
            return bytes(out)
        new_sum = _checksum_update(old_sum, old, new)
        if proto == PROTO_UDP and new_sum == 0:  # RFC 768: a computed 0 is sent as 0xFFFF
            new_sum = 0xFFFF
        out[field : field + 2] = new_sum.to_bytes(2, "big")
    return bytes(out)


def import_trace(src: str | Path, dst: str | Path,
                 addresses_csv: str | Path | None = None) -> TraceSummary:
    """Turn the capture ``src`` into the testbed trace ``dst`` (a classic Ethernet pcap with
    the original µs timing) and, with ``addresses_csv``, write the address mapping
    (``original,testbed``). Problems are one-line :class:`TraceError`\\ s."""
    capture = read_capture(src)
    for linktype in capture.linktypes:
        if linktype not in IMPORTABLE_LINKTYPES:
            raise TraceError(
                f"{capture.name} has link type {_linktype_name(linktype)}, which cannot be "
                f"imported (supported: {', '.join(map(str, sorted(IMPORTABLE_LINKTYPES)))})")
    addresses: dict[bytes, bytes] = {}
    skipped: Counter[str] = Counter()
    frames: list[bytes] = []
    stamps: list[tuple[int, int]] = []
    packets: list[Packet] = []
    for ts, linktype, data in capture.records:
        result = _ipv4_frame(linktype, data)
        if isinstance(result, str):
            skipped[result] += 1
            continue
        frame = _rewrite(result[0], addresses, capture.name)
        frames.append(frame)
        packets.append(result[1]._replace(src=int.from_bytes(frame[26:30], "big"),
                                          dst=int.from_bytes(frame[30:34], "big")))
        stamps.append(divmod(ts // 1000, 1_000_000))
    if not frames:
        why = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        raise TraceError(f"{capture.name} has no IPv4 packets to import ({why})")
    try:
        _write(dst, frames, stamps, nano=False)
        if addresses_csv is not None:
            with open(addresses_csv, "w") as f:
                f.write("original,testbed\n")
                for original, mapped in addresses.items():
                    f.write(f"{int_to_ip(int.from_bytes(original, 'big'))},"
                            f"{int_to_ip(int.from_bytes(mapped, 'big'))}\n")
    except OSError as err:
        raise TraceError(f"cannot write {err.filename or dst}: {err.strerror or err}") \
            from None
    return _summary(len(capture.records), packets, sum(map(len, frames)), skipped,
                    capture.duration_s)


#: Where an experiment keeps an imported trace, in its results folder.
IMPORTED_TRACE = "trace.pcap"
ADDRESS_MAP = "addresses.csv"
SUMMARY_JSON = "trace_summary.json"


def import_for_run(src: str | Path, make_run_dir: Callable[[], Path],
                   folder: str = "traces") -> tuple[Path, Path, TraceSummary]:
    """Import the capture ``src`` for an experiment: the import comes first, so that a bad
    file fails (one :class:`TraceError`) before ``make_run_dir()`` makes a results folder;
    then the trace, its address map and its summary go into ``<run>/<folder>/``.
    ``(run folder, imported trace, summary)``."""
    with tempfile.TemporaryDirectory(prefix="scr-trace-") as staging:
        summary = import_trace(src, Path(staging) / IMPORTED_TRACE,
                               Path(staging) / ADDRESS_MAP)
        (Path(staging) / SUMMARY_JSON).write_text(json.dumps(summary.to_json(), indent=1)
                                                  + "\n")
        run_dir = make_run_dir()
        shutil.copytree(staging, run_dir / folder, dirs_exist_ok=True)
    return run_dir, run_dir / folder / IMPORTED_TRACE, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Import a pcap or pcapng capture as a testbed trace and summarize it.")
    parser.add_argument("capture", type=Path, help="pcap or pcapng file (gzipped or not)")
    parser.add_argument("out", type=Path, help="the trace to write (classic Ethernet pcap)")
    parser.add_argument("--addresses", type=Path, metavar="CSV",
                        help="also write the address mapping (original,testbed)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        summary = import_trace(args.capture, args.out, args.addresses)
    except TraceError as err:
        parser.exit(2, f"trace_files: {err}\n")
    print(json.dumps(summary.to_json(), indent=2) if args.json else summary.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
