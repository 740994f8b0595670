"""The sweep engine behind ``skew_sweep.py`` and ``core_sweep.py``.

A sweep runs every combination of NF x strategy x core count x flow skew (``single`` only
at one core) and measures each point's throughput:

* ``--mode mlffr`` (default): the maximum loss-free forwarding rate by search
  (``experiments.analysis.mlffr``: judged on the larger of the packets lost and the
  steady-state deficit after ``--warmup``, the rate found confirmed by a second trial),
  each step a trial (``experiments.runtime.trial``) on a fresh network; ``--repeats``
  independent searches per point, the point their median with its min-max range
  (``experiments.analysis.repeats``); then, with ``--latency-loads``, one trial per load
  at that fraction of the point's median MLFFR, for its latency (``latency.csv``);
* ``--mode fixed``: one trial at ``--rate``; the throughput is the rate the cores delivered.

Every trial is checked against sequential processing (``check_equivalent``: every verdict
and every state equal to one core processing the same packets in the sequencer's order,
given the packets the run lost) and watched by the fidelity monitor (``faithful``,
``bottleneck``). A search is faithful when its reported trial was. It writes
``results/<kind>/<timestamp>/`` with ``config.json``, ``results.csv`` (one row per search,
``repeat`` numbering a point's searches, appended as they finish; Ctrl-C keeps them),
``trials.csv`` (one row per trial), ``latency.csv`` (the load trials), the
traces, every trial's folder, the plots (``experiments.plots.plotting``, from the CSV), a
table and ``summary.json``. What a point's row says from its trials, the table and the
summary are ``experiments.analysis.tables``; this module runs the trials and records them.

Caveat: see the README: two CPUs, emulated cores, infrastructure limits.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from experiments.analysis.errors import TrialError
from experiments.analysis.mlffr import DEFAULT_THRESHOLD, find_mlffr, judged_loss
from experiments.analysis.repeats import aggregate
from experiments.analysis.tables import point_row, summary_line, sweep_summary, table
from experiments.argtypes import (
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
)
from experiments.plots.plotting import plot_run
from experiments.runtime.calibration import (
    DEFAULT_STATE_WORK_US,
    DEFAULT_TRANSFER_WORK_US,
    DEFAULT_WORK_US,
    LEGACY_MAX_CORES,
    SCALE_CORES_CPU,
    SCALE_WORK_US,
    calibrate,
    scale_for,
)
from experiments.runtime.capacity import measure_capacity
from experiments.runtime.config import DEFAULT_WARMUP_S, TrialConfig
from experiments.runtime.cpu_quota import DEFAULT_CORE_SHARE
from experiments.runtime.ovs import AFXDP, PORT_TYPES, afxdp_unavailable
from experiments.runtime.placement import PLACEMENTS, plan_cpus
from experiments.runtime.processes import start_experiment
from experiments.runtime.results import CsvLog, git_revision, new_run_dir, write_config
from experiments.runtime.trial import run_trial
from experiments.workload.trace_files import TraceError, TraceSummary, import_for_run
from experiments.workload.traffic import TraceSpec, flow_shares, make_trace, write_pcap
from nfs import NF_CLASSES
from nfs.cores.store import DEFAULT_INFLIGHT
from nfs.strategies import get as get_strategy
from nfs.strategies import names as strategy_names

COLUMNS = [
    "nf", "strategy", "cores", "skew", "trace", "store_delay_us", "transfer_work_us",
    "lock_quota_aware", "top_flow_share", "mode", "repeat", "throughput_pps",
    "offered_pps", "delivered_pps", "loss", "steady_loss", "faithful", "bottleneck",
    "check_equivalent", "check_consistent", "check_problem", "search_steps", "rates_tried",
    "ceiling", "confirmed", "refuted_rates", "unfaithful_rates", "per_core", "lost_updates",
    "busy", "machine_idle", "lock_stalls", "lock_stall_share", "migrations",
    "check_access_order",
    "store_retries", "latency_us_p50",
    "latency_us_p99", "e2e_us_p50", "e2e_us_p99", "loss_rate", "injected_loss",
    "recovered", "lost_everywhere", "fetches", "fetch_us_p50", "fetch_us_p99", "fetch_s",
    "trial", "seconds", "error",
]
TRIAL_COLUMNS = [
    "nf", "strategy", "cores", "skew", "store_delay_us", "transfer_work_us",
    "lock_quota_aware", "repeat", "target_pps", "offered_pps", "delivered_pps", "loss",
    "steady_loss", "steady_pps", "sent",
    "processed", "core_rx_dropped", "per_core", "faithful", "bottleneck", "lock_stalls",
    "lock_stall_s", "lock_wait_s", "lock_stall_share", "migrations",
    "check_equivalent", "check_consistent", "check_verdict_mismatches",
    "check_chain_mismatches", "check_diverged_replicas", "check_protocol_errors",
    "check_unexplained_losses", "check_unsupported_gaps", "lost_updates", "malformed_shim",
    "malformed_cores", "check_access_order", "access_order_mismatches", "store_ops",
    "store_retries", "store_errors", "latency_us_p50", "latency_us_p99", "query_us_p50",
    "e2e_us_p50", "e2e_us_p99", "loss_rate", "injected_loss", "recovered", "lost_everywhere",
    "fetches", "fetch_timeouts", "fetch_us_p50", "fetch_us_p99", "fetch_s", "span_s",
    "port_type", "quota_received", "quota_received_min", "trial",
    "error",
]
#: One trial per point at each of these fractions of its median MLFFR: latency at load.
LATENCY_COLUMNS = [
    "nf", "strategy", "cores", "skew", "store_delay_us", "transfer_work_us",
    "lock_quota_aware", "load",
    "mlffr_pps", "target_pps", "offered_pps", "loss", "steady_loss", "faithful",
    "check_equivalent", "check_consistent", "e2e_us_p50", "e2e_us_p99", "latency_us_p50",
    "latency_us_p99", "trial", "error",
]
ALL = "all"
CAPACITY_COLUMNS = ["nf", "cpu_us_per_packet", "per_core_pps", "cores", "core_share", "pps",
                    "error"]

# Each emulated core gets DEFAULT_CORE_SHARE of a CPU (experiments.runtime.cpu_quota). The
# NF's costs are in experiments.runtime.calibration (µs of CPU time, turned into spin rounds
# at start-up).
#: The first probe of a search offers this times the measured capacity, capped by
#: --max-rate: above capacity, so that it brackets the MLFFR.
PROBE_OVER_CAPACITY = 1.3
MIN_TRIAL_PACKETS = 800


@dataclass(frozen=True)
class Point:
    nf: str
    strategy: str
    cores: int
    skew: float
    store_delay_us: float = 0.0  # service/remote: latency injected per store round trip
    loss: float = 0.0  # fraction of packets the dispatch stage drops
    transfer_us: float | None = None  # lock: µs paid per key moved between cores
    quota_aware: bool | None = None  # lock: quota-aware locking (nfs.cores.lock)

    @property
    def name(self) -> str:
        delay = f"-d{self.store_delay_us:g}us" if self.store_delay_us else ""
        loss = f"-loss{100 * self.loss:g}pct" if self.loss else ""
        transfer = f"-x{self.transfer_us:g}us" if self.transfer_us is not None else ""
        transfer += "-aware" if self.quota_aware else ""
        return f"{self.nf}-{self.strategy}-c{self.cores}-s{self.skew:g}{delay}{loss}{transfer}"

    def row(self) -> dict:
        """The columns naming the point in every CSV of the sweep."""
        return {"nf": self.nf, "strategy": self.strategy, "cores": self.cores,
                "skew": self.skew, "store_delay_us": self.store_delay_us,
                "transfer_work_us": "" if self.transfer_us is None else self.transfer_us,
                "lock_quota_aware": "" if self.quota_aware is None else self.quota_aware,
                "loss_rate": self.loss}


def _add_point_flags(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """Which points, and how each is measured (the search, the trial length, the trace)."""
    parser.add_argument("--nf", nargs="+", choices=[*sorted(NF_CLASSES), ALL],
                        default=defaults["nf"], help=f"network functions ('{ALL}': every one)")
    parser.add_argument("--strategies", nargs="+", choices=strategy_names(),
                        default=defaults["strategies"], help="how the cores share the state")
    parser.add_argument("--cores", type=positive_int, nargs="+", default=defaults["cores"],
                        help="core counts (single always runs on 1)")
    parser.add_argument("--skews", type=non_negative_float, nargs="+",
                        default=defaults["skews"], help="Zipf exponents of the flow sizes")
    parser.add_argument("--mode", choices=("mlffr", "fixed"), default=defaults["mode"],
                        help="search the max loss-free rate, or one trial at --rate")
    parser.add_argument("--rate", type=positive_float, default=3000.0,
                        help="fixed mode: offered packets/s")
    parser.add_argument("--max-rate", type=positive_float,
                        default=defaults.get("max_rate", 6000.0),
                        help="mlffr mode: highest rate a search probes")
    parser.add_argument("--threshold", type=fraction, default=DEFAULT_THRESHOLD,
                        help="mlffr mode: loss a passing rate may have")
    parser.add_argument("--precision", type=fraction, default=defaults["precision"],
                        help="mlffr mode: stop when pass and fail rates are this close")
    parser.add_argument("--max-steps", type=positive_int, default=defaults["max_steps"],
                        help="mlffr mode: trials per point at most")
    parser.add_argument("--duration", type=positive_float, default=defaults["duration"],
                        help="seconds of traffic per trial")
    parser.add_argument("--warmup", type=non_negative_float, default=DEFAULT_WARMUP_S,
                        help="mlffr mode: seconds at the start of a trial left out of its "
                             "steady-state loss")
    parser.add_argument("--repeats", type=positive_int, default=defaults.get("repeats", 3),
                        help="mlffr mode: independent searches per point (the point is their "
                             "median, shown with their range)")
    parser.add_argument("--latency-loads", type=fraction, nargs="*",
                        default=defaults.get("latency_loads", [0.5, 0.9]),
                        help="mlffr mode: after a point's searches, one trial at each of these "
                             "fractions of its median MLFFR, for latency at a stated load "
                             "(latency.csv; none: skip)")
    parser.add_argument("--flows", type=positive_int, default=200,
                        help="background flows per trace")


def _add_cost_flags(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """What a packet costs the cores, the store latency, the injected loss, recovery."""
    parser.add_argument("--work-us", type=non_negative_float,
                        default=defaults.get("work_us"),
                        help="stateless compute per packet, µs of CPU time (calibrated into "
                             "spin rounds at start-up; config.json records both; default "
                             f"{DEFAULT_WORK_US:g}, {SCALE_WORK_US:g} past "
                             f"{LEGACY_MAX_CORES} emulated cores: "
                             "experiments.runtime.calibration.scale_for)")
    parser.add_argument("--state-work-us", type=non_negative_float,
                        default=defaults.get("state_work_us", DEFAULT_STATE_WORK_US),
                        help="compute per state transition, µs (SCR pays it per history "
                             "record: the model's c)")
    parser.add_argument("--core-share", type=positive_float,
                        default=defaults.get("core_share"),
                        help=f"CPU quota of each emulated core, fraction of one CPU (default "
                             f"{DEFAULT_CORE_SHARE:g}; past {LEGACY_MAX_CORES} cores "
                             f"{SCALE_CORES_CPU:g} / the largest count; its period is the "
                             f"shortest whose quota is 1 ms)")
    parser.add_argument("--placement", choices=PLACEMENTS, default="quota",
                        help="quota: emulated cores, each a CPU quota; cpus: real cores, "
                             "each alone on a CPU of its own and no quota, the "
                             "infrastructure on the CPUs left (a machine with more CPUs "
                             "than cores; experiments.runtime.placement)")
    parser.add_argument("--port-type", choices=PORT_TYPES, default="auto",
                        help="the switch's ports: auto takes AF_XDP (afxdp-nonpmd) where the "
                             "kernel allows it, else system (packet sockets); each trial's "
                             "trial.json says which it used")
    parser.add_argument("--transfer-work-us", type=non_negative_float, nargs="+",
                        default=[DEFAULT_TRANSFER_WORK_US],
                        help="lock: µs paid when a key's state was last written by another "
                             "core (0: no coherence cost; one lock point per value; the "
                             "default's basis is in experiments.runtime.calibration)")
    parser.add_argument("--lock-quota-aware", choices=("on", "off"), nargs="+",
                        default=["off"],
                        help="lock: a core takes a lock only with CPU quota left for the "
                             "critical section (nfs.cores.lock: fewer stalls, less capacity; "
                             "both: one lock point per value)")
    parser.add_argument("--inflight", type=positive_int, default=DEFAULT_INFLIGHT,
                        help="service/remote: packets in flight per core (async runtime)")
    parser.add_argument("--store-delays-us", type=non_negative_float, nargs="+",
                        default=defaults.get("store_delays_us", [0.0]),
                        help="service/remote: latencies injected before each round trip to "
                             "the store "
                             "(one point per value)")
    parser.add_argument("--losses", type=fraction, nargs="+",
                        default=defaults.get("losses", [0.0]),
                        help="fractions of packets the dispatch stage drops, seeded (one "
                             "point per value)")
    parser.add_argument("--loss-seed", type=int, default=1, help="seed of the injected loss")
    parser.add_argument("--recovery", choices=("on", "off"),
                        default=defaults.get("recovery", "on"),
                        help="scr: cores fetch lost records from their peers' logs (on, "
                             "as the paper measures at the MLFFR: points stay strictly "
                             "equivalent)")


def build_parser(prog: str, description: str, defaults: dict,
                 quick: dict) -> argparse.ArgumentParser:
    """The flags both sweeps share; ``defaults`` and ``quick`` differ per sweep."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_point_flags(parser, defaults)
    _add_cost_flags(parser, defaults)
    parser.add_argument("--probe-per-core", type=positive_float, default=None,
                        help=f"mlffr mode: the first probe offers {PROBE_OVER_CAPACITY:g} x "
                             "this x cores (capped by --max-rate; default: a core's capacity, "
                             "measured once per NF); later points start from the best seen")
    parser.add_argument("--trace", type=Path, default=None,
                        help="replay this capture (pcap or pcapng, any source: its IPv4 "
                             "addresses are rewritten into 198.18.0.0/15) instead of "
                             "synthetic traces; --skews and --flows then do not apply")
    parser.add_argument("--seed", type=int, default=1, help="trace seed")
    parser.add_argument("--quick", action="store_true",
                        help=f"a short sweep for a first look: {quick} (overrides those flags)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where <kind>/<timestamp> folders go (default: results/ in "
                             "the repository)")
    return parser


def finish_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                quick: dict) -> argparse.Namespace:
    if args.quick:
        for key, value in quick.items():
            setattr(args, key, value)
    if ALL in args.nf:
        args.nf = sorted(NF_CLASSES)
    if args.trace is not None:
        args.skews = [0.0]  # one trace: its own flows and skew (see trace_summary.json)
    share, work = scale_for(max(args.cores), DEFAULT_CORE_SHARE)
    if args.placement == "cpus":  # real cores: no quota, and no emulation to fit in 2 CPUs
        if args.core_share is not None:
            parser.error("--core-share is for placement quota (real cores have no quota)")
        work = DEFAULT_WORK_US
    elif args.core_share is None:
        args.core_share = share
    if args.work_us is None:
        args.work_us = work
    if args.core_share is not None and args.core_share > 1:
        parser.error("--core-share must be at most 1 (one CPU)")
    if args.port_type == AFXDP and (why := afxdp_unavailable()):
        parser.error(f"--port-type {AFXDP}: {why}")
    try:
        TrialConfig(core_share=args.core_share)
        if args.placement == "cpus":  # the largest point must fit, its state service too
            plan_cpus(max(args.cores) + any(get_strategy(s).store == "service"
                                            for s in args.strategies))
    except ValueError as err:
        parser.error(str(err))
    return args


def points(args: argparse.Namespace) -> list[Point]:
    out = []
    for nf in args.nf:
        for skew in args.skews:
            for strategy in args.strategies:
                spec = get_strategy(strategy)
                counts = [spec.fixed_cores] if spec.fixed_cores else args.cores
                delays = args.store_delays_us if spec.store else [0.0]
                transfers = args.transfer_work_us if spec.shared_table else [None]
                aware = ([value == "on" for value in args.lock_quota_aware]
                         if spec.shared_table else [None])
                out += [Point(nf, strategy, cores, skew, delay, loss, transfer, quota)
                        for quota in aware for transfer in transfers for loss in args.losses
                        for delay in delays for cores in counts]
    return list(dict.fromkeys(out))


class Sweep:
    """Runs the points of one sweep into one results folder."""

    def __init__(self, kind: str, args: argparse.Namespace):
        self.kind = kind
        self.args = args
        self.points = points(args)
        self.costs = calibrate(args.work_us, args.state_work_us, args.transfer_work_us[0])
        self.imported: Path | None = None  # --trace, rewritten into the testbed's range
        self.trace_summary: TraceSummary | None = None
        if args.trace is not None:  # TraceError before any results folder exists
            self.run_dir, self.imported, self.trace_summary = import_for_run(
                args.trace, lambda: new_run_dir(kind, args.results_dir))
        else:
            self.run_dir = new_run_dir(kind, args.results_dir)
        self.port_types: Counter[str] = Counter()  # trials per switch port type used
        # Taken once: config.json is rewritten when the sweep ends, and must keep saying
        # which code it started with (a commit made meanwhile is not its code).
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.git = git_revision()
        self.write_config()
        self.capacity = CsvLog(self.run_dir / "capacity.csv", CAPACITY_COLUMNS)
        self.results = CsvLog(self.run_dir / "results.csv", COLUMNS)
        self.trials = CsvLog(self.run_dir / "trials.csv", TRIAL_COLUMNS)
        self.latency = CsvLog(self.run_dir / "latency.csv", LATENCY_COLUMNS)
        self.rows: list[dict] = []
        self.traces: dict[float, Path] = {}
        self.per_core: dict[str, float] = {}  # best throughput per core seen, per NF

    def write_config(self) -> None:
        """``config.json``: the arguments (the core share and work resolved), the costs,
        the trace, and how many trials ran on each switch port type."""
        write_config(self.run_dir, vars(self.args), points=len(self.points),
                     costs=self.costs.to_json(),
                     trace=self.trace_summary.to_json() if self.trace_summary else None,
                     port_types=dict(self.port_types), started=self.started, git=self.git)

    def trace(self, skew: float) -> Path:
        """One trace per skew, long enough for the longest trial (or the imported one)."""
        if self.imported is not None:
            return self.imported
        if skew not in self.traces:
            a = self.args
            longest = a.rate if a.mode == "fixed" else a.max_rate
            packets = max(MIN_TRIAL_PACKETS, math.ceil(longest * a.duration) + 1)
            spec = TraceSpec(packets=packets, flows=a.flows, skew=skew, seed=a.seed)
            path = self.run_dir / "traces" / f"skew{skew:g}.pcap"
            path.parent.mkdir(exist_ok=True)
            write_pcap(path, make_trace(spec), longest)
            self.traces[skew] = path
        return self.traces[skew]

    def trial(self, point: Point, rate: float, bar: tqdm, repeat: int | str = "") -> dict:
        """One trial of ``point`` at ``rate`` (``repeat``: which search, or "load50" ...)."""
        a = self.args
        count = max(MIN_TRIAL_PACKETS, math.ceil(rate * a.duration))
        transfer = self.costs.rounds(point.transfer_us) if point.transfer_us else 0
        config = TrialConfig(
            nf=point.nf, nf_params=self.costs.nf_params(), cores=point.cores, rate_pps=rate,
            spin_ns=self.costs.ns_per_round, strategy=point.strategy, packets=count,
            core_share=a.core_share, placement=a.placement, port_type=a.port_type,
            warmup_s=a.warmup,
            transfer_work=transfer, lock_quota_aware=point.quota_aware is True,
            inflight=a.inflight,
            store_delay_us=point.store_delay_us, loss=point.loss, loss_seed=a.loss_seed,
            recovery=a.recovery == "on" and get_strategy(point.strategy).recovery)
        sub = f"r{repeat}" if isinstance(repeat, int) else repeat  # r0, r1 ... or load50
        folder = self.run_dir / "trials" / point.name / sub
        trial_dir = folder / f"rate{rate:.0f}"
        again = 1
        while trial_dir.exists():  # a retry or a confirmation at the same rate
            again += 1
            trial_dir = folder / f"rate{rate:.0f}-{again}"
        row = {**point.row(), "repeat": repeat, "target_pps": round(rate, 1),
               "trial": str(trial_dir.relative_to(self.run_dir))}
        try:
            row.update(run_trial(config, self.trace(point.skew), trial_dir))
        except TrialError as err:
            row.update(error=str(err), loss=1.0, delivered_pps=0.0)
        self.trials.append(row)
        if row.get("port_type"):
            self.port_types[row["port_type"]] += 1
        bar.set_postfix_str(f"{point.name} @ {rate:.0f} pps: loss {100 * judged_loss(row):.1f} %")
        return row

    def measure_core(self, point: Point, bar: tqdm) -> float:
        """One core's capacity for ``point``'s NF (``single``: one core, no history),
        measured once per NF; the first probe of its searches starts from it."""
        bar.set_postfix_str(f"{point.nf}: measuring one core's capacity")
        config = TrialConfig(nf=point.nf, nf_params=self.costs.nf_params(), cores=1,
                             spin_ns=self.costs.ns_per_round, strategy="single",
                             core_share=self.args.core_share, placement=self.args.placement,
                             port_type=self.args.port_type)
        try:
            found = measure_capacity(config, self.trace(point.skew),
                                     self.run_dir / "capacity" / point.nf)
        except TrialError as err:
            self.capacity.append({"nf": point.nf, "error": str(err)})
            return self.args.max_rate  # the search still brackets, from the top
        self.capacity.append({"nf": point.nf, **found.to_json()})
        self.per_core[point.nf] = found.per_core_pps
        return found.per_core_pps

    def measure(self, point: Point, bar: tqdm, repeat: int = 0) -> dict:
        """One search of ``point`` (its ``repeat``-th), or its one trial in fixed mode."""
        a = self.args
        share = (self.trace_summary.top_flow_share if self.trace_summary
                 else flow_shares(a.flows, point.skew)[0])
        row = {**point.row(), "mode": a.mode, "repeat": repeat,
               "trace": a.trace.name if a.trace else "", "top_flow_share": round(share, 3)}
        started = time.monotonic()
        if a.mode == "fixed":
            best = self.trial(point, a.rate, bar, repeat)
            steps = [(a.rate, best)]
            throughput = best.get("delivered_pps", 0.0)
            ceiling = False
        else:
            per_core = self.per_core.get(point.nf) or a.probe_per_core \
                or self.measure_core(point, bar)
            start = min(a.max_rate, max(100.0, PROBE_OVER_CAPACITY * per_core * point.cores))
            search = find_mlffr(lambda rate: self.trial(point, rate, bar, repeat), start,
                                threshold=a.threshold, precision=a.precision,
                                max_steps=a.max_steps)
            best, steps, throughput, ceiling = (search.best, search.steps, search.mlffr,
                                                search.ceiling)
            # Rates whose trial was unfaithful twice: the search stayed below them.
            row["unfaithful_rates"] = [round(rate) for rate in search.unfaithful]
            row["confirmed"] = search.confirmed
            row["refuted_rates"] = [round(rate) for rate in search.refuted]
            if throughput and not ceiling:
                self.per_core[point.nf] = max(self.per_core.get(point.nf, 0.0),
                                              throughput / point.cores)
        row.update(point_row(steps, best, throughput, ceiling, threshold=a.threshold,
                             fixed=a.mode == "fixed"))
        row["seconds"] = round(time.monotonic() - started, 1)
        return row

    def measure_latency(self, point: Point, searches: list[dict], bar: tqdm) -> None:
        """One trial at each ``--latency-loads`` fraction of the point's median MLFFR."""
        summary = aggregate(searches)[0]
        mlffr = float(summary["throughput_pps"] or 0)
        if self.args.mode != "mlffr" or summary.get("error") or not mlffr:
            return
        for load in self.args.latency_loads:
            rate = load * mlffr
            if rate < 10:
                continue
            result = self.trial(point, rate, bar, f"load{100 * load:g}")
            self.latency.append({**point.row(), "load": load, "mlffr_pps": mlffr,
                                 **{k: v for k, v in result.items()
                                    if k in LATENCY_COLUMNS and k not in point.row()}})

    def repeats(self) -> int:
        """Searches per point: ``--repeats`` in mlffr mode; fixed mode measures once."""
        return self.args.repeats if self.args.mode == "mlffr" else 1

    def run(self) -> list[dict]:
        """Every point's searches (``results.csv``), then its latency trials; returns the
        search rows."""
        try:
            with tqdm(total=len(self.points) * self.repeats(), desc=self.kind, unit="search",
                      file=sys.stderr, dynamic_ncols=True) as bar:
                for point in self.points:
                    searches = []
                    for repeat in range(self.repeats()):
                        row = self.measure(point, bar, repeat)
                        self.results.append(row)
                        searches.append(row)
                        self.rows.append(row)
                        bar.update()
                        tqdm.write(summary_line(row), file=sys.stderr)
                    self.measure_latency(point, searches, bar)
        finally:  # an interrupted sweep too: which port types its trials used
            self.write_config()
        return self.rows


def run_sweep(kind: str, args: argparse.Namespace,
              root: Path | None = None) -> tuple[int, Path | None]:
    """Run a sweep into ``<root or --results-dir>/<kind>/<timestamp>``; print the table
    and the plots' paths. Returns the exit status (0, 1 when a point failed, 2 when it
    could not start, 130 on Ctrl-C) and the folder (None when none was made)."""
    started = time.monotonic()
    if root is not None:
        args.results_dir = root
    try:
        sweep = Sweep(kind, args)
    except TraceError as err:
        print(f"{kind}: {err}", file=sys.stderr)
        return 2, None
    repeats = sweep.repeats()
    print(f"{kind}: {len(sweep.points)} points x {repeats} search{'es' * (repeats > 1)} -> "
          f"{sweep.run_dir}", file=sys.stderr)
    if sweep.trace_summary is not None:
        print(sweep.trace_summary.table(), file=sys.stderr)
    try:
        rows = sweep.run()
    except KeyboardInterrupt:
        print(f"\n{kind}: interrupted; finished points are in {sweep.run_dir / 'results.csv'}",
              file=sys.stderr)
        return 130, sweep.run_dir
    by_point = aggregate(rows)
    print()
    print(table(by_point))
    try:
        for path in plot_run(sweep.run_dir):
            print(f"plot: {path}")
    except ValueError as err:
        print(f"{kind}: no plot: {err}", file=sys.stderr)
    elapsed = round(time.monotonic() - started, 1)
    print(f"results: {sweep.run_dir}  ({elapsed:.0f} s)")
    (sweep.run_dir / "summary.json").write_text(
        json.dumps(sweep_summary(by_point, elapsed), indent=1) + "\n")
    return (1 if any(r.get("error") for r in by_point) else 0), sweep.run_dir


def main(kind: str, args: argparse.Namespace) -> int:
    """Run a sweep (:func:`run_sweep`) after checking the machine; its exit status."""
    if (status := start_experiment(kind)) is not None:
        return status
    return run_sweep(kind, args)[0]
