"""Sink process: counts the packets the NF cores let through.

It runs in the sink host and keeps every IPv4 frame it receives (appending to a list is
the cheapest thing a Python receive loop can do) with its arrival time, and only when
stopped parses them for their trace ids. Results: ``sink.json`` with the count, the first
and last arrival times and the sorted trace ids received, which the trial compares with the
reference's passes, and ``sink_log.csv`` (``trace_id,t_ns``: every well-formed frame in
arrival order, ``time.monotonic_ns`` of the machine, the clock the other processes use), from
which a delivered rate over time is drawn.

Run: ``python -m experiments.hosts.sink --iface sink-eth0 --out DIR`` (stop it with SIGTERM). An
interface or a results folder that does not exist ends it with one line and exit status 2
before it listens.
"""

from __future__ import annotations

import argparse
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

from sequencer.dataplane import (
    DropCounter,
    announce_ready,
    check_places,
    cpu_seconds,
    open_socket,
    run_until_stopped,
    write_json,
)
from sequencer.wire.header import ETH_P_IP, MalformedFrame
from sequencer.wire.packet import parse


def receive(iface: str, frames: list[bytes], times: list[int], drops: list[int],
            arrivals: array | None = None) -> None:
    """Append every frame received on ``iface`` to ``frames`` until stopped.

    ``times`` is ``[first, last]`` arrival time (ns), updated in place so that it survives
    the StopRequested that ends the loop; ``drops[0]`` gets the frames the kernel dropped
    because the socket's queue was full (a sink bottleneck: the fidelity check reads it);
    ``arrivals`` (an ``array('q')``), if given, each frame's arrival time.
    """
    sock = open_socket(iface, ETH_P_IP)
    counter = DropCounter(sock)
    recv, keep, clock = sock.recv, frames.append, time.monotonic_ns
    stamp = (arrivals if arrivals is not None else array("q")).append
    announce_ready()
    try:
        keep(recv(65535))
        times[0] = times[1] = clock()
        stamp(times[1])
        while True:
            keep(recv(65535))
            times[1] = clock()
            stamp(times[1])
    finally:
        drops[0] = counter.read()
        sock.close()


def summarize(frames: list[bytes], times: list[int], drops: list[int],
              arrivals: array | None = None, log_path: Path | None = None) -> dict:
    """``sink.json``'s content; with ``log_path``, also write ``trace_id,t_ns`` per frame."""
    trace_ids = []
    log = []
    malformed: Counter[str] = Counter()
    for i, frame in enumerate(frames):
        try:
            trace_ids.append(parse(frame).trace_id)
        except MalformedFrame as err:
            malformed[err.reason] += 1
            continue
        # A stop signal can land between a frame's receive and its time stamp.
        if arrivals is not None and i < len(arrivals):
            log.append((trace_ids[-1], arrivals[i]))
    if log_path is not None:
        with open(log_path, "w") as f:
            f.write("trace_id,t_ns\n")
            f.writelines(f"{tid},{t}\n" for tid, t in log)
    return {
        "received": len(frames),
        "rx_dropped": drops[0],
        "malformed": dict(malformed),
        "first_ns": times[0],
        "last_ns": times[1],
        "trace_ids": sorted(trace_ids),
        "cpu_s": cpu_seconds(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", required=True, help="interface to receive on")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args(argv)
    try:
        check_places(args.out, args.iface)
    except ValueError as err:
        parser.exit(2, f"sink: {err}\n")
    frames: list[bytes] = []
    times = [0, 0]
    drops = [0]
    arrivals = array("q")
    return run_until_stopped(
        lambda: receive(args.iface, frames, times, drops, arrivals),
        lambda: write_json(args.out / "sink.json", summarize(
            frames, times, drops, arrivals, args.out / "sink_log.csv")),
    )


if __name__ == "__main__":
    sys.exit(main())
