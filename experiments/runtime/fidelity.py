"""Fidelity monitor: was a data point limited by the NF cores, or by the testbed itself?

A trial measures the emulated NF cores only while the generator, the shim, Open vSwitch
and the sink keep up. :func:`take` samples, at the start and end of a trial's traffic, the
CPU time of each of those processes, the machine's idle time and OVS's per-port drop
counters; :func:`assess` turns two samples plus the processes' own counters (socket drops,
the generator's achieved rate) into a verdict: ``faithful`` and the list of bottlenecks.

A component is a bottleneck when

* **generator**: it sent at less than ``min_offered`` of the target rate;
* **shim** / **sink**: its busy fraction of one CPU exceeds ``max_busy``, or the kernel dropped
  frames at its socket (its queue overflowed);
* **ovs**: ovs-vswitchd was busy more than ``max_busy`` of one CPU (in the userspace datapath
  one thread forwards every hop), or a switch port dropped frames;
* **cpu**: the whole machine had less than ``min_idle`` of its CPU time idle, so everything,
  the infrastructure included, was starved (Mininet-HiFi's fidelity rule of thumb).

Caveat: thresholds are judgement calls, kept in one place (``Thresholds``) and written to
every trial's ``trial.json``; busy fractions are averages over the sending window, so a
short saturated burst can hide in them (the socket-drop counters catch what it causes).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Thresholds:
    max_busy: float = 0.90  # of one CPU, for the single-threaded infrastructure processes
    min_idle: float = 0.05  # of the whole machine
    min_offered: float = 0.95  # achieved / target rate of the generator


DEFAULT = Thresholds()


@dataclass
class Sample:
    """One look at the machine."""

    wall: float
    cpu: dict[str, float]  # process name -> CPU seconds so far
    machine_busy: float  # CPU seconds, all CPUs, not idle
    machine_total: float
    port_drops: dict[str, int] = field(default_factory=dict)  # OVS interface -> drops


def pid_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user time
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def ovs_port_drops(bridge: str) -> dict[str, int]:
    """rx+tx drops (and errors) per interface of ``bridge``, from the OVS database."""
    try:
        out = subprocess.run(
            ["ovs-vsctl", "--timeout=5", "--format=csv", "--data=bare", "--no-headings",
             "--columns=name,statistics", "list", "Interface"],
            capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    drops = {}
    for line in out.splitlines():
        name, _, stats = line.partition(",")
        if not name.startswith(f"{bridge}-"):
            continue
        counters = dict(item.split("=", 1) for item in stats.split() if "=" in item)
        drops[name] = sum(int(counters.get(k, 0)) for k in
                          ("rx_dropped", "tx_dropped", "rx_errors", "tx_errors"))
    return drops


def take(pids: dict[str, int], bridge: str) -> Sample:
    busy, total = machine_cpu()
    return Sample(time.monotonic(), {name: pid_cpu_seconds(pid) for name, pid in pids.items()},
                  busy, total, ovs_port_drops(bridge))


def assess(before: Sample, after: Sample, *, target_pps: float, offered_pps: float,
           socket_drops: dict[str, int], generator_busy: float | None = None,
           thresholds: Thresholds = DEFAULT) -> dict:
    """The fidelity verdict of the window between two samples (see the module docstring)."""
    wall = max(after.wall - before.wall, 1e-9)
    busy = {name: round((after.cpu.get(name, 0.0) - before.cpu.get(name, 0.0)) / wall, 3)
            for name in before.cpu}
    if generator_busy is not None:
        busy["generator"] = round(generator_busy, 3)
    total = max(after.machine_total - before.machine_total, 1e-9)
    idle = round(1 - (after.machine_busy - before.machine_busy) / total, 3)
    # Per port and never negative: a counter that went down (a port reset, or no reading
    # at all) must not cancel another port's drops.
    port_drops = sum(max(0, after.port_drops.get(k, v) - v) for k, v in before.port_drops.items())
    bottlenecks = []
    if offered_pps < thresholds.min_offered * target_pps:
        bottlenecks.append("generator")
    for name in ("shim", "sink"):
        if busy.get(name, 0.0) > thresholds.max_busy or socket_drops.get(name, 0) > 0:
            bottlenecks.append(name)
    if busy.get("ovs", 0.0) > thresholds.max_busy or port_drops > 0:
        bottlenecks.append("ovs")
    if idle < thresholds.min_idle:
        bottlenecks.append("cpu")
    return {
        "faithful": not bottlenecks,
        "bottleneck": ";".join(bottlenecks),
        "busy": busy,
        "machine_idle": idle,
        "ovs_port_drops": port_drops,
        "socket_drops": socket_drops,
        "window_s": round(wall, 3),
        "thresholds": asdict(thresholds),
    }
