"""The datapath benchmark's engine: each infrastructure path on its own small network,
a trace blasted through it, its delivered rate and CPU cost per packet.

:func:`benchmark` runs the named paths (:func:`path_spec`: ``ovs-system``, ``ovs-afxdp``,
``ovs-afxdp-pmd``, ``relay-direct``, ``ovs-relay``, ``ovs-shim-N``) one after the other.
For each, :func:`run_path` builds a Mininet network (:class:`BenchTopo`: gen, an optional
middle host, sink; OVS bridge ``b1`` in fail mode secure with the path's few flows, or
direct veth links), starts the receiver, the relay or the real shim, and the sender in
their hosts (``experiments.hosts.bench_roles``, ``experiments.hosts.shim``), snapshots the
CPU times, lets the sender go, waits until the path has drained, tears everything down and
:func:`summarize` s the path's row from the processes' JSON and the CPU times. Rows go to
``results.csv`` as they finish (an interrupted run keeps them), then again with each
path's ratio to ``ovs-system``.

Caveats: see ``experiments/bench_datapath.py``: no IRQ time accounting (softirq work is
charged to whoever ran), CPU times at 10 ms granularity, and other work on the machine
is measured (``other_load``), not kept off.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch
from mininet.topo import Topo

from experiments.analysis.collect import read_result
from experiments.analysis.errors import TrialError
from experiments.runtime.config import HOST_IP_BASE
from experiments.runtime.fidelity import CLOCK_TICKS, pid_cpu_seconds
from experiments.runtime.ovs import (
    AFXDP,
    PortTypeError,
    ovs_ofctl,
    ovs_pid,
    quiet_switch_ports,
    set_port_type,
    vsctl,
)
from experiments.runtime.preflight import EnvironmentProblem
from experiments.runtime.processes import HostProcess, deferred_interrupts
from experiments.runtime.results import CsvLog, new_run_dir, write_config
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from sequencer.wire.header import ETH_P_IP, ETH_P_SCR
from topologies.scr_topo import QuietHost

BRIDGE = "b1"
GEN, MID, SINK = "bgen", "bmid", "bsink"
GEN_PORT, MID_IN_PORT, MID_OUT_PORT, SINK_PORT = 1, 2, 3, 4
GEN_IFACE, MID_IN_IFACE, MID_OUT_IFACE, SINK_IFACE = (
    f"{GEN}-eth0", f"{MID}-eth0", f"{MID}-eth1", f"{SINK}-eth0")

DEFAULT_PATHS = ["ovs-system", "ovs-afxdp", "ovs-afxdp-pmd", "relay-direct", "ovs-relay",
                 "ovs-relay-afxdp", "ovs-shim-1", "ovs-shim-8", "ovs-shim-16",
                 "ovs-shim-16-afxdp", "shim-direct-16", "pipeline-16-2"]
DEFAULT_COUNT = 50_000
QUICK_COUNT = 10_000
SHIM_NF = "ddos"
ROLES_MODULE = "experiments.hosts.bench_roles"  # the sender, receiver and relay
READY_TIMEOUT_S = 30.0
SETTLE_S = 0.5  # the receiver and relay this long without CPU time: the path has drained
POLL_S = 0.05
AFXDP_TIMEOUT_S = 10.0
NOISE = 0.2  # CPUs' worth of other work during a path's traffic that makes its row suspect

COLUMNS = [
    "path", "port_type", "middle", "count", "rate_pps", "sent", "send_errors", "offered_pps",
    "middle_in", "middle_rx_dropped", "middle_tx_errors", "received", "receiver_rx_dropped",
    "out_of_order",
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
    middle: str  # "", "relay", "shim" or "pipeline"
    shim_cores: int = 0
    builders: int = 0  # pipeline: its builder processes
    sink_type: int = 0  # what the receiver binds to, if not the path's own (tests)

    @property
    def sink_ethertype(self) -> int:
        if self.sink_type:
            return self.sink_type
        return ETH_P_SCR if self.middle in ("shim", "pipeline") else ETH_P_IP


def path_spec(name: str) -> PathSpec:
    """The path called ``name``; ValueError with the known names otherwise."""
    fixed = {
        "ovs-system": PathSpec(name, True, "system", ""),
        "ovs-afxdp": PathSpec(name, True, AFXDP, ""),
        "ovs-afxdp-pmd": PathSpec(name, True, "afxdp", ""),
        "relay-direct": PathSpec(name, False, "", "relay"),
        "ovs-relay": PathSpec(name, True, "system", "relay"),
        "ovs-relay-afxdp": PathSpec(name, True, AFXDP, "relay"),
    }
    if name in fixed:
        return fixed[name]
    match = re.fullmatch(r"ovs-shim-(\d+)(-afxdp)?", name)
    if match and 1 <= int(match[1]) <= 64:
        return PathSpec(name, True, AFXDP if match[2] else "system", "shim", int(match[1]))
    match = re.fullmatch(r"shim-direct-(\d+)", name)
    if match and 1 <= int(match[1]) <= 64:
        return PathSpec(name, False, "", "shim", int(match[1]))
    match = re.fullmatch(r"pipeline-(\d+)-(\d+)", name)
    if match and 1 <= int(match[1]) <= 64 and 1 <= int(match[2]) <= 16:
        return PathSpec(name, False, "", "pipeline", int(match[1]), int(match[2]))
    raise ValueError(f"unknown path {name!r}: choose from {', '.join(fixed)}, ovs-shim-N, "
                     f"ovs-shim-N-afxdp, shim-direct-N (N = 1..64 cores), pipeline-N-K "
                     f"(K = 1..16 builders)")


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


def bridge_exists() -> bool:
    return BRIDGE in vsctl("list-br").split()


def switch_ports_to(port_type: str, ports: list[str]) -> None:
    """Make ``ports`` of the bridge ``port_type`` ports; PathUnavailable with OVS's reason
    if not (``experiments.runtime.ovs.set_port_type``, as the testbed does)."""
    try:
        set_port_type(ports, port_type, timeout=AFXDP_TIMEOUT_S)
    except PortTypeError as err:
        raise PathUnavailable(str(err)) from None


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
    return [sys.executable, "-m", ROLES_MODULE, *map(str, args)]


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
                ports = [GEN_PORT, SINK_PORT, *((MID_IN_PORT, MID_OUT_PORT)
                                                 if spec.middle else ())]
                switch_ports_to(spec.port_type, [f"{BRIDGE}-eth{p}" for p in ports])
        deadline = time.monotonic() + READY_TIMEOUT_S
        receiver = start("receiver", SINK, _python(
            "--role", "receiver", "--iface", SINK_IFACE, "--ethertype", spec.sink_ethertype,
            "--out", out_dir))  # SCR frames: it also counts any that came out of order
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
        elif spec.middle == "pipeline":
            middle = start("pipeline", MID, [
                sys.executable, "-m", "experiments.hosts.pipeline_shim", "--in-iface",
                MID_IN_IFACE, "--out-iface", MID_OUT_IFACE, "--cores", str(spec.shim_cores),
                "--builders", str(spec.builders), "--nf", SHIM_NF, "--out", str(out_dir)])
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
    elif spec.middle == "pipeline":
        middle = read_result(out_dir / "pipeline.json")
        # Its builders are child processes: /proc counted the stamper ("middle") alone.
        # They started before the traffic and idled until it came, so their own CPU
        # times are their work.
        cpu["builders"] = round(sum(b.get("cpu_s", 0.0) for b in middle.get("builders", [])),
                                3)
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
        "middle": spec.middle + (f"-{spec.shim_cores}" if spec.shim_cores else "")
        + (f"x{spec.builders}" if spec.builders else ""),
        "count": count,
        "rate_pps": rate_pps,  # 0: as fast as the sender can
        "sent": sent,
        "send_errors": sender["send_errors"],
        "offered_pps": round(sender["offered_pps"], 1),
        # What reached the middle: the relay's frames, the shim's or stamper's sequenced.
        "middle_in": middle.get("sequenced", middle.get("forwarded", "")),
        "middle_rx_dropped": middle.get("rx_dropped", ""),
        "middle_tx_errors": middle.get("tx_errors", ""),
        "received": received,
        "receiver_rx_dropped": receiver["rx_dropped"],
        "out_of_order": receiver.get("out_of_order", ""),
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
            f"killed one left it (remove it as root with `ovs-vsctl del-br {BRIDGE}`)")
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
