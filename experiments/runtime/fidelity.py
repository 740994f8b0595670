"""Fidelity monitor, the sampling half: a look at the machine around a trial's traffic.

A trial measures the emulated NF cores only while the generator, the shim, Open vSwitch
and the sink keep up. :func:`take` samples, at the start and end of a trial's traffic, the
CPU time of each of those processes, the machine's idle time and OVS's per-port drop
counters. Turning two samples into a verdict (``faithful`` and the bottlenecks, with the
thresholds) is ``experiments.analysis.fidelity.assess``, a pure function in the analysis
layer; this module reads ``/proc`` and the OVS database, so it is runtime.

Caveat: the samples are cumulative counters read twice; anything between the two reads is
averaged (see ``experiments.analysis.fidelity`` for what that hides).
"""

from __future__ import annotations

import os
import subprocess
import time

from experiments.analysis.fidelity import Sample

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    """A sample of the named processes' CPU time, the machine's and ``bridge``'s drops."""
    busy, total = machine_cpu()
    return Sample(time.monotonic(), {name: pid_cpu_seconds(pid) for name, pid in pids.items()},
                  busy, total, ovs_port_drops(bridge))
