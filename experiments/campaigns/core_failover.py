"""The SCR core-failover scenario: kill a core mid-run, the others carry on, a replacement
rejoins; the run behind ``core_failover.py``, ``soak.py`` and ``bench_failover.py``.

SCR with N cores, loss recovery on, and the controller watching the cores' heartbeats
(``TrialConfig.watch_cores``; :func:`fault_config`). :func:`run_with_faults` plays a trace
and runs a schedule of :class:`Fault` s on the live testbed (:class:`FaultInjector`): a
kill is a SIGKILL of the core's worker; when its heartbeats have stopped for the timeout,
the controller resprays over the survivors. A rejoin starts a new worker on the same port,
which copies a live peer's replica at a known sequence number, then beats; the controller
sprays over all N again. :func:`analyze` reads the run (the trial's checks from
``collect``, the timeline and each fault's detection and recovery from
``experiments.analysis.faults``) and judges it by the fault experiments' pass rule:
:func:`rule_for` (strict state and the rate back within 2 s, or under overload only the
consistent state), or the soak's :data:`SOAK_RULE`.

Also here: the schedules of faults (:func:`check_faults`, :func:`periodic_faults`), the
command line ``core_failover.py`` and ``bench_failover.py`` share (:func:`build_parser`,
:func:`finish_args`), and the soak's short MLFFR search (:func:`search_rate`).

Caveats: the killed core's own verdict log dies with it; the packets it processed are
judged by what reached the sink. Packets sprayed to it between the kill and the
controller's spray command are lost (``at_dead_core``), the price of detection by
heartbeat timeout; their updates are not, the other cores' histories carry them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from controller.dispatch import EVENTS_FILE
from experiments.analysis.collect import collect, read_result
from experiments.analysis.errors import TrialError
from experiments.analysis.faults import (
    RATE,
    STATE,
    STRICT,
    TIMELINE_CSV,
    PassRule,
    kill_reports,
    lost_at_dead_cores,
    read_traffic,
    rejoin_reports,
    write_timeline,
)
from experiments.analysis.mlffr import find_mlffr
from experiments.argtypes import fraction, positive_float, positive_int
from experiments.campaigns.failover import add_fault_flags, add_kill_flags
from experiments.campaigns.sweep import PROBE_OVER_CAPACITY
from experiments.plots.timeline import plot_timeline
from experiments.runtime.calibration import DEFAULT_WORK_US
from experiments.runtime.capacity import Capacity, add_run_flags, measure_capacity
from experiments.runtime.config import TrialConfig
from experiments.runtime.results import CsvLog
from experiments.runtime.testbed import Testbed
from experiments.runtime.trial import run_trial
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from nfs import NF_CLASSES, make_nf
from topologies.scr_topo import PortPlan

RESULT_JSON = "core_failover.json"
DEFAULT_LOAD = 0.75  # of the survivors' capacity: they carry the traffic with headroom
PLOT = "core_failover.png"
#: The pass rule's parts of the checks (``experiments.analysis.faults``).
CHECK_PARTS = {"every_fault_done": STATE, "states_equal_reference": STRICT,
               "consistent": STATE, "replicas_equal": STATE, "every_kill_detected": STATE,
               "rate_recovered": RATE, "every_rejoin_sprayed": STATE}
RULE = PassRule()
OVERLOAD_RULE = PassRule(strict=False, rate=False)
SOAK_RULE = PassRule(rate=False)
SEARCH_COLUMNS = ["target_pps", "offered_pps", "delivered_pps", "loss", "injected_loss",
                  "recovered", "check_equivalent", "check_consistent", "faithful", "error"]


def overloaded(capacity: Capacity | None, load: float) -> bool:
    """Whether a run offers more than the survivors carry: ``--load`` above 1 of their
    measured capacity (a ``--rate`` given instead is not judged an overload)."""
    return capacity is not None and load > 1


def rule_for(overload: bool) -> PassRule:
    """``core_failover``'s rule: :data:`OVERLOAD_RULE` under overload, else :data:`RULE`."""
    return OVERLOAD_RULE if overload else RULE


@dataclass(frozen=True)
class Fault:
    """Kill ``core`` at ``kill_s`` into the traffic; start its replacement at ``rejoin_s``
    (None: never)."""

    core: int
    kill_s: float
    rejoin_s: float | None = None

    def actions(self) -> list[tuple[float, str, int]]:
        out = [(self.kill_s, "kill", self.core)]
        if self.rejoin_s is not None:
            out.append((self.rejoin_s, "rejoin", self.core))
        return out


def check_faults(faults: list[Fault], cores: int, duration_s: float) -> None:
    """ValueError (one line) unless every fault fits the run and no core is killed twice
    at once, or left with no live peer to copy from."""
    for f in faults:
        if not 0 <= f.core < cores:
            raise ValueError(f"core {f.core} is not one of the {cores} cores")
        if not 0 < f.kill_s < duration_s:
            raise ValueError(f"kill time {f.kill_s} s is outside the traffic (0..{duration_s})")
        if f.rejoin_s is not None and not f.kill_s < f.rejoin_s < duration_s:
            raise ValueError(f"rejoin at {f.rejoin_s} s must come after the kill "
                             f"({f.kill_s} s) and before the end ({duration_s} s)")
    dead: set[int] = set()
    for _t, action, core in sorted(a for f in faults for a in f.actions()):
        if action == "kill":
            if core in dead:
                raise ValueError(f"core {core} is killed again before it rejoined")
            dead.add(core)
            if len(dead) >= cores:
                raise ValueError("every core would be dead at once")
        else:
            dead.discard(core)


def periodic_faults(cores: int, duration_s: float, every_s: float) -> list[Fault]:
    """A kill every ``every_s`` seconds from ``every_s`` on, the next core each time, each
    replaced half a period later; none in the last period (the run ends with all cores)."""
    if not every_s > 0:
        raise ValueError(f"the fault period must be > 0 s, got {every_s}")
    faults, k = [], 1
    while (k + 1) * every_s <= duration_s:
        faults.append(Fault((k - 1) % cores, k * every_s, (k + 0.5) * every_s))
        k += 1
    return faults


class FaultInjector(threading.Thread):
    """Runs the faults' kills and rejoins on the live testbed at their times (from
    ``start``), recording when each happened (monotonic ns)."""

    def __init__(self, bed: Testbed, faults: list[Fault]):
        super().__init__(name="faults", daemon=True)
        self.bed = bed
        self.plan = sorted(a for f in faults for a in f.actions())
        self.done: list[dict] = []
        self.errors: list[str] = []
        self.start_ns = 0
        self._stop_event = threading.Event()

    def begin(self) -> None:
        self.start_ns = time.monotonic_ns()
        self.start()

    def run(self) -> None:
        for at_s, action, core in self.plan:
            delay = self.start_ns / 1e9 + at_s - time.monotonic()
            if self._stop_event.wait(max(0.0, delay)):
                return
            t_ns = time.monotonic_ns()
            try:
                if action == "kill":
                    self.bed.kill_core(core)
                else:
                    self.bed.replace_core(core)
            except (TrialError, OSError) as err:
                self.errors.append(f"{action} core {core}: {err}")
                continue
            self.done.append({"action": action, "core": core, "t_ns": t_ns,
                              "ready_ns": time.monotonic_ns()})

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join()


# --- analysis ----------------------------------------------------------------------------


def analyze(trial_dir: Path, trace_path: Path, config: TrialConfig, start_ns: int,
            actions: list[dict], planned: list, window: dict | None,
            overload: bool = False, rule: PassRule | None = None) -> tuple[dict, list[dict]]:
    """Check a finished run with faults (``actions`` done of the ``planned`` ones) by
    ``rule`` (default: :func:`rule_for` ``overload``); ``(result, timeline rows)``."""
    rule = rule or rule_for(overload)
    trial_dir = Path(trial_dir)
    trial = collect(config, trace_path, trial_dir, window)
    truth, traffic = read_traffic(trial_dir, make_nf(config.nf, **config.nf_params), start_ns)
    cores = {i: read_result(trial_dir / f"core{i}.json") for i in range(config.cores)
             if (trial_dir / f"core{i}.json").exists()}
    kills = [a for a in actions if a["action"] == "kill"]
    rejoins = [a for a in actions if a["action"] == "rejoin"]
    rows = traffic.rows(traffic.to_s(kills[0]["t_ns"]) if kills else 0.0)
    # The cores stop beating when they exit after the run: events after the traffic are
    # the end of the run, not failures.
    controller = traffic.events(read_result(trial_dir / EVENTS_FILE).get("events", []),
                                until_ns=traffic.end_ns)
    port_of = {i: PortPlan(config.cores).core_port(i) for i in range(config.cores)}
    per_kill = kill_reports(traffic, rows, controller, kills, port_of)
    per_rejoin = rejoin_reports(traffic, controller, rejoins, port_of, cores)
    states = [c["state"] for c in cores.values()]
    checks = {
        "every_fault_done": len(actions) == len(planned),
        # Equal to one core processing every sequenced packet (nothing lost anywhere)...
        "states_equal_reference": bool(trial["check_equivalent"]),
        # ...or at least modulo records the ground truth shows no core ever had.
        "consistent": bool(trial["check_consistent"]),
        "replicas_equal": len(states) == config.cores and all(s == states[0] for s in states),
        "every_kill_detected": all(k["detected_s"] is not None for k in per_kill),
        "rate_recovered": rule.rate_back(k["recovery_s"] for k in per_kill),
        "every_rejoin_sprayed": all(r["sprayed_again_s"] is not None
                                    and r["processed_after"] > 0 for r in per_rejoin),
    }
    result = {
        "nf": config.nf, "cores": config.cores, "rate_pps": config.rate_pps,
        "loss_rate": config.loss, "offered_pps": trial["offered_pps"], "sent": trial["sent"],
        "sequenced": trial["sequenced"], "sink_received": trial["sink_received"],
        "kills": per_kill, "rejoins": per_rejoin, "controller_events": controller,
        # Losses by cause: injected at dispatch, sprayed to a dead core, dropped by a full
        # core queue, malformed; the rest reached a core.
        "dropped": {
            "injected": len(truth.dropped),
            "at_dead_core": lost_at_dead_cores(traffic, truth.cores, truth.dropped, kills,
                                               rejoins),
            "core_queue_full": trial["core_rx_dropped"],
            "malformed": trial["malformed_shim"] + trial["malformed_cores"],
        },
        "processed_logged": trial["processed"],
        "recovered_records": trial["recovered"],
        **{k: trial[k] for k in ("lost_everywhere", "fetches", "fetch_timeouts",
                                 "fetch_us_p50", "fetch_us_p99")},
        "check": {k: trial[k] for k in ("check_equivalent", "check_consistent",
                                        "check_verdict_mismatches", "check_chain_mismatches",
                                        "check_diverged_replicas", "check_problems",
                                        "faithful", "bottleneck")},
        "overload": overload,
        "checks": checks,
        **rule.verdict(checks, CHECK_PARTS, trial["faithful"]),
    }
    return result, rows


# --- the plot, from the files ------------------------------------------------------------


def _core_failover_marks(ax, result: dict) -> str:
    for i, kill in enumerate(result["kills"]):
        ax.axvline(kill["kill_s"], color="tab:red", label="core killed" if not i else None)
    for i, rejoin in enumerate(result["rejoins"]):
        ax.axvline(rejoin["start_s"], color="tab:purple",
                   label="replacement started" if not i else None)
    for i, event in enumerate(result["controller_events"]):
        ax.axvline(event["t_s"], color="tab:green", linestyle="--",
                   label="controller: respray" if not i else None)
    return (f"SCR core failover: {result['nf']}, {result['cores']} cores at "
            f"{result['rate_pps']:g} pps, {result['dropped']['at_dead_core']} packets "
            "lost at the dead core")


def plot_core_failover(run_dir: Path) -> Path:
    """The delivered rate over time through the kills and rejoins (``timeline.csv`` and
    ``core_failover.json``)."""
    return plot_timeline(run_dir, RESULT_JSON, PLOT, 9, _core_failover_marks)


# --- one run -----------------------------------------------------------------------------


def run_with_faults(kind: str, config: TrialConfig, faults: list[Fault], duration_s: float,
                    run_dir: Path, trace_path: Path | None = None, skew: float = 1.0,
                    seed: int = 1, overload: bool = False,
                    rule: PassRule | None = None) -> tuple[Path, dict]:
    """Play ``duration_s`` of traffic with ``faults`` into ``run_dir`` (made, with its
    config, by the caller): ``trace_path`` (a testbed trace), or a synthetic trace of
    ``skew``; judged by ``rule`` (default: :func:`rule_for` ``overload``). ``(folder,
    result)``, also in ``core_failover.json``, ``timeline.csv`` and ``core_failover.png``.
    ``kind`` names the experiment (``core_failover``, ``soak``); callers pass it, the run
    does not depend on it."""
    check_faults(faults, config.cores, duration_s)
    if trace_path is None:
        trace_path = run_dir / "trace.pcap"
        packets = max(1, round(config.rate_pps * duration_s))
        write_pcap(trace_path, make_trace(TraceSpec(packets=packets, skew=skew, seed=seed)))
    config = replace(config, packets=max(1, round(config.rate_pps * duration_s)))
    trial_dir = run_dir / "trial"
    with Testbed(config, trial_dir) as bed:
        injector = FaultInjector(bed, faults)
        try:
            bed.send_trace(trace_path, on_start=injector.begin)
        finally:
            injector.stop()
    if injector.errors:
        raise TrialError("; ".join(injector.errors))
    result, rows = analyze(trial_dir, trace_path, config, injector.start_ns, injector.done,
                           injector.plan, bed.window, overload, rule)
    write_timeline(run_dir / TIMELINE_CSV, rows)
    (run_dir / RESULT_JSON).write_text(json.dumps(result, indent=1) + "\n")
    plot_core_failover(run_dir)
    return run_dir, result


def search_rate(config: TrialConfig, run_dir: Path, seconds: float, max_rate: float,
                seed: int) -> float:
    """The MLFFR of ``config`` with no faults, by a short search that starts above the
    configuration's measured capacity; its trials in ``search.csv`` (the soak's rate)."""
    packets = math.ceil(max_rate * seconds) + 1
    trace = run_dir / "search" / "trace.pcap"
    trace.parent.mkdir(parents=True, exist_ok=True)
    write_pcap(trace, make_trace(TraceSpec(packets=packets, skew=1.0, seed=seed)), max_rate)
    capacity = measure_capacity(replace(config, watch_cores=False), trace,
                                run_dir / "search" / "capacity")
    log = CsvLog(run_dir / "search.csv", SEARCH_COLUMNS)

    def trial(rate: float) -> dict:
        plain = replace(config, watch_cores=False, rate_pps=rate,
                        packets=max(800, math.ceil(rate * seconds)))
        try:
            row = run_trial(plain, trace, run_dir / "search" / f"rate{rate:.0f}")
        except TrialError as err:
            row = {"error": str(err), "loss": 1.0}
        log.append({"target_pps": round(rate, 1), **row})
        print(f"soak: search {rate:.0f} pps: loss {100 * row['loss']:.2f} %", file=sys.stderr)
        return row

    start = min(max_rate, PROBE_OVER_CAPACITY * capacity.pps)
    search = find_mlffr(trial, start, precision=0.08, max_steps=4)
    if not search.mlffr:
        raise TrialError("no rate passed the MLFFR search")
    return search.mlffr


# --- the command line ----------------------------------------------------------------------


def fault_config(args: argparse.Namespace, rate_pps: float) -> TrialConfig:
    """The SCR configuration of a run with core faults, from its flags."""
    return TrialConfig(
        nf=args.nf, cores=args.cores, rate_pps=rate_pps, core_share=args.core_share,
        loss=args.loss, loss_seed=args.seed, recovery=True, watch_cores=True,
        failover_timeout_ms=args.timeout_ms, strategy="scr")


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The flags of a core-failover run (``bench_failover`` adds its own)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--nf", default="tb", choices=sorted(NF_CLASSES),
                        help="network function (tb's pass rate is steady: a clear plot)")
    parser.add_argument("--cores", type=positive_int, default=4)
    add_run_flags(parser, DEFAULT_LOAD, "offer this fraction of what the N-1 survivors can "
                  "carry (measured at start-up; above 1: an overload)", DEFAULT_WORK_US)
    add_kill_flags(parser, 10.0, "the core")
    parser.add_argument("--core", type=int, default=1, help="the core to kill")
    parser.add_argument("--rejoin-at", type=positive_float, default=6.0,
                        help="start its replacement this many seconds into the traffic")
    parser.add_argument("--loss", type=fraction, default=0.0,
                        help="also drop this fraction of packets at the dispatch stage")
    add_fault_flags(parser, prog)
    return parser


def finish_args(parser: argparse.ArgumentParser, args: argparse.Namespace
                ) -> argparse.Namespace:
    """Check the flags together; ``args.config`` and ``args.faults`` from them."""
    if args.cores < 2:
        parser.error("--cores must be >= 2 (a core dies, another carries on)")
    try:
        args.config = fault_config(args, args.rate or 1.0)
        args.faults = [Fault(args.core, args.kill_at, args.rejoin_at)]
        check_faults(args.faults, args.cores, args.duration)
    except ValueError as err:
        parser.error(str(err))
    return args
