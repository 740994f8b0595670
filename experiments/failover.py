"""Failover trial: kill the primary NF instance mid-run; the backup takes over, no state lost.

One NF instance (the ``single`` strategy: one emulated core, a private state, every packet
through the shim) is the **primary**, on core port 10 (``nf-eth0``); a **backup** worker on
core port 11 (``nf-eth1``) gets no packets, only the primary's access-order log
(``nfs.cores.replication``): the primary forwards a packet only once the backup has applied its
update. The controller runs the ``pb`` pipeline and watches both instances' heartbeats.
The trial replays a trace (synthetic, or any capture with ``--trace``) at ``--load`` (0.5)
of one core's capacity, measured at start-up (``experiments.runtime.capacity``; ``--rate`` sets a
rate instead), SIGKILLs the primary ``--kill-at`` seconds into it, and lets the controller
move the traffic to the backup when the primary falls silent
(``experiments.campaigns.failover``).

Checks (all must hold: the fault experiments' pass rule, ``experiments.analysis.faults``,
with the state and the rate required):

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
* the controller logged exactly one failover, from the primary's port to the backup's, and
  the primary died of the SIGKILL.

Results: ``results/failover/<timestamp>/`` with ``config.json``, ``trace.pcap``,
``timeline.csv`` (``t_s,offered_pps,expected_pps,delivered_pps`` per bin, t from the start
of the traffic), ``failover.json`` (kill time, the controller's events, checks and the
verdict's parts, recovery time, losses), ``failover.png`` (drawn from the two files) and
``trial/`` (every process's results and logs, the controller's log and events).

Usage (as root)::

    python experiments/failover.py
    python experiments/failover.py --load 0.3 --duration 6 --kill-at 2 --timeout-ms 100

Started with any Python, it re-executes itself in the project's virtual environment.

Caveats: the primary dies by SIGKILL, so its own results (verdict log, state) die with it;
what it did is judged from the sink and the backup. Kill, heartbeats, shim time stamps
and sink arrivals share one clock (``CLOCK_MONOTONIC``, one per machine). The recovery
time includes the failure detection (``--timeout-ms`` plus up to one 20 ms watchdog
period and one heartbeat interval).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse

from tabulate import tabulate

from experiments.analysis.errors import TrialError
from experiments.campaigns.failover import (
    DEFAULT_LOAD,
    add_fault_flags,
    add_kill_flags,
    run_failover,
)
from experiments.runtime.capacity import add_run_flags, prepare_run
from experiments.runtime.config import TrialConfig
from experiments.runtime.processes import start_experiment
from experiments.workload.trace_files import TraceError
from nfs import NF_CLASSES, make_nf, nf_params_arg


def table(result: dict) -> str:
    rows = [
        ["offered / sequenced / delivered", f"{result['offered_pps']:.0f} pps / "
         f"{result['sequenced']} / {result['sink_received']}"],
        ["primary killed at", f"{result['kill_s']:.3f} s"],
        ["controller failover after", "-" if result["detection_s"] is None
         else f"{result['detection_s']:.3f} s"],
        ["first packet through the backup after", "-" if result["resumed_s"] is None
         else f"{result['resumed_s']:.3f} s"],
        ["recovery (rate back to 90 %)", "never" if result["recovery_s"] is None
         else f"{result['recovery_s']:.2f} s (limit {result['recovery_limit_s']:g} s)"],
        ["updates lost at the kill", f"{result['lost_updates']} "
         f"(~{result['lost_updates_ms']:g} ms of traffic)"],
        ["passing packets never delivered", result["lost_passes"]],
        *[[f"check: {name}", "ok" if ok else "FAILED"] for name, ok in result["checks"].items()],
    ]
    return tabulate(rows, headers=["", "failover trial"], tablefmt="github",
                    disable_numparse=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--nf", default="ddos", choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", type=nf_params_arg, default={},
                        help="NF parameters as JSON")
    add_run_flags(parser, DEFAULT_LOAD, "offer this fraction of what one core carries "
                  "(measured at start-up): the primary also replicates, so keep headroom",
                  work_us=0.0)
    add_kill_flags(parser, 8.0, "the primary")
    add_fault_flags(parser, "failover")
    parser.add_argument("--no-quota", action="store_true", help="no CPU quota at all")
    args = parser.parse_args(argv)
    if not args.kill_at < args.duration:
        parser.error("--kill-at must be less than --duration")
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
