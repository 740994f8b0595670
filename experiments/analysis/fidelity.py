"""The fidelity verdict: was a data point limited by the NF cores, or by the testbed itself?

A trial measures the emulated NF cores only while the generator, the shim, Open vSwitch
and the sink keep up. The runtime samples the machine at the start and end of a trial's
traffic (``experiments.runtime.fidelity.take``: a :class:`Sample` of each process's CPU
time, the machine's idle time and OVS's per-port drop counters); :func:`assess` turns two
samples plus the processes' own counters (socket drops, the generator's achieved rate) into
a verdict: ``faithful`` and the list of bottlenecks. It is a pure function, so it sits in
the analysis layer, below the runtime that takes the samples.

A component is a bottleneck when

* **generator**: it sent at less than ``min_offered`` of the target rate;
* **shim** / **sink**: its busy fraction of one CPU exceeds ``max_busy``, or the kernel dropped
  frames at its socket (its queue overflowed);
* **ovs**: ovs-vswitchd was busy more than ``max_busy`` of one CPU (in the userspace datapath
  one thread forwards every hop), or a switch port dropped frames;
* **cpu**: the whole machine had less than ``min_idle`` of its CPU time idle, so everything,
  the infrastructure included, was starved (Mininet-HiFi's fidelity rule of thumb);
* **path**: frames the generator sent never reached the shim, and no counter saw them go
  (``lost_before_shim``: sent − sequenced − malformed − the shim's socket drops). Found at
  tens of thousands of pps, where a third of the frames vanished on the way while every
  other rule held: a loss the NF cores never saw cannot be theirs.

Caveat: thresholds are judgement calls, kept in one place (``Thresholds``) and written to
every trial's ``trial.json``; busy fractions are averages over the sending window, so a
short saturated burst can hide in them (the socket-drop counters catch what it causes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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


def assess(before: Sample, after: Sample, *, target_pps: float, offered_pps: float,
           socket_drops: dict[str, int], generator_busy: float | None = None,
           lost_before_shim: int = 0, thresholds: Thresholds = DEFAULT) -> dict:
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
    if lost_before_shim > 0:
        bottlenecks.append("path")
    return {
        "faithful": not bottlenecks,
        "bottleneck": ";".join(bottlenecks),
        "busy": busy,
        "machine_idle": idle,
        "ovs_port_drops": port_drops,
        "socket_drops": socket_drops,
        "lost_before_shim": lost_before_shim,
        "window_s": round(wall, 3),
        "thresholds": asdict(thresholds),
    }


def quota_received(cores: list[dict], core_share: float | None) -> dict:
    """How much of its CPU quota each emulated core got while it had work: its CPU time
    from its first frame to its last (``busy_cpu_s`` over ``last_ns - first_ns`` in
    ``core<i>.json``) as a fraction of ``core_share``. An overloaded core that got its whole
    quota reads ~1.0: k cores then have k times one core's capacity, the emulation's
    premise, checked per trial. Only overloaded trials say something: a core with spare
    capacity reads less if it idled, but near its capacity the cost of waking up for each
    packet can use the spare, and it reads ~1.0 too (seen at 90 % load). Empty without a
    quota or a core with a span."""
    if not core_share:
        return {}
    shares = []
    for core in cores:
        span = (core.get("last_ns", 0) - core.get("first_ns", 0)) / 1e9
        if span > 0.1 and core.get("busy_cpu_s"):  # a few frames say nothing
            shares.append(core["busy_cpu_s"] / span / core_share)
    if not shares:
        return {}
    return {"quota_received": round(sum(shares) / len(shares), 3),
            "quota_received_min": round(min(shares), 3)}
