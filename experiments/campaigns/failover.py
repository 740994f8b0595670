"""The primary-backup failover scenario: kill the primary NF instance mid-run; its backup,
which holds every update the primary forwarded, takes over.

One instance of the ``single`` strategy (one emulated core, a private state) is the
primary, on core port 10; a backup worker on port 11 gets no packets, only the primary's
access-order log (``nfs.cores.replication``), and the primary forwards a packet only once
the backup has applied its update. The controller runs the ``pb`` pipeline and watches
both instances' heartbeats (:class:`FailoverTestbed`). :func:`run_failover` plays a trace,
SIGKILLs the primary ``kill_at_s`` into it, and judges the run (:func:`analyze`) by the
fault experiments' pass rule (``experiments.analysis.faults``): the state checks (the
backup equal to the reference over what it holds, output commit, one failover from the
primary's port to the backup's, the primary killed) and the rate back within 2 s.

It also holds what every fault experiment's command line shares (:func:`add_fault_flags`,
:func:`add_kill_flags`); the figure is ``experiments.plots.timeline``'s.

Caveats: the primary dies by SIGKILL, so its own results die with it; what it did is
judged from the sink and the backup. The kill, heartbeats, shim time stamps and sink
arrivals share one clock (``CLOCK_MONOTONIC``).
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from dataclasses import replace
from pathlib import Path

from controller.dispatch import DEFAULT_FAILOVER_TIMEOUT_MS, EVENTS_FILE
from experiments.analysis.collect import read_int_csv, read_result
from experiments.analysis.errors import TrialError
from experiments.analysis.faults import (
    RATE,
    STATE,
    TIMELINE_CSV,
    PassRule,
    Traffic,
    pre_fault_ratio,
    read_traffic,
    recovery_time,
    write_timeline,
)
from experiments.argtypes import non_negative_float, positive_float
from experiments.plots.timeline import plot_timeline
from experiments.runtime.config import TrialConfig
from experiments.runtime.cpu_quota import CoreQuotas
from experiments.runtime.testbed import Testbed
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from nfs import make_nf
from nfs.base import NetworkFunction
from nfs.oracle import GroundTruth
from nfs.reference import StateView, check_views
from sequencer.wire.heartbeat import DEFAULT_HEARTBEAT_MS
from topologies.scr_topo import NF, PortPlan

DEFAULT_LOAD = 0.5  # of one core's capacity: the primary also pays for replication
REPLICATION_ADDRESS = "127.0.0.1:7651"  # the NF host's own loopback (its namespace)
PRIMARY, BACKUP = "core0", "backup"
RESULT_JSON = "failover.json"
PLOT = "failover.png"
#: The pass rule's parts of the checks (``experiments.analysis.faults``): no strict check,
#: the updates in flight at the kill are lost by design.
CHECK_PARTS = {"state_equal": STATE, "skip_is_gaps": STATE, "no_state_lost": STATE,
               "recovered": RATE, "one_failover": STATE, "backup_took_over": STATE,
               "primary_killed": STATE}
RULE = PassRule()


class FailoverTestbed(Testbed):
    """The testbed with a backup instance: ``single`` on port 10 replicating to a backup on
    port 11, and the controller's ``pb`` pipeline with its watchdog."""

    def __init__(self, config: TrialConfig, out_dir: Path,
                 timeout_ms: float = DEFAULT_FAILOVER_TIMEOUT_MS):
        if config.strategy != "single" or config.cores != 1:
            raise ValueError("a failover trial runs the single strategy on one core")
        if not timeout_ms > 0:
            raise ValueError(f"failover timeout must be > 0 ms, got {timeout_ms}")
        super().__init__(config, out_dir)
        self.plan = PortPlan(2)  # port 10: the primary, port 11: its backup
        self.timeout_ms = timeout_ms
        self.backup = None

    @property
    def controller_plan(self) -> dict:
        return {**super().controller_plan, "mode": "pb", "failover_timeout_ms": self.timeout_ms}

    def _start(self, name, host_name, argv, pass_fds=()):
        if name == PRIMARY:  # core 0 is the primary: it replicates before it forwards
            argv = [*argv, "--replicate-to", REPLICATION_ADDRESS]
        return super()._start(name, host_name, argv, pass_fds)

    def _start_processes(self) -> None:
        c = self.config
        # First, so that it listens when the primary connects (which retries anyway).
        self.backup = self._start(BACKUP, NF, self._python(
            "nfs.worker", "--iface", self.plan.core_iface(1), "--core", 0, "--cores", 1,
            "--nf", c.nf, "--nf-params", json.dumps(c.nf_params), "--strategy", "single",
            "--rcvbuf", c.rx_queue_bytes, "--backup-listen", REPLICATION_ADDRESS))
        super()._start_processes()  # waits until every process, the backup too, is ready
        self.workers.append(self.backup)
        if c.core_share is not None:  # the backup is an emulated core of its own
            quota = self._stack.enter_context(
                CoreQuotas(1, c.core_share, c.quota_period_us))
            quota.add(0, self.backup.pid)

    def kill_primary(self) -> int:
        """SIGKILL the primary, by its handle; the monotonic time of the kill (ns)."""
        primary = self.workers[0]
        now = time.monotonic_ns()
        primary.popen.kill()
        return now


# --- analysis (files in, numbers out) ----------------------------------------------------


def held_seqs(applied: int, gaps) -> set[int]:
    """The sequence numbers whose updates a replica holds: up to ``applied``, minus gaps."""
    held = set(range(applied + 1))
    for lo, hi in gaps:
        held -= set(range(lo, hi + 1))
    return held


def _backup_checks(nf: NetworkFunction, trial_dir: Path, truth: GroundTruth,
                   traffic: Traffic, backup: dict) -> tuple[dict, object, frozenset, list]:
    """(a) the backup against the reference without what no instance applied, and (b)
    output commit: whatever reached the sink, the backup holds. ``(checks, the check,
    the updates lost, delivered seqs the backup lacks)``."""
    packets = truth.packet_map()
    # seq,trace_id,verdict,chain,done_ns
    backup_log = read_int_csv(trial_dir / f"{BACKUP}_log.csv")
    held = held_seqs(backup["applied"], backup.get("gaps", []))
    skip = frozenset(set(packets) - held)
    gap_set = set(range(len(packets))) - held_seqs(len(packets) - 1, backup.get("gaps", []))
    view = StateView("backup", backup["state"], backup["applied"], skip)
    check = check_views(nf, packets, ((s, 0, v) for s, _t, v, *_rest in backup_log), [view],
                        {0: 0})
    seq_of = {tid: seq for seq, tid, _ts in traffic.sequenced}
    delivered = [seq_of.get(tid) for tid, _t in traffic.arrivals]
    not_held = sorted(s for s in delivered if s is None or s not in held)
    checks = {"state_equal": check.equivalent, "skip_is_gaps": skip == frozenset(gap_set),
              "no_state_lost": not not_held}
    return checks, check, skip, not_held


def analyze(trial_dir: Path, config: TrialConfig, start_ns: int, kill_ns: int,
            primary_port: int, backup_port: int, primary_returncode: int | None
            ) -> tuple[dict, list[dict]]:
    """Check a finished failover trial by :data:`RULE`; ``(result, timeline rows)``."""
    trial_dir = Path(trial_dir)
    nf = make_nf(config.nf, **config.nf_params)
    backup = read_result(trial_dir / f"{BACKUP}.json")
    events = read_result(trial_dir / EVENTS_FILE)
    sink = read_result(trial_dir / "sink.json")
    gen = read_result(trial_dir / "generator.json")
    truth, traffic = read_traffic(trial_dir, nf, start_ns)
    checks, check, skip, not_held = _backup_checks(nf, trial_dir, truth, traffic, backup)

    # (c) the delivered rate over time against what the reference passes.
    kill_s = traffic.to_s(kill_ns)
    rows = traffic.rows(kill_s)
    recovery = recovery_time(rows, kill_s)
    pre_ratio = pre_fault_ratio(rows, kill_s)
    failovers = traffic.events(events.get("events", []))
    # The first packet the backup delivered: when the traffic really resumed.
    resumed = traffic.first_arrival(failovers[0]["t_monotonic"] * 1e9 if failovers
                                    else math.inf)
    received = {tid for tid, _t in traffic.arrivals}
    lost_passes = sum(1 for s, tid, _ts in traffic.sequenced
                      if traffic.passes[s] and tid not in received)
    checks.update({
        "recovered": RULE.rate_back([recovery]),
        "one_failover": [(e["from_port"], e["to_port"]) for e in failovers]
        == [(primary_port, backup_port)],
        "backup_took_over": backup.get("took_over_at") is not None,
        "primary_killed": primary_returncode == -9,
    })
    result = {
        "nf": config.nf, "nf_params": config.nf_params, "rate_pps": config.rate_pps,
        "offered_pps": round(gen["offered_pps"], 1), "sent": gen["sent"],
        "sequenced": len(traffic.sequenced), "sink_received": sink["received"],
        "kill_s": round(kill_s, 4), "kill_monotonic_ns": kill_ns,
        "controller_events": failovers,
        "detection_s": round(failovers[0]["t_s"] - kill_s, 4) if failovers else None,
        "resumed_s": round(traffic.to_s(resumed) - kill_s, 4) if resumed is not None else None,
        "recovery_s": recovery, "recovery_limit_s": RULE.limit_s,
        "lost_updates": len(skip), "lost_passes": lost_passes,
        "lost_updates_ms": round(len(skip) / config.rate_pps * 1000, 1),
        "delivered_not_held": not_held[:20],
        "pre_kill_delivered_ratio": pre_ratio,
        "backup": {k: backup.get(k) for k in ("applied", "log_last", "took_over_at", "gaps",
                                              "stats", "rx_dropped")},
        "heartbeats": events.get("heartbeats", {}),
        "check": check.summary(),
        "checks": checks,
        **RULE.verdict(checks, CHECK_PARTS),
        "primary_returncode": primary_returncode,
    }
    return result, rows


# --- the plot, from the files ------------------------------------------------------------


def _failover_marks(ax, result: dict) -> str:
    ax.axvline(result["kill_s"], color="tab:red", label="primary killed")
    for event in result.get("controller_events", []):
        ax.axvline(event["t_s"], color="tab:green", linestyle="--",
                   label=f"controller: port {event['from_port']} -> {event['to_port']}")
    recovery = result.get("recovery_s")
    if recovery is not None:
        ax.axvspan(result["kill_s"], result["kill_s"] + recovery, color="tab:red", alpha=0.08,
                   label=f"recovery {recovery:.2f} s")
    return (f"primary-backup failover: {result['nf']} at {result['rate_pps']:g} pps, "
            f"{result['lost_updates']} updates lost at the kill")


def plot_failover(run_dir: Path) -> Path:
    """``failover.png``: the rates over time from ``timeline.csv``, the kill and the
    controller's failover from ``failover.json``."""
    return plot_timeline(run_dir, RESULT_JSON, PLOT, 8, _failover_marks)


# --- one run -----------------------------------------------------------------------------


def run_failover(config: TrialConfig, run_dir: Path, duration_s: float = 8.0,
                 kill_at_s: float = 3.0, timeout_ms: float = DEFAULT_FAILOVER_TIMEOUT_MS,
                 trace_path: Path | None = None, skew: float = 1.0,
                 seed: int = 1) -> tuple[Path, dict]:
    """Run one failover trial of ``config`` (the ``single`` strategy, one core) into
    ``run_dir`` (made, with its config, by the caller), on ``trace_path`` (a testbed trace)
    or a synthetic trace of ``skew``; ``(folder, result)``, also in ``failover.json``,
    ``timeline.csv`` and ``failover.png``."""
    if not 0 < kill_at_s < duration_s:
        raise ValueError(f"--kill-at must be inside the traffic (0..{duration_s} s), "
                         f"got {kill_at_s}")
    config = replace(config, packets=max(1, round(config.rate_pps * duration_s)))
    if trace_path is None:
        trace_path = run_dir / "trace.pcap"
        write_pcap(trace_path, make_trace(TraceSpec(packets=config.packets, skew=skew,
                                                    seed=seed)))
    trial_dir = run_dir / "trial"
    times: dict[str, int] = {}
    timers: list[threading.Timer] = []
    with FailoverTestbed(config, trial_dir, timeout_ms) as bed:
        def kill() -> None:
            times["kill"] = bed.kill_primary()

        def start() -> None:
            times["start"] = time.monotonic_ns()
            timer = threading.Timer(kill_at_s, kill)
            timer.daemon = True
            timers.append(timer)
            timer.start()

        try:
            bed.send_trace(trace_path, on_start=start)
        finally:
            for timer in timers:
                timer.cancel()
                if timer.is_alive():
                    timer.join()
        primary_rc = bed.workers[0].popen.poll()
    if "kill" not in times:
        raise TrialError("the primary was never killed: the traffic ended first")
    result, rows = analyze(trial_dir, config, times["start"], times["kill"],
                           bed.plan.core_port(0), bed.plan.core_port(1), primary_rc)
    write_timeline(run_dir / TIMELINE_CSV, rows)
    (run_dir / RESULT_JSON).write_text(json.dumps(result, indent=1) + "\n")
    plot_failover(run_dir)
    return run_dir, result


# --- the fault experiments' shared flags -------------------------------------------------


def add_fault_flags(parser: argparse.ArgumentParser, kind: str) -> None:
    """``--timeout-ms``, ``--core-share``, ``--seed``, ``--results-dir``: the flags of
    every fault experiment (``kind``: its results folder's name)."""
    parser.add_argument("--timeout-ms", type=positive_float,
                        default=DEFAULT_FAILOVER_TIMEOUT_MS,
                        help="the controller declares an instance dead after this much "
                             f"heartbeat silence (heartbeats every {DEFAULT_HEARTBEAT_MS:g} ms)")
    parser.add_argument("--core-share", type=positive_float, default=0.1,
                        help="CPU quota of each emulated core (a fraction of a CPU)")
    parser.add_argument("--seed", type=int, default=1, help="trace (and loss) seed")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help=f"where {kind}/<timestamp> folders go (default: results/)")


def add_kill_flags(parser: argparse.ArgumentParser, duration_s: float, victim: str) -> None:
    """``--duration``, ``--kill-at`` (SIGKILL ``victim``) and ``--skew``: one run's
    traffic and the instant of its kill."""
    parser.add_argument("--duration", type=positive_float, default=duration_s,
                        help="seconds of traffic")
    parser.add_argument("--kill-at", type=positive_float, default=3.0,
                        help=f"SIGKILL {victim} this many seconds into the traffic")
    parser.add_argument("--skew", type=non_negative_float, default=1.0,
                        help="flow-size skew of the synthetic trace (Zipf exponent)")
