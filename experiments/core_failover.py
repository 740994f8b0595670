"""Core failover under SCR: kill a core mid-run, the others carry on, a replacement rejoins.

SCR with ``N`` cores (default 4), loss recovery on and the controller watching the cores'
heartbeats (``TrialConfig.watch_cores``). The offered rate is ``--load`` (0.75) of what the
N-1 survivors can carry, from the configuration's capacity measured at start-up
(``experiments.runtime.capacity``; ``--rate`` sets a rate instead), so that the experiment is the
same on a fast and a slow machine. While the trace plays at that rate, the trial

1. **kills** core ``--core`` with SIGKILL ``--kill-at`` seconds into the traffic. The
   packets sprayed to it from then on are lost. Their records still travel in the other
   cores' histories, and the dead core's record ring stays readable. When its heartbeats
   have stopped for ``--timeout-ms``, the controller sends the shim a spray command:
   spray over the N-1 survivors, each frame still carrying every record since its core's
   previous frame. A survivor whose gap outgrows its history reads the records from its
   peers' rings.
2. **replaces** it ``--rejoin-at`` seconds in: a new worker on the same port copies a live
   peer's replica at a known sequence number (``nfs.cores.recovery.join``), then beats. The
   controller sees the port alive again and tells the shim to spray over all N cores. The
   replacement's first packet reveals the gap since the snapshot, and it fetches that.

Checks: every core's final state, the replacement's too, equals one core processing every
sequenced packet (``check_equivalent``, strict), or at least is consistent with the ground
truth (``check_consistent``: equal modulo records that no core ever received). The
replicas are equal to each other. The delivered rate is back to 90 % of the expected rate
within 2 s of the kill (100 ms bins, as in ``failover.py``). The controller saw the death
and the rejoin, once each. All must hold, except under overload (``--load`` above 1), where
packets are dropped (counted by cause) and records may be lost at every core: there the
states must be consistent and equal to each other, and strict equivalence and the rate
are reported, not required.

Results: ``results/core_failover/<timestamp>/`` with ``config.json`` (arguments, the costs
in µs and spin rounds, the measured capacity), ``capacity/`` (the probe trials),
``trace.pcap`` (or ``traces/`` with an imported ``--trace``), ``timeline.csv``,
``core_failover.json`` (actions, the controller's events, checks, losses by cause, fetch
latency), ``core_failover.png`` (drawn from those two files by :func:`plot_core_failover`)
and ``trial/`` (every process's results and logs).

Usage (as root)::

    sudo python experiments/core_failover.py
    sudo python experiments/core_failover.py --load 1.5          # overload the survivors
    sudo python experiments/core_failover.py --cores 3 --kill-at 2 --rejoin-at 5
    sudo python experiments/core_failover.py --trace capture.pcapng

Started with any Python, it re-executes itself in the project's virtual environment.

Caveats: the killed core's own verdict log dies with it; the packets it processed before
the kill are judged by what reached the sink. Packets sprayed to it between the kill and
the controller's spray command are lost (``lost_at_dead_core``), which is the price of
detection by heartbeat timeout. Their updates are not lost: the other cores' histories
carry them.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse
import json
import math
import threading
import time
from dataclasses import dataclass, replace

import matplotlib

matplotlib.use("Agg")  # no display on a testbed machine
import matplotlib.pyplot as plt
from tabulate import tabulate

from controller.dispatch import EVENTS_FILE
from experiments.failover import (
    BIN_S,
    RECOVERY_LIMIT_S,
    TIMELINE_CSV,
    plot_rates,
    read_timeline,
    recovery_time,
    timeline,
    write_timeline,
)
from experiments.runtime.argtypes import (
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
)
from experiments.runtime.calibration import DEFAULT_WORK_US
from experiments.runtime.capacity import add_run_flags, prepare_run
from experiments.runtime.trial import (
    Testbed,
    TrialConfig,
    TrialError,
    collect,
    read_ground_truth,
    read_int_csv,
    read_result,
    start_experiment,
)
from experiments.workload.trace_files import TraceError
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from nfs import NF_CLASSES, make_nf
from nfs.base import PASS
from nfs.oracle import SCR
from nfs.reference import run_reference
from topologies.scr_topo import PortPlan

RESULT_JSON = "core_failover.json"
DEFAULT_LOAD = 0.75  # of the survivors' capacity: they carry the traffic with headroom
PLOT = "core_failover.png"


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
            overload: bool = False) -> tuple[dict, list[dict]]:
    """Check a finished run with faults (``actions`` done of the ``planned`` ones);
    ``(result, timeline rows)``. With ``overload`` (offered more than the survivors can
    carry) packets may be dropped and records lost at every core: the states must still be
    consistent with the ground truth and equal to each other, and the rate cannot come back
    to what the reference passes, so neither strict equivalence nor the rate is required."""
    trial_dir = Path(trial_dir)
    trial = collect(config, trace_path, trial_dir, window)
    nf = make_nf(config.nf, **config.nf_params)
    events = read_result(trial_dir / EVENTS_FILE)
    truth, trace_ids = read_ground_truth(trial_dir, SCR)
    sequenced = [(seq, tid, ts) for seq, (tid, (_pkt, ts))
                 in enumerate(zip(trace_ids, truth.packets, strict=True))]
    arrivals = read_int_csv(trial_dir / "sink_log.csv")  # trace_id, t_ns
    reference = run_reference(nf, truth.packets)
    cores = {i: read_result(trial_dir / f"core{i}.json") for i in range(config.cores)
             if (trial_dir / f"core{i}.json").exists()}

    def to_s(ns: float) -> float:
        return (ns - start_ns) / 1e9

    kills = [a for a in actions if a["action"] == "kill"]
    rejoins = [a for a in actions if a["action"] == "rejoin"]
    rows = timeline(to_s(kills[0]["t_ns"]) if kills else 0.0,
                    to_s(sequenced[0][2]) if sequenced else 0.0,
                    to_s(sequenced[-1][2]) if sequenced else 0.0,
                    [to_s(ts) for _s, _t, ts in sequenced],
                    [to_s(ts) for s, _t, ts in sequenced if reference.verdicts[s] == PASS],
                    [to_s(t) for _tid, t in arrivals])
    # The cores stop beating when they exit after the run: events after the traffic are
    # the end of the run, not failures.
    end_ns = sequenced[-1][2] if sequenced else 0
    controller = [{**e, "t_s": round(to_s(e["t_monotonic"] * 1e9), 4)}
                  for e in events.get("events", []) if e["t_monotonic"] * 1e9 <= end_ns]
    port_of = {i: PortPlan(config.cores).core_port(i) for i in range(config.cores)}

    # Losses by cause: injected at dispatch, sprayed to a dead core, dropped by a full
    # core queue, malformed; the rest reached a core (processed; the dead cores' own
    # processing is known only through the sink).
    lost = set(truth.dropped)
    sprayed = truth.cores
    dead_windows = []  # (core, from ns, to ns): a core's packets are lost in there
    for kill in kills:
        joined = next((a["ready_ns"] for a in rejoins
                       if a["core"] == kill["core"] and a["t_ns"] > kill["t_ns"]), None)
        dead_windows.append((kill["core"], kill["t_ns"], joined or float("inf")))
    at_dead = sum(1 for s, _t, ts in sequenced if s not in lost and any(
        sprayed[s] == c and lo <= ts < hi for c, lo, hi in dead_windows))

    per_kill = []
    for kill in kills:
        kill_s = to_s(kill["t_ns"])
        port = port_of[kill["core"]]
        dead_event = next((e for e in controller if port in e["dead_ports"]
                           and e["t_s"] >= kill_s), None)
        per_kill.append({
            "core": kill["core"], "kill_s": round(kill_s, 4),
            "detected_s": round(dead_event["t_s"] - kill_s, 4) if dead_event else None,
            "recovery_s": recovery_time(rows, kill_s),
        })
    per_rejoin = []
    for rejoin in rejoins:
        t_s, port = to_s(rejoin["t_ns"]), port_of[rejoin["core"]]
        back = next((e for e in controller if port in e["joined_ports"] and e["t_s"] >= t_s),
                    None)
        state = cores.get(rejoin["core"], {})
        per_rejoin.append({
            "core": rejoin["core"], "start_s": round(t_s, 4),
            "ready_s": round(to_s(rejoin["ready_ns"]) - t_s, 4),
            "sprayed_again_s": round(back["t_s"] - t_s, 4) if back else None,
            "joined_at_seq": state.get("recovery", {}).get("joined_at"),
            "processed_after": state.get("stats", {}).get("processed", 0),
        })
    states = [c["state"] for c in cores.values()]
    checks = {
        "every_fault_done": len(actions) == len(planned),
        # Equal to one core processing every sequenced packet (nothing lost anywhere)...
        "states_equal_reference": bool(trial["check_equivalent"]),
        # ...or at least modulo records the ground truth shows no core ever had.
        "consistent": bool(trial["check_consistent"]),
        "replicas_equal": len(states) == config.cores and all(s == states[0] for s in states),
        "every_kill_detected": all(k["detected_s"] is not None for k in per_kill),
        "rate_recovered": all(k["recovery_s"] is not None
                              and k["recovery_s"] < RECOVERY_LIMIT_S for k in per_kill),
        "every_rejoin_sprayed": all(r["sprayed_again_s"] is not None
                                    and r["processed_after"] > 0 for r in per_rejoin),
    }
    required = [k for k in checks
                if not overload or k not in ("states_equal_reference", "rate_recovered")]
    result = {
        "nf": config.nf, "cores": config.cores, "rate_pps": config.rate_pps,
        "loss_rate": config.loss, "offered_pps": trial["offered_pps"], "sent": trial["sent"],
        "sequenced": trial["sequenced"], "sink_received": trial["sink_received"],
        "kills": per_kill, "rejoins": per_rejoin, "controller_events": controller,
        "dropped": {
            "injected": len(lost),
            "at_dead_core": at_dead,
            "core_queue_full": trial["core_rx_dropped"],
            "malformed": trial["malformed_shim"] + trial["malformed_cores"],
        },
        "processed_logged": trial["processed"],
        "recovered_records": trial["recovered"],
        "lost_everywhere": trial["lost_everywhere"],
        "fetches": trial["fetches"],
        "fetch_timeouts": trial["fetch_timeouts"],
        "fetch_us_p50": trial["fetch_us_p50"],
        "fetch_us_p99": trial["fetch_us_p99"],
        "check": {k: trial[k] for k in ("check_equivalent", "check_consistent",
                                        "check_verdict_mismatches", "check_chain_mismatches",
                                        "check_diverged_replicas", "check_problems",
                                        "faithful", "bottleneck")},
        "overload": overload,
        "checks": checks,
        "required": required,
        "passed": all(checks[k] for k in required),
    }
    return result, rows


# --- the plot, from the files ------------------------------------------------------------


def plot_core_failover(run_dir: Path) -> Path:
    """The delivered rate over time through the kills and rejoins (``timeline.csv`` and
    ``core_failover.json``)."""
    run_dir = Path(run_dir)
    rows = read_timeline(run_dir / TIMELINE_CSV)
    result = json.loads((run_dir / RESULT_JSON).read_text())
    if not rows:
        raise ValueError(f"{run_dir / TIMELINE_CSV} has no rows")
    fig, ax = plt.subplots(figsize=(9, 4.2))
    plot_rates(ax, rows)
    for i, kill in enumerate(result["kills"]):
        ax.axvline(kill["kill_s"], color="tab:red", label="core killed" if not i else None)
    for i, rejoin in enumerate(result["rejoins"]):
        ax.axvline(rejoin["start_s"], color="tab:purple",
                   label="replacement started" if not i else None)
    for i, event in enumerate(result["controller_events"]):
        ax.axvline(event["t_s"], color="tab:green", linestyle="--",
                   label="controller: respray" if not i else None)
    ax.set(xlabel="time since the traffic started (s)",
           ylabel=f"packets/s ({BIN_S * 1000:g} ms bins)", ylim=(0, None),
           title=f"SCR core failover: {result['nf']}, {result['cores']} cores at "
                 f"{result['rate_pps']:g} pps, {result['dropped']['at_dead_core']} packets "
                 "lost at the dead core")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    path = run_dir / PLOT
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def table(result: dict) -> str:
    rows = [["offered / sequenced / delivered",
             f"{result['offered_pps']:.0f} pps / {result['sequenced']} / "
             f"{result['sink_received']}" + (" (overload)" if result.get("overload") else "")]]
    for k in result["kills"]:
        rows.append([f"core {k['core']} killed at {k['kill_s']:.2f} s",
                     f"controller resprayed after {k['detected_s']} s, rate back after "
                     f"{k['recovery_s']} s (limit {RECOVERY_LIMIT_S:g} s)"])
    for r in result["rejoins"]:
        rows.append([f"core {r['core']} replaced at {r['start_s']:.2f} s",
                     f"snapshot at seq {r['joined_at_seq']}, ready after {r['ready_s']} s, "
                     f"sprayed to again after {r['sprayed_again_s']} s, "
                     f"{r['processed_after']} packets since"])
    rows += [[f"dropped: {cause}", n] for cause, n in result["dropped"].items()]
    rows += [["records fetched from peers", result["recovered_records"]],
             ["fetch latency p50 / p99 (µs)",
              f"{result.get('fetch_us_p50')} / {result.get('fetch_us_p99')}"],
             ["records lost at every core", result["lost_everywhere"]]]
    required = result.get("required", list(result["checks"]))
    rows += [[f"check: {name}", ("ok" if ok else "FAILED" if name in required
                                 else "no (not required under overload)")]
             for name, ok in result["checks"].items()]
    return tabulate(rows, headers=["", "core failover"], tablefmt="github",
                    disable_numparse=True)


# --- one run -----------------------------------------------------------------------------


def run_with_faults(kind: str, config: TrialConfig, faults: list[Fault], duration_s: float,
                    run_dir: Path, trace_path: Path | None = None, skew: float = 1.0,
                    seed: int = 1, overload: bool = False) -> tuple[Path, dict]:
    """Play ``duration_s`` of traffic with ``faults`` into ``run_dir`` (made, with its
    config, by the caller): ``trace_path`` (a testbed trace), or a synthetic trace of
    ``skew``; ``(folder, result)``. The soak runs this too."""
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
                           injector.plan, bed.window, overload)
    write_timeline(run_dir / TIMELINE_CSV, rows)
    (run_dir / RESULT_JSON).write_text(json.dumps(result, indent=1) + "\n")
    plot_core_failover(run_dir)
    return run_dir, result


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The flags of a core-failover run (``bench_failover`` adds its own)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--nf", default="tb", choices=sorted(NF_CLASSES),
                        help="network function (tb's pass rate is steady: a clear plot)")
    parser.add_argument("--cores", type=positive_int, default=4)
    add_run_flags(parser, DEFAULT_LOAD, "offer this fraction of what the N-1 survivors can "
                  "carry (measured at start-up; above 1: an overload)", DEFAULT_WORK_US)
    parser.add_argument("--duration", type=positive_float, default=10.0,
                        help="seconds of traffic")
    parser.add_argument("--core", type=int, default=1, help="the core to kill")
    parser.add_argument("--kill-at", type=positive_float, default=3.0,
                        help="SIGKILL the core this many seconds into the traffic")
    parser.add_argument("--rejoin-at", type=positive_float, default=6.0,
                        help="start its replacement this many seconds into the traffic")
    parser.add_argument("--loss", type=fraction, default=0.0,
                        help="also drop this fraction of packets at the dispatch stage")
    parser.add_argument("--timeout-ms", type=positive_float, default=200.0,
                        help="the controller declares a core dead after this silence")
    parser.add_argument("--core-share", type=positive_float, default=0.1,
                        help="CPU quota of each core (fraction of a CPU)")
    parser.add_argument("--skew", type=non_negative_float, default=1.0,
                        help="the synthetic trace's flow skew")
    parser.add_argument("--seed", type=int, default=1, help="trace and loss seed")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where <kind>/<timestamp> folders go (default: results/)")
    return parser


def finish_args(parser: argparse.ArgumentParser, args: argparse.Namespace
                ) -> argparse.Namespace:
    """Check the flags together; ``args.config`` and ``args.faults`` from them."""
    if args.cores < 2:
        parser.error("--cores must be >= 2 (a core dies, another carries on)")
    try:
        args.config = TrialConfig(
            nf=args.nf, cores=args.cores, rate_pps=args.rate or 1.0,
            core_share=args.core_share, loss=args.loss, loss_seed=args.seed, recovery=True,
            watch_cores=True, failover_timeout_ms=args.timeout_ms, strategy="scr")
        args.faults = [Fault(args.core, args.kill_at, args.rejoin_at)]
        check_faults(args.faults, args.cores, args.duration)
    except ValueError as err:
        parser.error(str(err))
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser("core_failover", __doc__.split("\n\n")[0])
    return finish_args(parser, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (status := start_experiment("core_failover")) is not None:
        return status
    try:
        run_dir, imported, config, capacity, _costs = prepare_run(
            "core_failover", args, args.config, args.cores - 1)
        if capacity is not None:
            print(f"core_failover: one core carries {capacity.per_core_pps:.0f} pps here; "
                  f"offering {config.rate_pps:.0f} pps ({args.load:g} x {args.cores - 1} "
                  "survivors)", file=sys.stderr)
        run_dir, result = run_with_faults(
            "core_failover", config, args.faults, args.duration, run_dir, imported,
            args.skew, args.seed, overload=config.rate_pps > (
                capacity.rate(1.0, args.cores - 1) if capacity else math.inf))
    except KeyboardInterrupt:
        print("\ncore_failover: interrupted", file=sys.stderr)
        return 130
    except TraceError as err:
        print(f"core_failover: {err}", file=sys.stderr)
        return 2
    except (TrialError, ValueError) as err:
        print(f"core_failover: {err}", file=sys.stderr)
        return 1
    print(table(result))
    print(f"\nplot: {run_dir / PLOT}\nresults: {run_dir}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
