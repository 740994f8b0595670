"""The datapath benchmark's processes inside its Mininet hosts: sender, receiver and relay.

``experiments.campaigns.bench_datapath`` starts each in its host as ``python -m
experiments.hosts.bench_roles --role ROLE ...`` and reads the JSON it writes into ``--out``:

* ``sender``: reads a pcap (``--trace``), says READY, waits for SIGUSR1 (the benchmark
  snapshots the CPU times first), then sends every frame on ``--iface`` as fast as it can
  or at ``--rate``; ``sender.json``: frames sent, send errors, offered rate, CPU seconds;
* ``receiver``: counts the frames of ``--ethertype`` on ``--iface`` with the first and last
  arrival time until stopped; ``receiver.json`` adds the socket's drop count;
* ``relay``: forwards every frame from ``--iface`` to ``--out-iface`` (the shim's loop
  minus its work); ``relay.json``: frames forwarded, send errors, drops.

Bad input (an interface or folder that does not exist, an unreadable trace, a non-finite
rate) ends a role with one line and exit status 2 before it sends or listens: the
benchmark shows the log's tail. Messages start with ``bench_datapath:``, the benchmark
these processes belong to.

Caveat: internal; the flags are the benchmark's contract with its processes, not a user
interface.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from experiments.argtypes import non_negative_float
from experiments.hosts.generator import send_trace
from experiments.workload.traffic import TraceError, read_pcap
from sequencer.dataplane import (
    ETH_P_ALL,
    DropCounter,
    StopRequested,
    announce_ready,
    check_places,
    cpu_seconds,
    open_socket,
    run_until_stopped,
    write_json,
)
from sequencer.wire.header import ETH_HEADER, ETH_P_SCR

PROG = "bench_datapath"


def role_sender(args: argparse.Namespace) -> int:
    """Wait for SIGUSR1 (the benchmark snapshots CPU times first), then send the trace."""
    frames = read_pcap(args.trace)
    sock = open_socket(args.iface, None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    announce_ready()
    signal.sigwait({signal.SIGUSR1})
    cpu_before = time.process_time()
    try:
        if args.rate > 0:
            stats = send_trace(sock, frames, args.rate)
        else:
            send, errors = sock.send, 0
            start = time.perf_counter()
            for frame in frames:
                try:
                    send(frame)
                except OSError:
                    errors += 1
            duration = time.perf_counter() - start
            sent = len(frames) - errors
            stats = {"sent": sent, "send_errors": errors, "duration_s": duration,
                     "offered_pps": sent / duration if duration > 0 else 0.0}
    finally:
        sock.close()
    stats["cpu_s"] = round(time.process_time() - cpu_before, 3)
    write_json(args.out / "sender.json", stats)
    return 0


def role_receiver(args: argparse.Namespace) -> int:
    """Count frames until stopped, with the first and last arrival time; SCR frames
    (``--ethertype`` 0x88B5) whose sequence number is below the one before are counted as
    ``out_of_order``: a sequencer's frames must leave in order."""
    result = {"received": 0, "first_ns": 0, "last_ns": 0, "rx_dropped": 0, "out_of_order": 0}
    check_order = args.ethertype == ETH_P_SCR

    def loop():
        sock = open_socket(args.iface, args.ethertype)
        recv, clock = sock.recv, time.monotonic_ns
        received = first = last = disorder = 0
        previous = -1
        announce_ready()
        try:
            frame = recv(65535)
            first = clock()
            while True:  # each frame is counted and checked as soon as it is received
                received += 1
                last = clock()
                if check_order:
                    seq = int.from_bytes(frame[_SEQ_AT:_SEQ_AT + 4], "big")
                    disorder += seq < previous
                    previous = seq
                frame = recv(65535)
        except StopRequested:
            pass
        finally:
            result.update(received=received, first_ns=first, last_ns=last,
                          rx_dropped=DropCounter(sock).read(), out_of_order=disorder)
            sock.close()

    return run_until_stopped(loop, lambda: write_json(
        args.out / "receiver.json", {**result, "cpu_s": cpu_seconds()}))


def role_relay(args: argparse.Namespace) -> int:
    """Forward every frame from ``--iface`` to ``--out-iface``: the shim's loop minus its work."""
    stats = {"forwarded": 0, "tx_errors": 0, "rx_dropped": 0}

    def loop():
        rx = open_socket(args.iface, ETH_P_ALL)
        tx = open_socket(args.out_iface, None)
        recv, send = rx.recv, tx.send
        forwarded = errors = 0
        announce_ready()
        try:
            while True:
                frame = recv(65535)
                try:
                    send(frame)
                except OSError:
                    errors += 1
                forwarded += 1
        except StopRequested:
            pass
        finally:
            stats.update(forwarded=forwarded, tx_errors=errors, rx_dropped=DropCounter(rx).read())
            rx.close()
            tx.close()

    return run_until_stopped(loop, lambda: write_json(
        args.out / "relay.json", {**stats, "cpu_s": cpu_seconds()}))


_SEQ_AT = ETH_HEADER.size + 8  # the SCR header's sequence number (sequencer.wire.header)
ROLES = {"sender": role_sender, "receiver": role_receiver, "relay": role_relay}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_roles",
                                     description="a process of the benchmark (internal)")
    parser.add_argument("--role", choices=sorted(ROLES), required=True)
    parser.add_argument("--iface", required=True)
    parser.add_argument("--out-iface", help="relay: the interface to send on")
    parser.add_argument("--ethertype", type=int, default=ETH_P_ALL, help="receiver: to bind")
    parser.add_argument("--trace", type=Path, help="sender: the pcap to send")
    parser.add_argument("--rate", type=non_negative_float, default=0.0,
                        help="sender: pps, 0 = max")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args(argv)
    if args.role == "sender" and args.trace is None:
        parser.error("the sender needs --trace")
    if args.role == "relay" and args.out_iface is None:
        parser.error("the relay needs --out-iface")
    # Bad input ends a role with one line (the benchmark shows the log's tail), not a
    # traceback from inside its loop.
    try:
        check_places(args.out, *filter(None, (args.iface, args.out_iface)))
    except ValueError as err:
        parser.exit(2, f"{PROG}: {err}\n")
    if args.trace is not None:
        try:
            read_pcap(args.trace)
        except TraceError as err:
            parser.exit(2, f"{PROG}: {err}\n")
    return ROLES[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
