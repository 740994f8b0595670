"""Lab 6's measurement: what SCR and the lock carry on 1 and 4 cores, in one run (~50 s).

Run it as root from the lab's folder: ``make measure`` (the kit calls :func:`report`); it
prints one row per configuration and keeps every trial under
``results/labs/lab06-measure/<timestamp>/``. The grader (``make check``) runs the same
:func:`measure` and compares your answers with it.

What it measures, for each configuration (the NF is the DDoS mitigator, its costs calibrated
in µs of CPU time: 110 µs of work per packet, 1.5 µs per state transition, and for the lock
a transfer of 0 or 55 µs when a key's state was last written by another core):

* ``cpu_us``: the CPU time a busy core spends per packet (the median over the cores), read
  from the cores' own results, as ``experiments.runtime.capacity`` does. It is the model's
  time per packet on that configuration: ``t`` on one core, ``t + (n-1) c`` for SCR on n;
* ``capacity_pps``: what the cores carry at their CPU share: ``cores x share / cpu_us``;
* ``delivered_pps``: what the overloaded trial actually delivered (it should agree);
* ``moved``: for the lock, the share of packets whose key's state another core wrote last.

How: the first configuration (SCR on one core) is measured with
``experiments.runtime.capacity.measure_capacity`` (two short trials: a low probe, then a
busy one); every other configuration gets one trial of ``PROBE_SECONDS`` at ``OVERLOAD``
times what its cores would carry at that first per-core capacity, so its cores work flat
out. Then a second pass measures every configuration again (one trial each), and each
configuration's row is its cheaper trial: a job elsewhere on the machine only ever makes
a trial dearer, by up to ~25 % now and then, and one such trial would skew two ratios.
Eleven trials in all, each on a fresh network.

Caveats: the DDoS threshold is set out of reach (every packet passes), so the NF is a
plain per-source counter whose updates commute: the lock's shared table then ends equal to
sequential processing whatever order the cores took the lock in (with the default
threshold, verdicts near it depend on that order, see the README's oracle section). The
costs move 10-20 % between runs on a busy 2-CPU machine: compare ratios measured in the
same run, never numbers from two runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from experiments.analysis.collect import read_result
from experiments.analysis.errors import TrialError
from experiments.runtime.calibration import Costs, calibrate
from experiments.runtime.capacity import capacity_from_cores, measure_capacity
from experiments.runtime.config import TrialConfig
from experiments.runtime.trial import run_trial
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap

NEVER = 2**40  # a DDoS threshold no source reaches: every packet passes
TRACE = TraceSpec(packets=12_000, seed=6)  # 200 Zipf flows (skew 1): longer than any probe
OVERLOAD = 1.5  # offered load, in what the cores would carry at SCR's one-core capacity
PROBE_SECONDS = 1.5
PASSES = 2  # every configuration twice, in two passes; the cheaper trial of each counts


@dataclass(frozen=True)
class Point:
    """One configuration: a strategy on ``cores`` cores; for the lock, whether a moved key
    pays the calibrated transfer (``transfer``) or nothing."""

    strategy: str
    cores: int
    transfer: bool = False

    @property
    def name(self) -> str:
        extra = f"-transfer{'55' if self.transfer else '0'}" if self.strategy == "lock" else ""
        return f"{self.strategy}{self.cores}{extra}"


#: What one run measures, in order (the first sets the offered rates of the others).
POINTS = (Point("scr", 1), Point("scr", 4), Point("lock", 1, transfer=True),
          Point("lock", 4, transfer=False), Point("lock", 4, transfer=True))


@dataclass(frozen=True)
class Row:
    """What one configuration showed."""

    point: Point
    transfer_us: float  # what a moved key paid (0 for SCR)
    cpu_us: float  # CPU time per packet of a busy core (median over the cores)
    capacity_pps: float  # cores x share / cpu_us
    delivered_pps: float
    moved: float | None  # lock: share of packets whose key another core wrote last
    faithful: bool  # the infrastructure kept up (the trial's fidelity monitor)


def base_config(costs: Costs) -> TrialConfig:
    """The DDoS mitigator with ``costs`` and no reachable threshold, governed spin."""
    return TrialConfig(nf="ddos", nf_params={**costs.nf_params(), "threshold": NEVER},
                       spin_ns=costs.ns_per_round)


def config_of(base: TrialConfig, point: Point, costs: Costs) -> TrialConfig:
    return replace(base, strategy=point.strategy, cores=point.cores,
                   transfer_work=costs.transfer_work if point.transfer else 0)


def row_of(point: Point, costs: Costs, config: TrialConfig, result: dict,
           cores: list[dict]) -> Row:
    capacity = capacity_from_cores(cores, config.core_share)
    moved = None
    if point.strategy == "lock":
        shares = [c["stats"].get("moved", 0) / c["stats"]["processed"] for c in cores
                  if c["stats"].get("processed")]
        moved = round(statistics.median(shares), 3) if shares else None
    return Row(point, costs.transfer_work_us if point.transfer else 0.0,
               capacity.cpu_us_per_packet, round(capacity.pps, 1), result["delivered_pps"],
               moved, bool(result["faithful"]))


def probe(config: TrialConfig, trace: Path, out_dir: Path, rate: float,
          seconds: float = PROBE_SECONDS) -> tuple[dict, list[dict]]:
    """One overloaded trial of ``config`` at ``rate``: its result row and its cores'."""
    config = replace(config, rate_pps=round(rate, 1), packets=round(rate * seconds))
    result = run_trial(config, trace, out_dir)
    if not result["check_consistent"]:  # a commutative counter: the lock must be too
        raise TrialError(f"{out_dir.name}: the oracle found the run inconsistent: "
                         f"{result['check_problems'][:1]}")
    return result, [read_result(out_dir / f"core{i}.json") for i in range(config.cores)]


def measure(out_dir: Path, costs: Costs | None = None,
            progress: Callable[[str], None] = lambda _line: None) -> list[Row]:
    """Measure every configuration of :data:`POINTS`, ``PASSES`` times, in one run; per
    configuration, the trial whose cores spent the least CPU per packet (module doc)."""
    costs = costs or calibrate()
    out_dir.mkdir(parents=True, exist_ok=True)
    trace = out_dir / "trace.pcap"
    write_pcap(trace, make_trace(TRACE))
    base = base_config(costs)
    best: dict[Point, Row] = {}
    per_core_pps = None
    for run in range(1, PASSES + 1):
        for point in POINTS:
            config = config_of(base, point, costs)
            folder = out_dir / point.name / f"pass{run}"
            if per_core_pps is None:  # the very first: a capacity measurement, two trials
                capacity = measure_capacity(config, trace, folder)
                per_core_pps = capacity.per_core_pps
                result = read_result(folder / "busy" / "trial.json")["result"]
                cores = [read_result(folder / "busy" / f"core{i}.json")
                         for i in range(point.cores)]
            else:
                result, cores = probe(config, trace, folder,
                                      OVERLOAD * point.cores * per_core_pps)
            row = row_of(point, costs, config, result, cores)
            progress(f"pass {run}, {point.name}: {row.cpu_us} µs per packet")
            # Another process on the machine only ever slows a core down: the cheaper
            # of two trials is the closer to what the configuration itself costs.
            if point not in best or row.cpu_us < best[point].cpu_us:
                best[point] = row
    return [best[point] for point in POINTS]


def table(rows: list[Row]) -> str:
    from tabulate import tabulate

    return tabulate(
        [(r.point.strategy, r.point.cores, r.transfer_us, r.cpu_us, r.capacity_pps,
          r.delivered_pps, "-" if r.moved is None else r.moved, "yes" if r.faithful else "NO")
         for r in rows],
        headers=("strategy", "cores", "transfer µs", "cpu µs/packet", "capacity pps",
                 "delivered pps", "moved", "faithful"))


def report(g) -> list[str]:
    """``make measure``: measure in the grading folder of ``g`` (a ``labs.kit.Grade``) and
    return the lines to print: the costs, the table and where the trials are."""
    costs = g.costs()
    print(f"costs: {costs.work_us} µs of work per packet, {costs.state_work_us} µs per state "
          f"transition, transfer {costs.transfer_work_us} µs (a spin round: "
          f"{costs.ns_per_round} ns here)", flush=True)
    rows = measure(g.out_dir, costs, lambda line: print(f"  {line}", flush=True))
    return [*table(rows).splitlines(), f"results: {g.out_dir}"]
