"""Plumbing shared by the data-path processes (generator, shim, workers, sink).

Each of them runs inside a Mininet host, reads or writes raw frames on one interface and
follows the same small protocol with the experiment that started it:

* it prints ``READY`` on stdout once its sockets are bound, so no packet is sent early;
* SIGTERM or SIGINT raise :class:`StopRequested` (from inside the blocking ``recv`` where
  a process idles), after which the process writes its results and exits 0;
* results go into one JSON file (``write_json``) in the trial's folder, with the CPU time
  the process used (``cpu_seconds``), which the fidelity check reads.

Raw AF_PACKET sockets are used in the hot paths: Scapy costs hundreds of microseconds per
packet. A receive socket is created with protocol 0 and then bound to its interface and
ethertype, so it never sees frames of other interfaces. ``PACKET_IGNORE_OUTGOING`` keeps a
process from reading back what it sent on the same interface. The pcaps they write (the
shim's ground truth) are :mod:`sequencer.wire.pcap`'s.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path

ETH_P_ALL = 0x0003
SOL_PACKET = 263  # linux/socket.h; the socket module does not export it
PACKET_IGNORE_OUTGOING = 23  # linux/if_packet.h, Linux >= 4.20
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # asm-generic/socket.h; not exported either
PACKET_STATISTICS = 6  # linux/if_packet.h: struct tpacket_stats {tp_packets, tp_drops}
SOCKET_BUFFER = 8 << 20
_TPACKET_STATS = struct.Struct("II")
READY = "READY"


class StopRequested(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave a blocking receive loop."""


def _raise_stop(signum, _frame):
    raise StopRequested(signal.Signals(signum).name)


def raise_on_stop_signals() -> None:
    """Turn SIGTERM and SIGINT into :class:`StopRequested`."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)


def ignore_stop_signals() -> None:
    """Make SIGTERM/SIGINT harmless (while results are being written)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_until_stopped(loop: Callable[[], None], finish: Callable[[], None]) -> int:
    """Run ``loop()`` until it returns or a stop signal arrives, then ``finish()``.

    ``finish`` (writing the results) runs with stop signals ignored, so that a second
    SIGTERM cannot cut a results file in half. Returns the exit status, 0.
    """
    raise_on_stop_signals()
    try:
        loop()
    except StopRequested:
        pass
    finally:
        ignore_stop_signals()
        finish()
    return 0


def open_socket(iface: str, ethertype: int | None,
                rcvbuf: int = SOCKET_BUFFER) -> socket.socket:
    """A raw socket on ``iface``; it receives frames of ``ethertype`` (None: send only).

    ``rcvbuf`` bounds the receive queue in bytes. The infrastructure keeps the large default
    so that a burst queues instead of being dropped; an NF core passes a small one, the
    size of a NIC's RX ring, so that an overloaded core drops (and counts) packets as a
    real one would.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        # FORCE variants pass net.core.*mem_max (we run as root).
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SOCKET_BUFFER)
        # CPython converts the protocol of an AF_PACKET address to network order itself.
        sock.bind((iface, ethertype if ethertype is not None else 0))
    except OSError:
        sock.close()
        raise
    return sock


class DropCounter:
    """Frames the kernel dropped because ``sock``'s receive queue was full.

    ``PACKET_STATISTICS`` resets the kernel's counters on every read, so this object keeps
    the running total; read it once more before closing the socket.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.received = 0
        self.dropped = 0

    def read(self) -> int:
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
        except OSError:  # already closed: keep the last totals
            return self.dropped
        packets, drops = _TPACKET_STATS.unpack(raw)
        # tp_packets counts the dropped frames too.
        self.received += packets - drops
        self.dropped += drops
        return self.dropped


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``, else a one-line ValueError naming ``what``."""
    host, sep, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be HOST:PORT with a port in 1..65535, not {text!r}")
    return host, int(port)


def check_places(out_dir: os.PathLike, *ifaces: str) -> None:
    """ValueError (one line) unless ``out_dir`` is a folder and every interface exists:
    what a data-path process checks before its loop, rather than fail at its end."""
    if not os.path.isdir(out_dir):
        raise ValueError(f"no such results folder: {out_dir}")
    for iface in ifaces:
        try:
            socket.if_nametoindex(iface)
        except OSError as err:
            raise ValueError(f"cannot use interface {iface}: {err.strerror or err}") from None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP server could listen on ``host:port`` now (bound and released again).

    ``SO_REUSEADDR``, as a listening server sets it, so that a port with connections in
    TIME_WAIT counts as free; one that another socket is bound to does not.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def announce_ready() -> None:
    print(READY, flush=True)


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used: its share of the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
