"""Dissect the testbed's frames: SCR headers and history records, control frames, trailers.

Run ``python -m sequencer.dissect CAPTURE`` (or ``scr-dissect``) on a pcap or pcapng file,
gzipped or not, or ``python -m sequencer.dissect --iface IF [--count N] [--timeout S]
[--write FILE.pcap]`` to capture live from an interface (root: AF_PACKET; SIGTERM or
Ctrl-C ends a capture as ``--count`` does, and ``--write``'s nanosecond pcap is flushed
frame by frame, so a capture that is stopped keeps what it printed). Each frame becomes
one block::

    #3   SCR seq=41 core=1/4 spray=4 ts=1718000000123456789ns records=3x4B
        record seq=38: src=198.18.0.7
        record seq=39: src=198.19.0.1
        record seq=40: src=198.18.0.2
        inner: IPv4 198.18.0.3:1027 -> 198.19.255.1:80 TCP [A] len=50 trace_id=41

(frames are numbered from 1, as Wireshark numbers them; ``core`` is slot/n_cores). The
record of history index ``i`` belongs to packet ``seq - count + i``. STOP frames
(``SCR STOP ...``, their records, no inner packet; ``SCR MIGRATE ...``, RSS++'s nudge to a
core that lost buckets), spray commands (``SCR spray command
epoch=.. cores=..``), heartbeats (``SCR heartbeat role=.. counter=..``), shard-trailer
frames (``SCR trailer seq=.. | <inner>``) and anything else (one summary line) have their
own forms; a frame that breaks its format is ``malformed: <reason>`` and dissection goes
on. ``--json`` prints one JSON object per frame instead (``kind``: scr, stop, migrate, spray,
heartbeat, trailer, other, malformed; the records as hex strings or dicts of fields, and
their sequence numbers in ``record_seqs``; see :func:`dissect_frame`).

History records belong to the NF, and this package must not import ``nfs``; so records
print as hex unless ``--record-format`` gives their ``struct`` layout (network byte order
if no order is given) and ``--record-names`` names the fields (``name:ip`` prints an
address, ``name:hex`` hex). The testbed's NFs' formats::

    python -c "from nfs import make_nf; print(make_nf('hh').record_format.format)"

e.g. ddos: ``--record-format '!I' --record-names src:ip``.

``--lua-path`` prints where the Wireshark/tshark dissector of the same formats lives
(``sequencer/wire/scr.lua``; ``tshark -X lua_script:$(python -m sequencer.dissect
--lua-path) -r CAPTURE``).

The fields come from the Scapy layers of :mod:`sequencer.wire.scapy_layers`; each frame is
first checked with the format's ``struct`` codec, because Scapy dissects a frame cut short
without complaint (a record would silently be shorter).

Caveats:

* a shard trailer has no ethertype: it is recognized by its magic in the last 14 bytes of
  an IPv4 frame whose IPv4 packet ends before them, so a frame that happens to end in
  0x5CAF after padding passes for a trailer frame (1 in 65536 padded frames);
* only Ethernet link types are dissected (other records print one ``linktype`` line);
  Scapy ends a file at a record cut short without a word, so a truncated capture file
  shows fewer frames, not an error;
* live capture sees both directions, as tcpdump does (``--in-only``: only what arrives),
  stamps frames with the clock at ``recv`` (not the kernel's stamp), and counts every
  frame it sees towards ``--count``, SCR or not;
* ``inner``'s ``trace_id`` is the first 4 payload bytes: the testbed's traces number their
  packets there; in any other capture it means nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from sequencer.dataplane import (
    ETH_P_ALL,
    PACKET_IGNORE_OUTGOING,
    SOL_PACKET,
    StopRequested,
    open_socket,
    raise_on_stop_signals,
)
from sequencer.wire import header as h
from sequencer.wire.heartbeat import ETH_P_HEARTBEAT, HEARTBEAT_MAGIC, unpack_heartbeat
from sequencer.wire.packet import PROTO_TCP, PROTO_UDP, int_to_ip, parse
from sequencer.wire.pcap import LINKTYPE_ETHERNET, pcap_writer
from sequencer.wire.spray import SPRAY_MAGIC, unpack_spray
from sequencer.wire.trailer import TRAILER_MAGIC, TRAILER_SIZE, unpack_trailer

PROG = "scr-dissect"
#: The Wireshark/tshark dissector of the same formats (``--lua-path`` prints it).
LUA_SCRIPT = Path(__file__).resolve().parent / "wire" / "scr.lua"
KINDS = ("scr", "stop", "migrate", "spray", "heartbeat", "trailer", "other", "malformed")
_BYTE_ORDERS = "@=<>!"
_FIELD_STYLES = ("ip", "hex")
_TCP_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "A"),
                     (0x20, "U"), (0x40, "E"), (0x80, "C"))
_PROTO_NAMES = {PROTO_TCP: "TCP", PROTO_UDP: "UDP", 1: "ICMP"}
_RECV_SIZE = 1 << 16  # larger than any frame a veth or the userspace switch carries


class UsageError(Exception):
    """Bad input the command reports in one line before exiting with status 2."""


class RecordLayout:
    """How to decode a history record: a ``struct`` format and a name (and style) per field.

    ``names`` are ``name`` or ``name:style`` (``ip``: dotted IPv4, ``hex``); without names
    the fields are ``f0``, ``f1``, ... A format with no byte-order character is read in
    network order: records are network order, and the native default would also insert
    alignment padding that is not on the wire.
    """

    def __init__(self, fmt: str, names: list[str] | None = None):
        if not fmt or fmt[0] not in _BYTE_ORDERS:
            fmt = "!" + fmt
        try:
            self.struct = struct.Struct(fmt)
        except struct.error as err:
            raise UsageError(f"bad --record-format {fmt!r}: {err}") from None
        if not 0 < self.struct.size <= h.MAX_RECORD_SIZE:
            raise UsageError(f"--record-format {fmt!r} is {self.struct.size} B; records are "
                             f"1..{h.MAX_RECORD_SIZE} B")
        n_fields = len(self.struct.unpack(bytes(self.struct.size)))
        names = names if names is not None else [f"f{i}" for i in range(n_fields)]
        if len(names) != n_fields:
            raise UsageError(f"--record-names gives {len(names)} name(s), but {fmt!r} has "
                             f"{n_fields} field(s)")
        self.fields: list[tuple[str, str]] = []
        for item in names:
            name, _, style = item.strip().partition(":")
            if not name or (style and style not in _FIELD_STYLES):
                raise UsageError(f"bad record field {item!r}: NAME or NAME:STYLE, STYLE one "
                                 f"of {', '.join(_FIELD_STYLES)}")
            self.fields.append((name, style))
        if len({name for name, _ in self.fields}) != len(self.fields):
            raise UsageError(f"repeated name in --record-names {','.join(names)}")

    @property
    def size(self) -> int:
        return self.struct.size

    def decode(self, record: bytes) -> dict:
        values = self.struct.unpack(record)
        return {name: _styled(value, style)
                for (name, style), value in zip(self.fields, values, strict=True)}


def _styled(value, style: str):
    """A record field's value as JSON can carry it, in its style."""
    if style == "ip":
        if isinstance(value, bytes) and len(value) == 4:
            return int_to_ip(int.from_bytes(value, "big"))
        if isinstance(value, int) and 0 <= value < 1 << 32:
            return int_to_ip(value)
    if isinstance(value, bytes):
        return value.hex()
    if style == "hex" and isinstance(value, int):
        return hex(value)
    return value


# --- one frame ---------------------------------------------------------------------------


def dissect_frame(frame: bytes, layout: RecordLayout | None = None) -> dict:
    """What ``frame`` is, as a JSON-ready dict; never raises for any bytes.

    ``kind`` is one of :data:`KINDS`. SCR frames (``scr``, ``stop``, ``migrate``) have
    ``seq``, ``slot``, ``n_cores``, ``spray``, ``flags``, ``timestamp_ns``, ``count``,
    ``record_size``, ``record_seqs`` and ``records`` (hex strings, or dicts with
    ``layout``) and ``inner`` (the original frame's summary; None for STOP and MIGRATE);
    ``spray``: ``epoch``, ``cores``; ``heartbeat``: ``role``, ``counter``; ``trailer``:
    ``seq``, ``timestamp_ns``, ``inner``; ``other``: ``summary``; ``malformed``:
    ``reason``.
    """
    from scapy.error import Scapy_Exception

    try:
        ethertype = int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else None
        if ethertype is None:
            return {"kind": "malformed", "reason": f"truncated: {len(frame)} bytes"}
        if ethertype == h.ETH_P_SCR:
            return _scr(frame, layout)
        if ethertype == ETH_P_HEARTBEAT:  # also the spray command's: the magic decides
            return _control(frame)
        trailer = _trailer(frame)
        if trailer is not None:
            return trailer
        return {"kind": "other", "summary": summarize(frame)}
    except h.MalformedFrame as err:
        return {"kind": "malformed", "reason": str(err)}
    except (Scapy_Exception, struct.error, ValueError, IndexError) as err:
        # Scapy may refuse bytes the codec accepted; that is still one frame's problem.
        return {"kind": "malformed", "reason": f"{type(err).__name__}: {err}"}


def _scr(frame: bytes, layout: RecordLayout | None) -> dict:
    from scapy.layers.l2 import Ether

    from sequencer.wire.scapy_layers import SCR

    header = h.unpack_header(frame)  # MalformedFrame: Scapy would not notice a short frame
    scr = Ether(frame)[SCR]
    size = scr.record_size
    history = [bytes(r) for r in scr.history]
    if len(history) != scr.count:
        # Scapy's list stops at an empty item: zero-byte records (the codec allows them,
        # no NF has them) are all empty.
        history = [b""] * scr.count
    records: list = [r.hex() for r in history]
    out = {
        "kind": ("stop" if header.flags & h.FLAG_STOP else
                 "migrate" if header.flags & h.FLAG_MIGRATE else "scr"),
        "seq": scr.seq,
        "slot": scr.slot,
        "n_cores": scr.n_cores,
        "spray": scr.spray,
        "flags": int(scr.flags),
        "timestamp_ns": scr.timestamp_ns,
        "count": scr.count,
        "record_size": size,
        # The history is the records of the count packets just before this one, oldest
        # first; sequence numbers wrap at 2^32 like the header's.
        "record_seqs": [(scr.seq - scr.count + i) % h.SEQ_MODULUS for i in range(scr.count)],
        "records": records,
    }
    if layout is not None and records:
        if layout.size == size:
            out["records"] = [layout.decode(r) for r in history]
        else:
            out["note"] = (f"the record format is {layout.size} B, these records are "
                           f"{size} B: shown as hex")
    inner = frame[h.PAYLOAD_OFFSET + scr.count * size:]
    control = header.flags & (h.FLAG_STOP | h.FLAG_MIGRATE)
    out["inner"] = summarize(inner) if inner or not control else None
    return out


def _control(frame: bytes) -> dict:
    """A spray command or a heartbeat (ethertype 0x88B6), told apart by the magic."""
    from scapy.layers.l2 import Ether

    from sequencer.wire.scapy_layers import Heartbeat, SprayCommand

    magic = frame[14:18]
    if len(magic) < len(SPRAY_MAGIC):
        return {"kind": "malformed", "reason": f"truncated: {len(frame)} bytes"}
    if magic == SPRAY_MAGIC:
        unpack_spray(frame)
        cmd = Ether(frame)[SprayCommand]
        return {"kind": "spray", "epoch": cmd.epoch, "cores": list(cmd.cores)}
    if magic == HEARTBEAT_MAGIC:
        unpack_heartbeat(frame)
        beat = Ether(frame)[Heartbeat]
        return {"kind": "heartbeat", "role": beat.get_field("role").i2repr(beat, beat.role),
                "counter": beat.counter}
    return {"kind": "malformed", "reason": f"bad_magic: 0x88b6 frame with magic {magic!r}"}


def _trailer(frame: bytes) -> dict | None:
    """A shard frame (IPv4 + trailer), or None. The IPv4 packet must end before the last
    14 bytes, so that a frame whose own bytes end in the magic is not taken for one."""
    if len(frame) < 14 + 20 + TRAILER_SIZE or frame[12:14] != b"\x08\x00" \
            or frame[14] >> 4 != 4 or frame[-2:] != TRAILER_MAGIC.to_bytes(2, "big"):
        return None
    if 14 + int.from_bytes(frame[16:18], "big") > len(frame) - TRAILER_SIZE:
        return None
    from sequencer.wire.scapy_layers import split_trailer

    unpack_trailer(frame)  # the codec's check, as for the other formats
    _original, trailer = split_trailer(frame)
    return {"kind": "trailer", "seq": trailer.seq, "timestamp_ns": trailer.timestamp_ns,
            "inner": summarize(frame[:-TRAILER_SIZE])}


def summarize(frame: bytes) -> str:
    """One line: IPv4 addresses, protocol, ports of an IPv4 frame; Scapy's summary else."""
    try:
        pkt = parse(frame)
    except h.MalformedFrame:
        return _scapy_summary(frame)
    proto = _PROTO_NAMES.get(pkt.proto, f"proto {pkt.proto}")
    if pkt.proto in (PROTO_TCP, PROTO_UDP):
        text = (f"IPv4 {int_to_ip(pkt.src)}:{pkt.sport} -> {int_to_ip(pkt.dst)}:{pkt.dport} "
                f"{proto}")
    else:
        text = f"IPv4 {int_to_ip(pkt.src)} -> {int_to_ip(pkt.dst)} {proto}"
    if pkt.proto == PROTO_TCP:
        text += f" [{_tcp_flags(pkt.tcp_flags)}]"
    text += f" len={pkt.length}"
    if pkt.trace_id >= 0:
        text += f" trace_id={pkt.trace_id}"
    return text


def _tcp_flags(flags: int) -> str:
    return "".join(letter for bit, letter in _TCP_FLAG_LETTERS if flags & bit) or "-"


def _scapy_summary(frame: bytes) -> str:
    if not frame:
        return "empty frame"
    from scapy.layers.l2 import Ether

    try:
        return f"{Ether(frame).summary()} ({len(frame)} bytes)"
    except Exception:  # Scapy's dissectors raise anything on odd bytes; a summary must not
        return f"{len(frame)} bytes: {frame[:16].hex()}..."


def render(number: int, info: dict) -> str:
    """The text block of frame ``number`` (:func:`dissect_frame`'s dict)."""
    kind = info["kind"]
    head = f"{'#' + str(number):<4} "
    if kind in ("scr", "stop", "migrate"):
        lines = [head + {"stop": "SCR STOP ", "migrate": "SCR MIGRATE "}.get(kind, "SCR ")
                 + f"seq={info['seq']} core={info['slot']}/{info['n_cores']} "
                   f"spray={info['spray']} ts={info['timestamp_ns']}ns "
                   f"records={info['count']}x{info['record_size']}B"]
        for seq, record in zip(info["record_seqs"], info["records"], strict=True):
            text = (" ".join(f"{k}={v}" for k, v in record.items())
                    if isinstance(record, dict) else record or "(empty)")
            lines.append(f"    record seq={seq}: {text}")
        if "note" in info:
            lines.append(f"    ({info['note']})")
        if info["inner"] is not None:
            lines.append(f"    inner: {info['inner']}")
        return "\n".join(lines)
    if kind == "spray":
        return head + (f"SCR spray command epoch={info['epoch']} "
                       f"cores={','.join(map(str, info['cores']))}")
    if kind == "heartbeat":
        return head + f"SCR heartbeat role={info['role']} counter={info['counter']}"
    if kind == "trailer":
        return head + (f"SCR trailer seq={info['seq']} ts={info['timestamp_ns']}ns | "
                       f"{info['inner']}")
    if kind == "malformed":
        return head + f"malformed: {info['reason']}"
    return head + info["summary"]


# --- sources -----------------------------------------------------------------------------


def read_capture(path: Path) -> Iterator[tuple[int | None, bytes]]:
    """``(linktype, frame)`` of every record of a pcap/pcapng file (gzipped or not); the
    first item is yielded only once the file has opened. UsageError if it cannot be read."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    try:
        reader = RawPcapReader(str(path))
    except (OSError, EOFError, zlib.error, Scapy_Exception, struct.error, ValueError) as err:
        raise UsageError(f"cannot read capture {path}: {_reason(err)}") from None
    try:
        while True:
            try:
                frame, meta = next(reader)
            except (StopIteration, EOFError):
                return
            except (OSError, zlib.error, Scapy_Exception, struct.error, ValueError,
                    MemoryError) as err:  # MemoryError: a corrupt record length
                raise UsageError(f"cannot read capture {path}: {_reason(err)}") from None
            # pcapng names the link type per record (its interface's); pcap per file.
            yield getattr(meta, "linktype", None) or reader.linktype, frame
    finally:
        reader.close()


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def capture(iface: str, count: int | None, timeout: float | None,
            in_only: bool) -> Iterator[tuple[int, int, bytes]]:
    """``(time_ns, linktype, frame)`` of every frame seen on ``iface`` until ``count`` frames, or
    ``timeout`` seconds, or SIGTERM/SIGINT (the time, taken at ``recv``, is for
    ``--write``)."""
    try:
        sock = open_socket(iface, ETH_P_ALL)
    except PermissionError:
        raise UsageError(f"cannot capture on {iface}: live capture needs root "
                         f"(CAP_NET_RAW)") from None
    except OSError as err:
        raise UsageError(f"cannot capture on {iface}: {_reason(err)}") from None
    try:
        if not in_only:
            # open_socket ignores what this host sends (a data-path process must not read
            # back its own frames); a capture wants both directions, as tcpdump shows them.
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 0)
        print(f"{PROG}: listening on {iface}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + timeout if timeout is not None else None
        seen = 0
        while count is None or seen < count:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                sock.settimeout(left)
            try:
                frame = sock.recv(_RECV_SIZE)
            except TimeoutError:
                return
            seen += 1
            yield time.time_ns(), LINKTYPE_ETHERNET, frame
    finally:
        sock.close()


class _Writer:
    """``--write``: a nanosecond pcap written frame by frame and flushed at once, so that a
    capture that is killed keeps every frame it printed (``sequencer.wire.pcap``'s format).
    """

    def __init__(self, path: Path):
        try:
            self._pcap = pcap_writer(path, nano=True, sync=True)
        except OSError as err:
            raise UsageError(f"cannot write {path}: {_reason(err)}") from None

    def write(self, ts_ns: int, frame: bytes) -> None:
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        self._pcap.write_packet(frame, sec=sec, usec=nsec)  # nano: ``usec`` holds ns

    def close(self) -> None:
        self._pcap.close()


# --- command line ------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Dissect the SCR testbed's frames (SCR header and history, "
                               "spray commands, heartbeats, shard trailers) from a capture "
                               "file or a live interface.")
    parser.add_argument("capture", nargs="?", type=Path,
                        help="pcap or pcapng file (gzipped or not)")
    parser.add_argument("--iface", help="capture live from this interface instead (root)")
    parser.add_argument("--count", type=_positive_int,
                        help="stop after this many frames (a file: dissect the first N)")
    parser.add_argument("--timeout", type=_seconds, help="--iface: stop after S seconds")
    parser.add_argument("--in-only", action="store_true",
                        help="--iface: only frames arriving on the interface")
    parser.add_argument("--write", type=Path, metavar="FILE.pcap",
                        help="--iface: also save the captured frames (nanosecond pcap)")
    parser.add_argument("--record-format", metavar="STRUCT",
                        help="struct format of a history record, e.g. '!IIH' (network "
                             "order if none given); else records print as hex")
    parser.add_argument("--record-names", metavar="A,B,C",
                        help="names of the record's fields; NAME:ip prints an IPv4 address, "
                             "NAME:hex hex")
    parser.add_argument("--json", action="store_true", help="one JSON object per frame")
    parser.add_argument("--lua-path", action="store_true",
                        help="print the path of the Wireshark/tshark Lua dissector and exit")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.lua_path:
        return
    if args.capture is not None and args.iface is not None:
        parser.error("give a capture file or --iface, not both")
    if args.capture is None and args.iface is None:
        parser.error("give a capture file or --iface")
    if args.iface is None:
        for flag, value in (("--timeout", args.timeout), ("--write", args.write),
                            ("--in-only", args.in_only or None)):
            if value is not None:
                parser.error(f"{flag} needs --iface")
    if args.record_names is not None and args.record_format is None:
        parser.error("--record-names needs --record-format")


def run(args: argparse.Namespace) -> int:
    layout = None
    if args.record_format is not None:
        names = args.record_names.split(",") if args.record_names is not None else None
        layout = RecordLayout(args.record_format, names)
    writer = _Writer(args.write) if args.write is not None else None
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if args.iface is not None:
        frames = capture(args.iface, args.count, args.timeout, args.in_only)
        # SIGTERM (how a lab or a test ends a capture) and Ctrl-C end it like --count:
        # the frames so far stay printed and saved, and the pcap is closed whole.
        raise_on_stop_signals()
    else:
        frames = ((0, linktype, frame) for linktype, frame
                  in _first(read_capture(args.capture), args.count))
    try:
        for number, (ts_ns, linktype, frame) in enumerate(frames, start=1):
            if writer is not None:
                writer.write(ts_ns, frame)
            if linktype != LINKTYPE_ETHERNET:
                info = {"kind": "other",
                        "summary": f"linktype {linktype} (not Ethernet), {len(frame)} bytes"}
            else:
                info = dissect_frame(frame, layout)
            if args.json:
                print(json.dumps({"frame": number, "length": len(frame), **info}), flush=True)
            else:
                print(render(number, info), flush=True)
    except StopRequested:
        pass
    finally:
        # The caller's handlers again (main() may run inside another program, a test).
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if writer is not None:
            writer.close()
    return 0


def _first(items: Iterator, count: int | None) -> Iterator:
    for i, item in enumerate(items):
        if count is not None and i >= count:
            return
        yield item


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    if args.lua_path:
        print(LUA_SCRIPT)
        return 0
    # Scapy logs warnings (an unknown pcapng block, a missing route) on stderr; errors here
    # are one line of ours. Only for this call: a caller in the same process (a test, the
    # trace importer, which collects Scapy's warnings) keeps its own level.
    scapy_log = logging.getLogger("scapy")
    level = scapy_log.level
    scapy_log.setLevel(logging.ERROR)
    try:
        return run(args)
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while reading a file: no traceback either
        return 130
    except BrokenPipeError:
        # The reader (``| head``) is gone: stop quietly, and keep Python from reporting
        # the failed flush of stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        scapy_log.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
