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
* ``ovs-shim-N``: the same with the real shim (``sequencer.shim``, N cores, NF ``ddos``)
  instead of the relay; its SCR frames (ethertype 0x88B5) go to the sink.

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

    sudo .venv/bin/python -m experiments.bench_datapath
    sudo .venv/bin/python -m experiments.bench_datapath --quick --paths ovs-system ovs-relay

Started with any Python, it re-executes itself in the project's ``.venv``. The same module
is also the sender, receiver and relay processes (``--role``, internal).

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
import contextlib
import re
import signal
import subprocess
import time
from dataclasses import dataclass

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch
from mininet.topo import Topo
from tabulate import tabulate

from experiments.hosts.generator import send_trace
from experiments.runtime.argtypes import non_negative_float, positive_int
from experiments.runtime.fidelity import CLOCK_TICKS, pid_cpu_seconds
from experiments.runtime.preflight import EnvironmentProblem
from experiments.runtime.results import CsvLog, new_run_dir, write_config
from experiments.runtime.trial import (
    HOST_IP_BASE,
    HostProcess,
    TrialError,
    deferred_interrupts,
    ovs_ofctl,
    ovs_pid,
    quiet_switch_ports,
    read_result,
    start_experiment,
)
from experiments.workload.traffic import (
    TraceError,
    TraceSpec,
    make_trace,
    read_pcap,
    write_pcap,
)
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
from sequencer.wire.header import ETH_P_IP, ETH_P_SCR
from topologies.scr_topo import QuietHost

BRIDGE = "b1"
GEN, MID, SINK = "bgen", "bmid", "bsink"
GEN_PORT, MID_IN_PORT, MID_OUT_PORT, SINK_PORT = 1, 2, 3, 4
GEN_IFACE, MID_IN_IFACE, MID_OUT_IFACE, SINK_IFACE = (
    f"{GEN}-eth0", f"{MID}-eth0", f"{MID}-eth1", f"{SINK}-eth0")

DEFAULT_PATHS = ["ovs-system", "ovs-afxdp", "ovs-afxdp-pmd", "relay-direct", "ovs-relay",
                 "ovs-shim-1", "ovs-shim-4", "ovs-shim-8"]
DEFAULT_COUNT = 50_000
QUICK_COUNT = 10_000
SHIM_NF = "ddos"
READY_TIMEOUT_S = 30.0
SETTLE_S = 0.5  # the receiver and relay this long without CPU time: the path has drained
POLL_S = 0.05
AFXDP_TIMEOUT_S = 10.0
NOISE = 0.2  # CPUs' worth of other work during a path's traffic that makes its row suspect

COLUMNS = [
    "path", "port_type", "middle", "count", "rate_pps", "sent", "send_errors", "offered_pps",
    "middle_in", "middle_rx_dropped", "middle_tx_errors", "received", "receiver_rx_dropped",
    "delivered_pps", "loss", "ratio_to_ovs_system", "span_s", "window_s", "cpu_s",
    "us_per_packet", "unavailable", "error", "seconds",
]


class PathUnavailable(RuntimeError):
    """This machine cannot run the path (e.g. AF_XDP refused); the message says why."""


# --- paths -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PathSpec:
    """One benchmarked path: whether it crosses OVS, its port type, what sits in the middle."""

    name: str
    ovs: bool
    port_type: str  # "system", "afxdp-nonpmd", "afxdp" or "" (no OVS)
    middle: str  # "", "relay" or "shim"
    shim_cores: int = 0

    @property
    def sink_ethertype(self) -> int:
        return ETH_P_SCR if self.middle == "shim" else ETH_P_IP


def path_spec(name: str) -> PathSpec:
    """The path called ``name``; ValueError with the known names otherwise."""
    fixed = {
        "ovs-system": PathSpec(name, True, "system", ""),
        "ovs-afxdp": PathSpec(name, True, "afxdp-nonpmd", ""),
        "ovs-afxdp-pmd": PathSpec(name, True, "afxdp", ""),
        "relay-direct": PathSpec(name, False, "", "relay"),
        "ovs-relay": PathSpec(name, True, "system", "relay"),
    }
    if name in fixed:
        return fixed[name]
    match = re.fullmatch(r"ovs-shim-(\d+)", name)
    if match and 1 <= int(match[1]) <= 64:
        return PathSpec(name, True, "system", "shim", int(match[1]))
    raise ValueError(f"unknown path {name!r}: choose from {', '.join(fixed)}, ovs-shim-N "
                     f"(N = 1..64)")


class BenchTopo(Topo):
    """gen, an optional middle host (two interfaces: in, out), sink; b1 between them or not."""

    def build(self, spec: PathSpec):  # noqa: D401 - Mininet's hook name
        gen, sink = self.addHost(GEN, cls=QuietHost), self.addHost(SINK, cls=QuietHost)
        mid = self.addHost(MID, cls=QuietHost) if spec.middle else None
        if not spec.ovs:  # gen -- mid -- sink over direct veth links
            self.addLink(gen, mid, port1=0, port2=0)
            self.addLink(mid, sink, port1=1, port2=0)
            return
        switch = self.addSwitch(BRIDGE, cls=OVSSwitch, datapath="user",
                                protocols="OpenFlow13", failMode="secure")
        self.addLink(gen, switch, port1=0, port2=GEN_PORT)
        self.addLink(sink, switch, port1=0, port2=SINK_PORT)
        if mid:
            self.addLink(mid, switch, port1=0, port2=MID_IN_PORT)
            self.addLink(mid, switch, port1=1, port2=MID_OUT_PORT)


def flows(spec: PathSpec) -> list[str]:
    """The bridge's rules: the path and nothing else (secure fail mode drops the rest)."""
    if not spec.middle:
        return [f"in_port={GEN_PORT},actions=output:{SINK_PORT}"]
    match_out = f"in_port={MID_OUT_PORT}"
    if spec.middle == "shim":
        match_out += f",dl_type={ETH_P_SCR:#06x}"
    return [f"in_port={GEN_PORT},actions=output:{MID_IN_PORT}",
            f"{match_out},actions=output:{SINK_PORT}"]


def _vsctl(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", "--timeout=10", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def bridge_exists() -> bool:
    return BRIDGE in _vsctl("list-br").split()


def switch_ports_to(port_type: str, ports: list[str]) -> None:
    """Make ``ports`` of the bridge AF_XDP ports; PathUnavailable with OVS's reason if not."""
    try:
        _vsctl(*[arg for port in ports for arg in ("--", "set", "Interface", port,
                                                   f"type={port_type}")])
    except subprocess.CalledProcessError as err:
        raise PathUnavailable(f"ovs-vsctl refused type={port_type}: "
                              f"{err.stderr.strip()}") from None
    deadline = time.monotonic() + AFXDP_TIMEOUT_S
    while True:
        errors = {port: _vsctl("get", "Interface", port, "error") for port in ports}
        ofports = {port: _vsctl("get", "Interface", port, "ofport") for port in ports}
        bad = {port: e for port, e in errors.items() if e not in ("", "[]")}
        if bad:
            raise PathUnavailable("; ".join(f"{p}: {e.strip(chr(34))}" for p, e in bad.items()))
        if all(o.lstrip("-").isdigit() and int(o) > 0 for o in ofports.values()):
            return
        if time.monotonic() > deadline:
            raise PathUnavailable(f"ports did not come up as {port_type}: ofport {ofports}")
        time.sleep(0.1)


# --- CPU accounting ----------------------------------------------------------------------


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, softirq) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    # steal (time the hypervisor gave to others) is not ours; guest is inside user.
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, softirq / CLOCK_TICKS


def cpu_snapshot(pids: dict[str, int | None]) -> dict[str, float]:
    snap = {name: pid_cpu_seconds(pid) for name, pid in pids.items() if pid}
    snap["machine"], snap["softirq"] = machine_cpu_seconds()
    snap["wall"] = time.monotonic()
    return snap


def wait_drained(pids: dict[str, int | None], watched: list[str], timeout: float
                 ) -> dict[str, float]:
    """Poll until the ``watched`` processes used no CPU for ``SETTLE_S``; the snapshot taken
    at the start of that quiet streak (so the idle wait itself is not counted)."""
    deadline = time.monotonic() + timeout
    previous = cpu_snapshot(pids)
    quiet_since, quiet_snap = time.monotonic(), previous
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
        snap = cpu_snapshot(pids)
        if any(snap.get(name) != previous.get(name) for name in watched):
            quiet_since, quiet_snap = time.monotonic(), snap
        elif time.monotonic() - quiet_since >= SETTLE_S:
            return quiet_snap
        previous = snap
    raise TrialError(f"the path did not drain within {timeout:.0f} s")


# --- one path ----------------------------------------------------------------------------


def _python(*args) -> list[str]:
    return [sys.executable, "-m", "experiments.bench_datapath", *map(str, args)]


def run_path(spec: PathSpec, trace_path: Path, count: int, out_dir: Path,
             rate_pps: float = 0.0) -> dict:
    """Build ``spec``'s network, send the trace through it, tear everything down; the row.

    PathUnavailable if the path cannot run here, TrialError if a process fails.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    setLogLevel("warning")
    stack = contextlib.ExitStack()
    processes: list[HostProcess] = []
    net = None

    def stop_network():
        try:
            if net is not None:
                net.stop()
        finally:
            if spec.ovs:  # belt and braces: a half-built network may not know its bridge
                subprocess.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", BRIDGE],
                               capture_output=True, check=False)

    def stop_processes():
        for proc in processes:  # by handle, in the order they were started
            proc.stop()

    def start(name: str, host: str, argv: list[str]) -> HostProcess:
        proc = HostProcess(name, net[host], argv, out_dir)
        processes.append(proc)
        return proc

    try:
        stack.callback(stop_network)
        net = Mininet(topo=BenchTopo(spec), controller=None, build=False, ipBase=HOST_IP_BASE)
        net.build()
        quiet_switch_ports(net.switches)
        net.start()
        stack.callback(stop_processes)  # LIFO: before the network goes
        if spec.ovs:
            for rule in flows(spec):
                ovs_ofctl("add-flow", BRIDGE, rule)
            if spec.port_type != "system":
                switch_ports_to(spec.port_type, [f"{BRIDGE}-eth{GEN_PORT}",
                                                 f"{BRIDGE}-eth{SINK_PORT}"])
        deadline = time.monotonic() + READY_TIMEOUT_S
        receiver = start("receiver", SINK, _python(
            "--role", "receiver", "--iface", SINK_IFACE, "--ethertype", spec.sink_ethertype,
            "--out", out_dir))
        middle = None
        if spec.middle == "relay":
            middle = start("relay", MID, _python(
                "--role", "relay", "--iface", MID_IN_IFACE, "--out-iface", MID_OUT_IFACE,
                "--out", out_dir))
        elif spec.middle == "shim":
            middle = start("shim", MID, [
                sys.executable, "-m", "experiments.hosts.shim", "--in-iface", MID_IN_IFACE,
                "--out-iface", MID_OUT_IFACE, "--cores", str(spec.shim_cores),
                "--nf", SHIM_NF, "--out", str(out_dir)])
        sender = start("sender", GEN, _python(
            "--role", "sender", "--iface", GEN_IFACE, "--trace", trace_path,
            "--rate", rate_pps, "--out", out_dir))
        for proc in processes:
            proc.wait_ready(deadline)

        pids = {"ovs": ovs_pid() if spec.ovs else None, "receiver": receiver.pid,
                "middle": middle.pid if middle else None}
        before = cpu_snapshot(pids)
        sender.popen.send_signal(signal.SIGUSR1)  # go: everything is listening
        budget = count / (rate_pps or 5000) * 3 + 30
        try:
            sender.popen.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            raise TrialError(f"the sender did not finish in {budget:.0f} s") from None
        if sender.popen.returncode:
            raise TrialError(f"the sender failed: {sender.tail()}")
        watched = ["receiver", "middle"] if middle else ["receiver"]
        after = wait_drained(pids, watched, timeout=60)
    finally:
        with deferred_interrupts():
            stack.close()
    return summarize(spec, count, rate_pps, out_dir,
                     {k: round(after[k] - before[k], 3) for k in after})


def summarize(spec: PathSpec, count: int, rate_pps: float, out_dir: Path,
              cpu: dict[str, float]) -> dict:
    sender = read_result(out_dir / "sender.json")
    receiver = read_result(out_dir / "receiver.json")
    middle = {}
    if spec.middle == "relay":
        middle = read_result(out_dir / "relay.json")
    elif spec.middle == "shim":
        middle = read_result(out_dir / "shim.json")
    received, sent = receiver["received"], sender["sent"]
    span_s = (receiver["last_ns"] - receiver["first_ns"]) / 1e9
    window_s = cpu.pop("wall")
    cpu_s = {"sender": sender["cpu_s"], **cpu}
    # What else kept the machine busy meanwhile (other work on the machine: a noisy row).
    cpu_s["others"] = round(cpu_s["machine"] - sum(
        v for k, v in cpu_s.items() if k not in ("machine", "softirq")), 3)
    per_packet = {}
    for name, seconds in cpu_s.items():
        if name == "others":
            continue
        packets = sent if name == "sender" else received
        per_packet[name] = round(seconds / packets * 1e6, 2) if packets else None
    return {
        "path": spec.name,
        "port_type": spec.port_type or "veth",
        "middle": spec.middle + (f"-{spec.shim_cores}" if spec.shim_cores else ""),
        "count": count,
        "rate_pps": rate_pps,  # 0: as fast as the sender can
        "sent": sent,
        "send_errors": sender["send_errors"],
        "offered_pps": round(sender["offered_pps"], 1),
        "middle_in": middle.get("forwarded", middle.get("sequenced", "")),
        "middle_rx_dropped": middle.get("rx_dropped", ""),
        "middle_tx_errors": middle.get("tx_errors", ""),
        "received": received,
        "receiver_rx_dropped": receiver["rx_dropped"],
        "delivered_pps": round(received / span_s, 1) if span_s > 0 else 0.0,
        "loss": round(1 - received / sent, 5) if sent else 0.0,
        "span_s": round(span_s, 4),
        "window_s": round(window_s, 3),
        "cpu_s": cpu_s,
        "us_per_packet": per_packet,
    }


# --- the benchmark ---------------------------------------------------------------------


def benchmark(paths: list[str], count: int, results_dir: Path | None = None,
              rate_pps: float = 0.0, arguments: dict | None = None) -> tuple[Path, list[dict]]:
    """Run ``paths`` (names, see ``path_spec``) with ``count`` frames each; (run dir, rows).

    A path that cannot run here gets ``unavailable``, one that fails ``error``; the others
    go on. KeyboardInterrupt passes through, after the current path is torn down.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if rate_pps < 0:
        raise ValueError(f"rate must be >= 0 (0: as fast as possible), got {rate_pps}")
    specs = [path_spec(name) for name in paths]
    if bridge_exists():
        raise EnvironmentProblem(
            f"an OVS bridge {BRIDGE!r} exists already: another benchmark is running, or a "
            f"killed one left it (remove it with `sudo ovs-vsctl del-br {BRIDGE}`)")
    run_dir = new_run_dir("bench_datapath", results_dir)
    write_config(run_dir, arguments or {"paths": paths, "count": count, "rate_pps": rate_pps})
    log = CsvLog(run_dir / "results.csv", COLUMNS)
    trace_path = run_dir / "trace.pcap"
    write_pcap(trace_path, make_trace(TraceSpec(packets=count, frame_size=64)))
    print(f"bench_datapath: {len(specs)} paths, {count} frames each at "
          f"{f'{rate_pps:g} pps' if rate_pps else 'full speed'} -> {run_dir}", flush=True)
    rows = []
    for number, spec in enumerate(specs, 1):
        started = time.monotonic()
        print(f"[{number}/{len(specs)}] {spec.name} ...", end=" ", flush=True)
        row = {"path": spec.name, "count": count}
        try:
            row = run_path(spec, trace_path, count, run_dir / "paths" / spec.name, rate_pps)
            if spec.port_type.startswith("afxdp") and row["received"] == 0:
                row["unavailable"] = "AF_XDP ports came up but delivered no frame"
        except PathUnavailable as err:
            row["unavailable"] = str(err)
        except TrialError as err:
            row["error"] = str(err)
        row["seconds"] = round(time.monotonic() - started, 1)
        rows.append(row)
        log.append(row)  # as it finishes: an interrupted run keeps the finished paths
        if "unavailable" in row:
            print(f"unavailable: {row['unavailable']}", flush=True)
        elif "error" in row:
            print(f"error: {row['error']}", flush=True)
        else:
            busy = other_load(row)
            noisy = f", NOISY: other work used {busy:.1f} CPU meanwhile" if busy > NOISE else ""
            print(f"delivered {row['delivered_pps']:.0f} pps, loss {100 * row['loss']:.1f} % "
                  f"({row['seconds']} s{noisy})", flush=True)
    reference = next((r for r in rows if r["path"] == "ovs-system" and r.get("received")), None)
    if reference:
        for row in rows:
            if row.get("received"):
                row["ratio_to_ovs_system"] = round(
                    row["delivered_pps"] / reference["delivered_pps"], 3)
        log = CsvLog(run_dir / "results.csv", COLUMNS)  # rewritten whole, with the ratios
        for row in rows:
            log.append(row)
    return run_dir, rows


def other_load(row: dict) -> float:
    """CPUs' worth of work that was not the path's own while its traffic ran."""
    return max(row["cpu_s"]["others"], 0.0) / row["window_s"] if row["window_s"] else 0.0


def _us(row: dict, name: str) -> str:
    value = row.get("us_per_packet", {}).get(name)
    return "-" if value is None else f"{value:.2f}"


def table(rows: list[dict]) -> str:
    headers = ["path", "offered pps", "delivered pps", "loss %", "x ovs-system",
               "ovs µs/pkt", "relay/shim µs/pkt", "sender µs/pkt", "receiver µs/pkt",
               "other load (CPUs)"]
    body = []
    for r in rows:
        if "unavailable" in r or "error" in r:
            why = f"unavailable: {r['unavailable']}" if "unavailable" in r else r["error"]
            body.append([r["path"], "-", why[:70], *["-"] * 7])
            continue
        body.append([r["path"], f"{r['offered_pps']:.0f}", f"{r['delivered_pps']:.0f}",
                     f"{100 * r['loss']:.1f}", r.get("ratio_to_ovs_system", "-"),
                     _us(r, "ovs"), _us(r, "middle"), _us(r, "sender"), _us(r, "receiver"),
                     f"{other_load(r):.1f}"])
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


# --- the processes in the hosts (--role) -------------------------------------------------


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
    """Count frames until stopped, with the first and last arrival time."""
    result = {"received": 0, "first_ns": 0, "last_ns": 0, "rx_dropped": 0}

    def loop():
        sock = open_socket(args.iface, args.ethertype)
        recv, clock = sock.recv, time.monotonic_ns
        received = first = last = 0
        announce_ready()
        try:
            recv(65535)
            first = last = clock()
            received = 1
            while True:
                recv(65535)
                received += 1
                last = clock()
        except StopRequested:
            pass
        finally:
            result.update(received=received, first_ns=first, last_ns=last,
                          rx_dropped=DropCounter(sock).read())
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


ROLES = {"sender": role_sender, "receiver": role_receiver, "relay": role_relay}


def role_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_datapath --role",
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
        parser.exit(2, f"bench_datapath: {err}\n")
    if args.trace is not None:
        try:
            read_pcap(args.trace)
        except TraceError as err:
            parser.exit(2, f"bench_datapath: {err}\n")
    return ROLES[args.role](args)


# --- command line ----------------------------------------------------------------------


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
                        help="paths to run (ovs-shim-N for any N in 1..64)")
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--role"]:
        return role_main(argv)
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
