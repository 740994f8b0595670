"""Failover trial: kill the primary NF instance mid-run; the backup takes over, no state lost.

One NF instance (the ``single`` strategy: one emulated core, a private state, every packet
through the shim) is the **primary**, on core port 10 (``nf-eth0``); a **backup** worker on
core port 11 (``nf-eth1``) gets no packets, only the primary's access-order log
(``nfs.cores.replication``): the primary forwards a packet only once the backup has applied its
update. The controller runs the ``pb`` pipeline and watches both instances' heartbeats.
The trial replays a trace (synthetic, or any capture with ``--trace``) at ``--load`` (0.5)
of one core's capacity, measured at start-up (``experiments.runtime.capacity``; ``--rate`` sets a
rate instead), SIGKILLs the primary ``--kill-at`` seconds into it, and lets the controller
move the traffic to the backup when the primary falls silent.

Checks (all must hold):

* **(a) state**: the backup's final state equals the sequential reference's state at the
  backup's last applied sequence number, over every sequenced packet except those no
  instance applied (the ones in flight at the kill, sent to the dead port before the
  failover); the verdicts the backup gave after taking over equal the reference's too;
* **(b) no state lost**: every packet the sink received (everything the outside world saw)
  is among the updates the backup holds: output commit;
* **(c) recovery**: the delivered rate, in 100 ms bins aligned on the kill, is back to at
  least 90 % of the expected rate (the sequenced packets of the bin that the reference
  passes) within 2 s of the kill, in that bin and on average over the next 0.5 s; the time
  is taken at the end of the first good bin, so it is rounded up to the bin
  (``resumed_s``, the first packet the backup delivered, is the finer measure);
* the controller logged exactly one failover, from the primary's port to the backup's.

Results: ``results/failover/<timestamp>/`` with ``config.json``, ``trace.pcap``,
``timeline.csv`` (``t_s,offered_pps,expected_pps,delivered_pps`` per bin, t from the start
of the traffic), ``failover.json`` (kill time, the controller's events, checks, recovery
time, losses), ``failover.png`` (drawn from the two files by :func:`plot_failover`) and
``trial/`` (every process's results and logs, the controller's log and events).

Usage (as root)::

    sudo python experiments/failover.py
    sudo python experiments/failover.py --load 0.3 --duration 6 --kill-at 2 --timeout-ms 100

Started with any Python, it re-executes itself in the project's virtual environment.

Caveats: the primary dies by SIGKILL, so its own results (verdict log, state) die with it;
what it did is judged from the sink and the backup. Kill, heartbeats, shim time stamps
and sink arrivals share one clock (``CLOCK_MONOTONIC``, one per machine). The recovery
time includes the failure detection (``--timeout-ms`` plus up to one 20 ms watchdog
period and one heartbeat interval).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse
import csv
import json
import math
import threading
import time
from bisect import bisect_left
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")  # no display on a testbed machine
import matplotlib.pyplot as plt
from tabulate import tabulate

from controller.dispatch import EVENTS_FILE
from experiments.runtime.argtypes import non_negative_float, positive_float
from experiments.runtime.capacity import add_run_flags, prepare_run
from experiments.runtime.cpu_quota import CoreQuotas
from experiments.runtime.trial import (
    Testbed,
    TrialConfig,
    TrialError,
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
from nfs.reference import StateView, check_views, run_reference
from topologies.scr_topo import NF, PortPlan

DEFAULT_LOAD = 0.5  # of one core's capacity: the primary also pays for replication
REPLICATION_ADDRESS = "127.0.0.1:7651"  # the NF host's own loopback (its namespace)
PRIMARY, BACKUP = "core0", "backup"
BIN_S = 0.1
RECOVERY_SHARE = 0.9
SUSTAIN_S = 0.5
RECOVERY_LIMIT_S = 2.0
TIMELINE_CSV = "timeline.csv"
RESULT_JSON = "failover.json"
PLOT = "failover.png"
TIMELINE_COLUMNS = ["t_s", "offered_pps", "expected_pps", "delivered_pps"]


class FailoverTestbed(Testbed):
    """The testbed with a backup instance: ``single`` on port 10 replicating to a backup on
    port 11, and the controller's ``pb`` pipeline with its watchdog."""

    def __init__(self, config: TrialConfig, out_dir: Path, timeout_ms: float = 200.0):
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

    def _start(self, name, host_name, argv):
        if name == PRIMARY:  # core 0 is the primary: it replicates before it forwards
            argv = [*argv, "--replicate-to", REPLICATION_ADDRESS]
        return super()._start(name, host_name, argv)

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


# --- analysis (pure: files in, numbers out) --------------------------------------------


def held_seqs(applied: int, gaps) -> set[int]:
    """The sequence numbers whose updates a replica holds: up to ``applied``, minus gaps."""
    held = set(range(applied + 1))
    for lo, hi in gaps:
        held -= set(range(lo, hi + 1))
    return held


def timeline(kill_s: float, start_s: float, end_s: float, offered: list[float],
             expected: list[float], delivered: list[float], bin_s: float = BIN_S) -> list[dict]:
    """Rates per ``bin_s`` bin, bins aligned on ``kill_s``, only whole bins inside
    ``[start_s, end_s]``; the three lists are event times (s), any order."""
    if not bin_s > 0:
        raise ValueError(f"bin must be > 0 s, got {bin_s}")
    first = math.ceil((start_s - kill_s) / bin_s - 1e-9)
    last = math.floor((end_s - kill_s) / bin_s + 1e-9)  # edge after the last whole bin
    series = [sorted(times) for times in (offered, expected, delivered)]
    rows = []
    for k in range(first, last):
        lo, hi = kill_s + k * bin_s, kill_s + (k + 1) * bin_s
        counts = [bisect_left(times, hi) - bisect_left(times, lo) for times in series]
        rows.append({"t_s": round(lo, 4), **{
            col: round(n / bin_s, 1) for col, n in zip(TIMELINE_COLUMNS[1:], counts,
                                                       strict=True)}})
    return rows


def recovery_time(rows: list[dict], kill_s: float, share: float = RECOVERY_SHARE,
                  sustain_s: float = SUSTAIN_S, bin_s: float = BIN_S) -> float | None:
    """Seconds from the kill to the end of the first bin (of ``rows``, from the kill on)
    whose delivered rate is at least ``share`` of the expected one, and stays so on average
    over that bin and the next ``sustain_s`` (or until the rows end); None if none is.

    The average, not every bin: a core under a CPU quota delivers in bursts, and a 100 ms
    bin may hold 10 % more or less than its share even in steady state.
    """
    after = [r for r in rows if r["t_s"] >= kill_s - 1e-9]
    window = max(1, round(sustain_s / bin_s))
    for i, row in enumerate(after):
        ahead = after[i:i + window]
        if (row["delivered_pps"] >= share * row["expected_pps"]
                and sum(r["delivered_pps"] for r in ahead)
                >= share * sum(r["expected_pps"] for r in ahead)):
            return round(row["t_s"] + bin_s - kill_s, 4)
    return None


def write_timeline(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, TIMELINE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_timeline(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def analyze(trial_dir: Path, config: TrialConfig, start_ns: int,
            kill_ns: int, primary_port: int, backup_port: int) -> tuple[dict, list[dict]]:
    """Check a finished failover trial; ``(result, timeline rows)``."""
    trial_dir = Path(trial_dir)
    nf = make_nf(config.nf, **config.nf_params)
    backup = read_result(trial_dir / f"{BACKUP}.json")
    events = read_result(trial_dir / EVENTS_FILE)
    sink = read_result(trial_dir / "sink.json")
    gen = read_result(trial_dir / "generator.json")
    # The sequencer's ground truth: what it sequenced, in order, with its timestamps.
    truth, trace_ids = read_ground_truth(trial_dir, SCR)
    packets = truth.packet_map()
    sequenced = [(seq, tid, ts) for seq, (tid, (_pkt, ts))
                 in enumerate(zip(trace_ids, truth.packets, strict=True))]
    arrivals = read_int_csv(trial_dir / "sink_log.csv")  # trace_id, t_ns
    backup_log = read_int_csv(trial_dir / f"{BACKUP}_log.csv")  # seq,trace_id,verdict,chain
    seq_of = {tid: seq for seq, tid, _ts in sequenced}

    # (a) the backup against the reference without what no instance applied.
    held = held_seqs(backup["applied"], backup.get("gaps", []))
    skip = frozenset(set(packets) - held)
    gap_set = set(range(len(packets))) - held_seqs(len(packets) - 1, backup.get("gaps", []))
    view = StateView("backup", backup["state"], backup["applied"], skip)
    check = check_views(nf, packets, ((s, 0, v) for s, _t, v, _c in backup_log), [view],
                        {0: 0})

    # (b) output commit: whatever reached the sink, the backup holds.
    delivered_seqs = [seq_of.get(tid) for tid, _t in arrivals]
    not_held = sorted(s for s in delivered_seqs if s is None or s not in held)

    # (c) the delivered rate over time against what the reference passes.
    reference = run_reference(nf, (packets[s] for s in sorted(packets)))
    def to_s(ns: float) -> float:  # monotonic ns -> seconds since the traffic started
        return (ns - start_ns) / 1e9

    kill_s = to_s(kill_ns)
    rows = timeline(
        kill_s, to_s(sequenced[0][2]) if sequenced else 0.0,
        to_s(sequenced[-1][2]) if sequenced else 0.0,
        [to_s(ts) for _s, _t, ts in sequenced],
        [to_s(ts) for s, _t, ts in sequenced if reference.verdicts[s] == PASS],
        [to_s(t) for _tid, t in arrivals])
    recovery = recovery_time(rows, kill_s)
    before = [r for r in rows if r["t_s"] + BIN_S <= kill_s + 1e-9]
    pre_ratio = (sum(r["delivered_pps"] for r in before)
                 / max(sum(r["expected_pps"] for r in before), 1e-9)) if before else None

    failovers = [{**e, "t_s": round(to_s(e["t_monotonic"] * 1e9), 4)}
                 for e in events.get("events", [])]
    # The first packet the backup delivered: when the traffic really resumed.
    failover_ns = failovers[0]["t_monotonic"] * 1e9 if failovers else math.inf
    resumed = min((t for _tid, t in arrivals if t >= failover_ns), default=None)
    received = {tid for tid, _t in arrivals}
    lost_passes = sum(1 for s, tid, _ts in sequenced
                      if reference.verdicts[s] == PASS and tid not in received)
    checks = {
        "state_equal": check.equivalent,
        "skip_is_gaps": skip == frozenset(gap_set),
        "no_state_lost": not not_held,
        "recovered": recovery is not None and recovery < RECOVERY_LIMIT_S,
        "one_failover": [(e["from_port"], e["to_port"]) for e in failovers]
        == [(primary_port, backup_port)],
        "backup_took_over": backup.get("took_over_at") is not None,
    }
    result = {
        "nf": config.nf, "nf_params": config.nf_params, "rate_pps": config.rate_pps,
        "offered_pps": round(gen["offered_pps"], 1), "sent": gen["sent"],
        "sequenced": len(sequenced), "sink_received": sink["received"],
        "kill_s": round(kill_s, 4), "kill_monotonic_ns": kill_ns,
        "controller_events": failovers,
        "detection_s": round(failovers[0]["t_s"] - kill_s, 4) if failovers else None,
        "resumed_s": round(to_s(resumed) - kill_s, 4) if resumed is not None else None,
        "recovery_s": recovery, "recovery_limit_s": RECOVERY_LIMIT_S,
        "lost_updates": len(skip), "lost_passes": lost_passes,
        "lost_updates_ms": round(len(skip) / config.rate_pps * 1000, 1),
        "delivered_not_held": not_held[:20],
        "pre_kill_delivered_ratio": round(pre_ratio, 4) if pre_ratio is not None else None,
        "backup": {k: backup.get(k) for k in ("applied", "log_last", "took_over_at", "gaps",
                                              "stats", "rx_dropped")},
        "heartbeats": events.get("heartbeats", {}),
        "check": check.summary(),
        "checks": checks,
        "passed": all(checks.values()),
    }
    return result, rows


# --- the plot, from the files ------------------------------------------------------------


def plot_rates(ax, rows: list[dict]) -> None:
    """The timeline's three rates on ``ax``, each bin drawn at its middle."""
    ts = [r["t_s"] + BIN_S / 2 for r in rows]
    ax.plot(ts, [r["offered_pps"] for r in rows], color="tab:gray", linestyle=":",
            label="offered (sequenced)")
    ax.plot(ts, [r["expected_pps"] for r in rows], color="black", linestyle="--",
            linewidth=1, label="expected (reference passes)")
    ax.plot(ts, [r["delivered_pps"] for r in rows], color="tab:blue", marker=".",
            markersize=3, label="delivered (sink)")


def plot_failover(run_dir: Path) -> Path:
    """``failover.png``: the rates over time from ``timeline.csv``, the kill and the
    controller's failover from ``failover.json``."""
    run_dir = Path(run_dir)
    rows = read_timeline(run_dir / TIMELINE_CSV)
    result = json.loads((run_dir / RESULT_JSON).read_text())
    if not rows:
        raise ValueError(f"{run_dir / TIMELINE_CSV} has no rows")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    plot_rates(ax, rows)
    ax.axvline(result["kill_s"], color="tab:red", label="primary killed")
    for event in result.get("controller_events", []):
        ax.axvline(event["t_s"], color="tab:green", linestyle="--",
                   label=f"controller: port {event['from_port']} -> {event['to_port']}")
    recovery = result.get("recovery_s")
    if recovery is not None:
        ax.axvspan(result["kill_s"], result["kill_s"] + recovery, color="tab:red", alpha=0.08,
                   label=f"recovery {recovery:.2f} s")
    ax.set(xlabel="time since the traffic started (s)", ylabel=f"packets/s ({BIN_S * 1000:g} "
           "ms bins)", ylim=(0, None),
           title=f"primary-backup failover: {result['nf']} at {result['rate_pps']:g} pps, "
           f"{result['lost_updates']} updates lost at the kill")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    path = run_dir / PLOT
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def table(result: dict) -> str:
    checks = result["checks"]
    rows = [
        ["offered / sequenced / delivered", f"{result['offered_pps']:.0f} pps / "
         f"{result['sequenced']} / {result['sink_received']}"],
        ["primary killed at", f"{result['kill_s']:.3f} s"],
        ["controller failover after", "-" if result["detection_s"] is None
         else f"{result['detection_s']:.3f} s"],
        ["first packet through the backup after", "-" if result["resumed_s"] is None
         else f"{result['resumed_s']:.3f} s"],
        ["recovery (rate back to 90 %)", "never" if result["recovery_s"] is None
         else f"{result['recovery_s']:.2f} s (limit {RECOVERY_LIMIT_S:g} s)"],
        ["updates lost at the kill", f"{result['lost_updates']} "
         f"(~{result['lost_updates_ms']:g} ms of traffic)"],
        ["passing packets never delivered", result["lost_passes"]],
        *[[f"check: {name}", "ok" if ok else "FAILED"] for name, ok in checks.items()],
    ]
    return tabulate(rows, headers=["", "failover trial"], tablefmt="github",
                    disable_numparse=True)


# --- one run -----------------------------------------------------------------------------


def run_failover(config: TrialConfig, run_dir: Path, duration_s: float = 8.0,
                 kill_at_s: float = 3.0, timeout_ms: float = 200.0,
                 trace_path: Path | None = None, skew: float = 1.0,
                 seed: int = 1) -> tuple[Path, dict]:
    """Run one failover trial of ``config`` (the ``single`` strategy, one core) into
    ``run_dir`` (made, with its config, by the caller), on ``trace_path`` (a testbed trace)
    or a synthetic trace of ``skew``; ``(folder, result)``."""
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
                           bed.plan.core_port(0), bed.plan.core_port(1))
    result["primary_returncode"] = primary_rc
    result["checks"]["primary_killed"] = primary_rc == -9
    result["passed"] = all(result["checks"].values())
    write_timeline(run_dir / TIMELINE_CSV, rows)
    (run_dir / RESULT_JSON).write_text(json.dumps(result, indent=1) + "\n")
    plot_failover(run_dir)
    return run_dir, result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--nf", default="ddos", choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", type=json.loads, default={},
                        help="NF parameters as JSON")
    add_run_flags(parser, DEFAULT_LOAD, "offer this fraction of what one core carries "
                  "(measured at start-up): the primary also replicates, so keep headroom",
                  work_us=0.0)
    parser.add_argument("--duration", type=positive_float, default=8.0,
                        help="seconds of traffic")
    parser.add_argument("--kill-at", type=positive_float, default=3.0,
                        help="SIGKILL the primary this many seconds into the traffic")
    parser.add_argument("--skew", type=non_negative_float, default=1.0,
                        help="flow-size skew of the trace (Zipf exponent)")
    parser.add_argument("--timeout-ms", type=positive_float, default=200.0,
                        help="the controller fails over after this much heartbeat silence")
    parser.add_argument("--core-share", type=positive_float, default=0.1,
                        help="CPU quota of each instance (an emulated core)")
    parser.add_argument("--no-quota", action="store_true", help="no CPU quota at all")
    parser.add_argument("--seed", type=int, default=1, help="trace seed")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where failover/<timestamp> folders go (default: results/)")
    args = parser.parse_args(argv)
    if not args.kill_at < args.duration:
        parser.error("--kill-at must be less than --duration")
    if not isinstance(args.nf_params, dict):
        parser.error("--nf-params must be a JSON object")
    try:
        make_nf(args.nf, **args.nf_params)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (status := start_experiment("failover")) is not None:
        return status
    config = TrialConfig(nf=args.nf, nf_params=args.nf_params, cores=1, strategy="single",
                         rate_pps=args.rate or 1.0,
                         core_share=None if args.no_quota else args.core_share)
    try:
        run_dir, imported, config, capacity, _costs = prepare_run("failover", args, config, 1)
        if capacity is not None:
            print(f"failover: one core carries {capacity.per_core_pps:.0f} pps here; "
                  f"offering {config.rate_pps:.0f} pps ({args.load:g} of it)",
                  file=sys.stderr)
        run_dir, result = run_failover(config, run_dir, args.duration, args.kill_at,
                                       args.timeout_ms, imported, args.skew, args.seed)
    except KeyboardInterrupt:
        print("\nfailover: interrupted", file=sys.stderr)
        return 130
    except TraceError as err:
        print(f"failover: {err}", file=sys.stderr)
        return 2
    except (TrialError, ValueError) as err:
        print(f"failover: {err}", file=sys.stderr)
        return 1
    print(table(result))
    print(f"\nresults: {run_dir}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
