"""Datapath benchmark: how many packets/s the testbed's infrastructure sustains, and at what CPU.

On this 2-CPU machine the generator, Open vSwitch (userspace datapath: every hop is served by
the same ovs-vswitchd thread), the shim and the sink share the CPUs with the emulated NF
cores. A trial is only faithful while the NF cores are the bottleneck, so this measures each
piece of infrastructure alone, on its own small Mininet network (bridge ``b1``, no
controller: the benchmark installs its few flows with ``ovs-ofctl``; fail mode secure, so
nothing else is forwarded and nothing floods). Paths:

* ``ovs-system``: gen -> b1 -> sink, one OVS hop on system (veth) ports;
* ``ovs-afxdp``: the same with both ports switched to ``afxdp-nonpmd``; ``ovs-afxdp-pmd``
  uses ``afxdp`` (a PMD thread busy-polls a whole CPU, so its OVS CPU time is ~1 s per
  second whatever the load); a row says ``unavailable: <reason>`` if AF_XDP does not work;
* ``relay-direct``: gen -- relay -- sink over direct veth links, no OVS: a plain Python
  AF_PACKET relay (recv, send), the ceiling of any Python per-packet process;
* ``ovs-relay``: gen -> b1 -> relay -> b1 -> sink, two passes through OVS (a trial makes
  three: gen -> shim, shim -> core, core -> sink);
* ``ovs-shim-N``: the same with the real shim (``experiments.hosts.shim``, N cores, NF ``ddos``)
  instead of the relay; its SCR frames (ethertype 0x88B5) go to the sink;
* ``ovs-relay-afxdp``, ``ovs-shim-N-afxdp``: the same on ``afxdp-nonpmd`` ports, as the
  testbed's trials use them where the kernel allows (``experiments.runtime.ovs``);
* ``shim-direct-N``: gen -- shim -- sink over direct veth links, no OVS: the sequencer alone;
* ``pipeline-N-K``: the same with the parallel sequencer (``sequencer.pipeline``, K builder
  processes; their CPU is its own column). The receiver counts SCR frames that arrive out
  of sequence order (``out_of_order``: must be 0).

The sender (raw AF_PACKET socket, a pre-built trace of 64-byte IPv4 frames from
``experiments.workload.traffic.make_trace``) blasts the trace as fast as it can (or paced with
``--rate``); the receiver counts frames and their first and last arrival. Each path reports
the delivered rate (received / receive span), the loss (1 - received / sent) and the CPU
seconds of ovs-vswitchd, the sender, the relay or shim, the receiver and the whole machine
while the traffic ran, and from them CPU microseconds per packet (per frame sent for the
sender, per frame delivered for the others: what the fidelity budget needs).

Results: ``results/bench_datapath/<timestamp>/`` with ``config.json``, ``results.csv`` (one
row per path) and ``paths/<path>/`` (each process's JSON and log); a table at the end.

Usage (as root)::

    .venv/bin/python -m experiments.bench_datapath
    .venv/bin/python -m experiments.bench_datapath --quick --paths ovs-system ovs-relay

Started with any Python, it re-executes itself in the project's ``.venv``. The benchmark
itself is ``experiments.campaigns.bench_datapath``; the sender, receiver and relay
processes are ``experiments.hosts.bench_roles``.

Caveats: there is no IRQ time accounting on this kernel, so the kernel's softirq work (veth
delivery, OVS's packet sockets, the root namespace dropping the frames it also sees) is
charged to whichever process was running, mostly the sender. At saturation the
per-delivered-packet cost includes work on frames dropped later in the path. Process CPU
times come from ``/proc/<pid>/stat`` at 10 ms granularity: use counts of 10 k frames or
more. Nothing keeps other work off the CPUs (the emulation lock only serializes networks):
``other load`` is the CPU used by anything but the path's processes while its traffic ran
(whole machine from ``/proc/stat`` minus ours); a row where it is high is disturbed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse
import time

from tabulate import tabulate

from experiments.argtypes import non_negative_float, positive_int
from experiments.campaigns.bench_datapath import (
    DEFAULT_COUNT,
    DEFAULT_PATHS,
    NOISE,
    QUICK_COUNT,
    benchmark,
    other_load,
    path_spec,
)
from experiments.runtime.preflight import EnvironmentProblem
from experiments.runtime.processes import start_experiment


def _us(row: dict, name: str) -> str:
    value = row.get("us_per_packet", {}).get(name)
    return "-" if value is None else f"{value:.2f}"


def table(rows: list[dict]) -> str:
    headers = ["path", "offered pps", "delivered pps", "loss %", "x ovs-system",
               "ovs µs/pkt", "relay/shim µs/pkt", "builders µs/pkt", "sender µs/pkt",
               "receiver µs/pkt", "other load (CPUs)"]
    body = []
    for r in rows:
        if "unavailable" in r or "error" in r:
            why = f"unavailable: {r['unavailable']}" if "unavailable" in r else r["error"]
            body.append([r["path"], "-", why[:70], *["-"] * 8])
            continue
        body.append([r["path"], f"{r['offered_pps']:.0f}", f"{r['delivered_pps']:.0f}",
                     f"{100 * r['loss']:.1f}", r.get("ratio_to_ovs_system", "-"),
                     _us(r, "ovs"), _us(r, "middle"), _us(r, "builders"), _us(r, "sender"),
                     _us(r, "receiver"),
                     f"{other_load(r):.1f}"])
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _path_name(text: str) -> str:
    try:
        return path_spec(text).name
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Packets/s and CPU per packet of the testbed's infrastructure, per path.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--paths", type=_path_name, nargs="+", default=DEFAULT_PATHS,
                        help="paths to run (ovs-shim-N[-afxdp], shim-direct-N for any N in "
                             "1..64, pipeline-N-K for K builders)")
    parser.add_argument("--count", type=positive_int, default=DEFAULT_COUNT,
                        help="frames sent per path")
    parser.add_argument("--rate", type=non_negative_float, default=0.0,
                        help="sender's rate in packets/s; 0 = as fast as it can")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_COUNT} frames per path (overrides --count)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where bench_datapath/<timestamp> folders go (default: results/ "
                             "in the repository)")
    args = parser.parse_args(argv)
    if args.quick:
        args.count = QUICK_COUNT
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (status := start_experiment("bench_datapath")) is not None:
        return status
    started = time.monotonic()
    try:
        run_dir, rows = benchmark(
            args.paths, args.count, args.results_dir, args.rate, vars(args))
    except EnvironmentProblem as err:
        print(f"bench_datapath: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench_datapath: interrupted; finished paths are in results.csv",
              file=sys.stderr)
        return 130
    print()
    print(table(rows))
    print(f"\nµs/pkt: CPU time per frame sent (sender) or delivered (the others). Other load: "
          f"CPU used by anything else meanwhile;\nabove {NOISE} the row is disturbed. "
          f"results: {run_dir}  ({time.monotonic() - started:.0f} s)")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
