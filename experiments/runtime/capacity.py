"""A configuration's capacity, measured: what rate its emulated cores can carry here.

Offered rates in experiments and live tests come from here, never from a fixed number of
packets per second: the same configuration runs ~2x faster on one machine than another.
:func:`measure_capacity` reads, from the cores' own results, the CPU time each core spent
from its first frame on (``busy_cpu_s`` in ``core<i>.json``) per packet it processed: what
one packet costs a core. A core given ``core_share`` of a CPU then carries ``core_share /
cost`` packets per second, and the configuration ``cores`` times that.

A core that sleeps in ``recv`` between packets pays for every wake-up (~1.5x the cost of a
busy core here), so the cost is measured on busy cores, in two short trials of the
configuration: a probe at a low rate gives a first, low estimate; a second trial offers
``OVERLOAD`` times that estimate, so that the cores work flat out, and its busy cores'
cost is the answer (its delivered rate agrees with it, within the trial's noise).

Caveats: an SCR core's cost grows with the history (``cores - 1`` records), so measure
with the core count the rate is for. The probes run without loss recovery (an overloaded
core that recovers waits for its peers, which is not its cost per packet; logging its
records costs ~1 µs a record more than the probe sees). They are ordinary trials, with
their folders and checks: a check that failed there fails the measurement. The second
probe drops packets on purpose, so its replicas have gaps, which the oracle must find
consistent with the ground truth. The cores govern their spin rounds
(``TrialConfig.spin_ns``) as in the runs the rate is for.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from experiments.analysis.collect import read_result
from experiments.analysis.errors import TrialError
from experiments.argtypes import non_negative_float, positive_float
from experiments.runtime.calibration import DEFAULT_STATE_WORK_US, Costs, calibrate
from experiments.runtime.config import TrialConfig
from experiments.runtime.results import new_run_dir, write_config
from experiments.runtime.trial import run_trial
from experiments.workload.trace_files import import_for_run
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap

PROBE_PPS_PER_CORE = 100.0  # well under any useful configuration's capacity
PROBE_SECONDS = 1.0
LOAD_SECONDS = 1.5
OVERLOAD = 2.5  # times the low estimate: ~1.5x the real capacity, the cores flat out
MIN_PROBE_PACKETS = 150
CAPACITY_TRACE_PACKETS = 12_000  # a synthetic trace for the probes: longer than both


@dataclass(frozen=True)
class Capacity:
    """What one measurement found."""

    cpu_us_per_packet: float  # median over the cores
    per_core_pps: float  # one core at its share of a CPU
    cores: int
    core_share: float | None

    @property
    def pps(self) -> float:
        """All the configuration's cores together."""
        return self.cores * self.per_core_pps

    def rate(self, load: float, cores: int | None = None) -> float:
        """``load`` times the capacity of ``cores`` of these cores (default: all)."""
        return load * (self.cores if cores is None else cores) * self.per_core_pps

    def to_json(self) -> dict:
        return {**asdict(self), "pps": round(self.pps, 1)}


def capacity_from_cores(cores: list[dict], core_share: float | None) -> Capacity:
    """The capacity that the cores' own results (``core<i>.json``) show."""
    costs = [c["busy_cpu_s"] / c["stats"]["processed"] for c in cores
             if c.get("busy_cpu_s") and c["stats"].get("processed")]
    if not costs:
        raise TrialError("no core processed a packet: cannot measure its cost")
    cost_s = statistics.median(costs)
    return Capacity(round(cost_s * 1e6, 2), round((core_share or 1.0) / cost_s, 1),
                    len(cores), core_share)


def _probe(config: TrialConfig, trace_path: Path, out_dir: Path, rate: float,
           seconds: float) -> tuple[dict, list[dict]]:
    # Without loss recovery: an overloaded core that fetches what its queue dropped waits
    # for its peers, and the wait would count as its cost per packet.
    probe = replace(config, rate_pps=rate, loss=0.0, watch_cores=False, recovery=False,
                    packets=max(MIN_PROBE_PACKETS, round(rate * seconds)))
    result = run_trial(probe, trace_path, out_dir)
    if not result["check_consistent"]:
        raise TrialError(f"a capacity probe failed its checks: {result['check_problems']}")
    return result, [read_result(Path(out_dir) / f"core{i}.json") for i in range(config.cores)]


def measure_capacity(config: TrialConfig, trace_path: Path, out_dir: Path) -> Capacity:
    """The capacity of ``config``'s cores (see the module's doc); the probes' trials go
    into ``out_dir/low`` and ``out_dir/busy``."""
    _result, cores = _probe(config, trace_path, Path(out_dir) / "low",
                            PROBE_PPS_PER_CORE * config.cores, PROBE_SECONDS)
    low = capacity_from_cores(cores, config.core_share)
    _result, cores = _probe(config, trace_path, Path(out_dir) / "busy",
                            OVERLOAD * low.pps, LOAD_SECONDS)
    return capacity_from_cores(cores, config.core_share)


def add_run_flags(parser: argparse.ArgumentParser, load: float, load_help: str,
                  work_us: float) -> None:
    """The flags :func:`prepare_run` reads: ``--load`` (default ``load``), ``--rate``,
    ``--work-us`` (default ``work_us``) and ``--trace``."""
    parser.add_argument("--load", type=positive_float, default=load, help=load_help)
    parser.add_argument("--rate", type=positive_float, default=None,
                        help="offer this many packets/s instead (no measurement)")
    parser.add_argument("--work-us", type=non_negative_float, default=work_us,
                        help="stateless compute per packet, µs of CPU time (calibrated)")
    parser.add_argument("--trace", type=Path, default=None,
                        help="replay this capture (pcap or pcapng, any source, rewritten "
                             "into 198.18.0.0/15) instead of a synthetic trace")


def prepare_run(kind: str, args: argparse.Namespace, config: TrialConfig, survivors: int
                ) -> tuple[Path, Path | None, TrialConfig, Capacity | None, Costs]:
    """What a fault experiment (``core_failover``, ``failover``) does before its run:
    calibrate the costs (``args.work_us``), make the results folder (importing ``--trace``
    first, if any), measure the configuration's capacity and set the offered rate from it
    (``--load`` of what ``survivors`` cores carry) unless ``--rate`` gives one, and write
    ``config.json``. ``(folder, imported trace or None,
    config with costs and rate, capacity, costs)``."""
    costs = calibrate(args.work_us, DEFAULT_STATE_WORK_US, 0.0)
    imported = None
    if args.trace is not None:
        run_dir, imported, summary = import_for_run(
            args.trace, lambda: new_run_dir(kind, args.results_dir))
        print(f"{kind}: {args.trace}\n{summary.table()}", file=sys.stderr)
    else:
        run_dir = new_run_dir(kind, args.results_dir)
    config = replace(config, nf_params={**config.nf_params, **costs.nf_params()},
                     spin_ns=costs.ns_per_round)
    capacity = None
    if args.rate is None:
        probe_trace = imported or run_dir / "capacity" / "trace.pcap"
        if imported is None:
            probe_trace.parent.mkdir()
            write_pcap(probe_trace, make_trace(TraceSpec(packets=CAPACITY_TRACE_PACKETS,
                                                         skew=args.skew, seed=args.seed)))
        capacity = measure_capacity(config, probe_trace, run_dir / "capacity")
        config = replace(config, rate_pps=round(capacity.rate(args.load, survivors), 1))
    else:
        config = replace(config, rate_pps=args.rate)
    arguments = {k: v for k, v in vars(args).items() if k not in ("config", "faults")}
    write_config(run_dir, arguments, config=asdict(config), costs=costs.to_json(),
                 capacity=capacity.to_json() if capacity else None,
                 faults=[asdict(f) for f in getattr(args, "faults", [])])
    return run_dir, imported, config, capacity, costs
