"""Sink process: counts the packets the NF cores let through.

It runs in the sink host and keeps every IPv4 frame it receives (appending to a list is
the cheapest thing a Python receive loop can do), and only when stopped parses them for
their trace ids. Results: ``sink.json`` with the count, the first and last arrival times
and the sorted trace ids received, which the trial compares with the reference's passes.

Run: ``python -m experiments.sink --iface sink-eth0 --out DIR`` (stop it with SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from nfs.packet import parse
from sequencer.dataplane import (
    DropCounter,
    announce_ready,
    cpu_seconds,
    open_socket,
    run_until_stopped,
    write_json,
)
from sequencer.header import ETH_P_IP, MalformedFrame


def receive(iface: str, frames: list[bytes], times: list[int], drops: list[int]) -> None:
    """Append every frame received on ``iface`` to ``frames`` until stopped.

    ``times`` is ``[first, last]`` arrival time (ns), updated in place so that it survives
    the StopRequested that ends the loop; ``drops[0]`` gets the frames the kernel dropped
    because the socket's queue was full (a sink bottleneck: the fidelity check reads it).
    """
    sock = open_socket(iface, ETH_P_IP)
    counter = DropCounter(sock)
    recv, keep, clock = sock.recv, frames.append, time.monotonic_ns
    announce_ready()
    try:
        keep(recv(65535))
        times[0] = times[1] = clock()
        while True:
            keep(recv(65535))
            times[1] = clock()
    finally:
        drops[0] = counter.read()
        sock.close()


def summarize(frames: list[bytes], times: list[int], drops: list[int]) -> dict:
    trace_ids = []
    malformed: Counter[str] = Counter()
    for frame in frames:
        try:
            trace_ids.append(parse(frame).trace_id)
        except MalformedFrame as err:
            malformed[err.reason] += 1
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
    frames: list[bytes] = []
    times = [0, 0]
    drops = [0]
    return run_until_stopped(
        lambda: receive(args.iface, frames, times, drops),
        lambda: write_json(args.out / "sink.json", summarize(frames, times, drops)),
    )


if __name__ == "__main__":
    sys.exit(main())
