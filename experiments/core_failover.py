"""Core failover under SCR: kill a core mid-run, the others carry on, a replacement rejoins.

SCR with ``N`` cores (default 4), loss recovery on and the controller watching the cores'
heartbeats (``TrialConfig.watch_cores``). The offered rate is ``--load`` (0.75) of what the
N-1 survivors can carry, from the configuration's capacity measured at start-up
(``experiments.runtime.capacity``; ``--rate`` sets a rate instead), so that the experiment is the
same on a fast and a slow machine. While the trace plays at that rate, the trial
(``experiments.campaigns.core_failover``)

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

Checks (the fault experiments' pass rule, ``experiments.analysis.faults``): every core's
final state, the replacement's too, equals one core processing every sequenced packet
(``check_equivalent``, strict), or at least is consistent with the ground truth
(``check_consistent``: equal modulo records that no core ever received). The replicas are
equal to each other. The delivered rate is back to 90 % of the expected rate within 2 s of
the kill (100 ms bins, as in ``failover.py``). The controller saw the death and the rejoin,
once each. All must hold, except under overload (``--load`` above 1), where packets are
dropped (counted by cause) and records may be lost at every core: there the states must be
consistent and equal to each other, and strict equivalence and the rate are reported, not
required.

Results: ``results/core_failover/<timestamp>/`` with ``config.json`` (arguments, the costs
in µs and spin rounds, the measured capacity), ``capacity/`` (the probe trials),
``trace.pcap`` (or ``traces/`` with an imported ``--trace``), ``timeline.csv``,
``core_failover.json`` (actions, the controller's events, checks and the verdict's parts,
losses by cause, fetch latency), ``core_failover.png`` (drawn from those two files) and
``trial/`` (every process's results and logs).

Usage (as root)::

    python experiments/core_failover.py
    python experiments/core_failover.py --load 1.5          # overload the survivors
    python experiments/core_failover.py --cores 3 --kill-at 2 --rejoin-at 5
    python experiments/core_failover.py --trace capture.pcapng

Started with any Python, it re-executes itself in the project's virtual environment.

Caveats: the killed core's own verdict log dies with it; the packets it processed before
the kill are judged by what reached the sink. Packets sprayed to it between the kill and
the controller's spray command are lost (``lost_at_dead_core``), which is the price of
detection by heartbeat timeout. Their updates are not lost: the other cores' histories
carry them.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse

from tabulate import tabulate

from experiments.analysis.errors import TrialError
from experiments.campaigns.core_failover import (
    PLOT,
    build_parser,
    finish_args,
    overloaded,
    run_with_faults,
)
from experiments.runtime.capacity import prepare_run
from experiments.runtime.processes import start_experiment
from experiments.workload.trace_files import TraceError


def table(result: dict) -> str:
    limit = result["rule"]["limit_s"]
    rows = [["offered / sequenced / delivered",
             f"{result['offered_pps']:.0f} pps / {result['sequenced']} / "
             f"{result['sink_received']}" + (" (overload)" if result.get("overload") else "")]]
    for k in result["kills"]:
        rows.append([f"core {k['core']} killed at {k['kill_s']:.2f} s",
                     f"controller resprayed after {k['detected_s']} s, rate back after "
                     f"{k['recovery_s']} s (limit {limit:g} s)"])
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
    rows += [[f"check: {name}", ("ok" if ok else "FAILED" if name in result["required"]
                                 else "no (not required under overload)")]
             for name, ok in result["checks"].items()]
    return tabulate(rows, headers=["", "core failover"], tablefmt="github",
                    disable_numparse=True)


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
            args.skew, args.seed, overload=overloaded(capacity, args.load))
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
