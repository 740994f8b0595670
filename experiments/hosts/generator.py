"""Traffic generator process: replays a pcap trace at a fixed rate, then marks the end.

It runs in the generator host and sends each frame of the trace on a raw socket, paced
against absolute due times (``start + i / rate``): a late packet is followed by a short
catch-up burst, never by a slower run. After the trace it sends the end-of-trace marker
(an SCR STOP frame) a few times, further and further apart, in case a full core queue drops
one; the shim turns each into STOP frames for the cores (a core stops at the first it gets).

Results: ``generator.json`` with the packets sent, send errors, the send duration and the
rate actually achieved (the offered rate the trial reports).

Run: ``python -m experiments.hosts.generator --iface gen-eth0 --trace trace.pcap --rate 2000
--out DIR``.
Bad input (a rate that is not a finite number > 0, a missing, unreadable or corrupt trace,
an interface or a results folder that does not exist) ends it with one line and exit
status 2 before it sends anything.
Caveat: a Python sender tops out at some tens of thousands of packets per second here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments.argtypes import positive_float
from experiments.workload.traffic import TraceError, read_pcap
from sequencer.dataplane import (
    announce_ready,
    check_places,
    cpu_seconds,
    open_socket,
    write_json,
)
from sequencer.wire import header as h

END_MARKERS = 5
END_MARKER_GAP_S = 0.02  # before the first marker; each later gap doubles (20 ... 320 ms)


def end_marker() -> bytes:
    return h.encode(h.ScrHeader(h.FLAG_STOP, 0, 0, 0, 1, 1, 0, 0), [])


def send_trace(sock, frames: list[bytes], rate_pps: float) -> dict:
    """Send ``frames`` at ``rate_pps``; return what was sent and how fast."""
    send, clock, sleep = sock.send, time.perf_counter, time.sleep
    interval = 1.0 / rate_pps
    errors = 0
    cpu_before = time.process_time()
    start = clock()
    for i, frame in enumerate(frames):
        delay = start + i * interval - clock()
        if delay > 0:
            sleep(delay)
        try:
            send(frame)
        except OSError:
            errors += 1
    duration = clock() - start
    send_cpu = time.process_time() - cpu_before
    sent = len(frames) - errors
    return {
        "sent": sent,
        "send_errors": errors,
        "duration_s": duration,
        "target_pps": rate_pps,
        "offered_pps": sent / duration if duration > 0 else 0.0,
        "busy": send_cpu / duration if duration > 0 else 0.0,  # of one CPU, while sending
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", required=True, help="interface to send on")
    parser.add_argument("--trace", type=Path, required=True, help="pcap file to replay")
    parser.add_argument("--rate", type=positive_float, required=True, help="packets per second")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--count", type=int, default=0,
                        help="send only the first COUNT frames (0: the whole trace)")
    parser.add_argument("--no-end-marker", action="store_true",
                        help="do not send the end-of-trace marker")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    try:
        frames = read_pcap(args.trace)
    except TraceError as err:
        parser.exit(2, f"generator: {err}\n")
    try:
        check_places(args.out)
    except ValueError as err:
        parser.exit(2, f"generator: {err}\n")
    if args.count:
        frames = frames[: args.count]
    try:
        sock = open_socket(args.iface, None)
    except OSError as err:
        parser.exit(2, f"generator: cannot send on {args.iface}: {err.strerror or err}\n")
    announce_ready()
    try:
        stats = send_trace(sock, frames, args.rate)
        if not args.no_end_marker:
            # Spread out: a core whose queue is full when the first STOP frame comes (a
            # core at capacity holds ~90 frames, 100-200 ms of work) gets a later one.
            for i in range(END_MARKERS):
                time.sleep(END_MARKER_GAP_S * 2**i)
                sock.send(end_marker())
    finally:
        sock.close()
    write_json(args.out / "generator.json", {**stats, "cpu_s": cpu_seconds()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
