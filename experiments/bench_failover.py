"""Benchmark: the core-failover experiment repeated, to show how often its results hold.

One run of ``core_failover.py`` says what happened once. This runs it
(``experiments.campaigns.core_failover``) ``--runs`` times with the same configuration (the
capacity is measured once, first, and every run offers the same rate: ``--load`` of what
the N-1 survivors carry) and counts, over the runs: the
state kept (strictly equivalent to one core; under overload, consistent with the ground
truth), the replicas equal to each other, the rate back within 2 s (not under overload),
and it reports each run's recovery and detection times, the fetch latency (p50, p99) and
the packets dropped by cause.

Usage (as root)::

    python experiments/bench_failover.py                # 10 runs at 0.75 x survivors
    python experiments/bench_failover.py --load 1.5     # 10 runs of overload

Results: ``results/bench_failover/<timestamp>/`` with ``config.json``, ``capacity/`` (the
probes), ``runs.csv`` (one row per run), ``bench_failover.png`` (drawn from ``runs.csv`` by
:func:`plot_runs`: recovery time and fetch p99 per run) and ``run<k>/`` (each run's
``core_failover`` folder). A benchmark, not a test: it prints figures and exits 1 when a
run failed its required checks (the fault experiments' pass rule, as ``core_failover.py``
judges a run: ``experiments.analysis.faults``).

Caveats: the runs are sequential on one machine and share its noise (10-20 % here); a run
the fidelity monitor marks not faithful is counted and shown, not dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import json
import statistics

from tabulate import tabulate
from tqdm import tqdm

from experiments.analysis.collect import percentiles
from experiments.analysis.errors import TrialError
from experiments.argtypes import positive_int
from experiments.campaigns.core_failover import (
    build_parser,
    finish_args,
    overloaded,
    run_with_faults,
)
from experiments.plots.bench_failover import RUNS_CSV, plot_runs
from experiments.runtime.capacity import prepare_run
from experiments.runtime.processes import start_experiment
from experiments.runtime.results import CsvLog
from experiments.workload.trace_files import TraceError

COLUMNS = ["run", "passed", "states_equal_reference", "consistent", "replicas_equal",
           "rate_recovered", "detected_s", "recovery_s", "fetches", "fetch_us_p50",
           "fetch_us_p99", "recovered_records", "lost_everywhere", "at_dead_core",
           "core_queue_full", "injected", "faithful", "bottleneck", "offered_pps", "error"]


def row_of(run: int, result: dict) -> dict:
    kill = result["kills"][0] if result["kills"] else {}
    return {
        "run": run, "passed": result["passed"],
        **{k: result["checks"][k] for k in ("states_equal_reference", "consistent",
                                            "replicas_equal", "rate_recovered")},
        "detected_s": kill.get("detected_s"), "recovery_s": kill.get("recovery_s"),
        "fetches": result["fetches"], "fetch_us_p50": result["fetch_us_p50"],
        "fetch_us_p99": result["fetch_us_p99"],
        "recovered_records": result["recovered_records"],
        "lost_everywhere": result["lost_everywhere"],
        **{k: result["dropped"][k] for k in ("at_dead_core", "core_queue_full",
                                             "injected")},
        "faithful": result["check"]["faithful"], "bottleneck": result["check"]["bottleneck"],
        "offered_pps": result["offered_pps"],
    }


def _floats(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in ("", None, "None")]


def _spread(values: list[float], unit: str = "") -> str:
    if not values:
        return "-"
    return (f"{statistics.median(values):.3g}{unit} "
            f"({min(values):.3g}-{max(values):.3g})")


def pooled_fetches(bench_dir: Path) -> list[float]:
    """Every fetch's latency (µs) in every run: a run has few fetches, so its own p99 says
    little; these pool them (from the cores' results, ``run<k>/trial/core<i>.json``)."""
    samples: list[float] = []
    for path in sorted(Path(bench_dir).glob("run*/trial/core*.json")):
        samples += json.loads(path.read_text()).get("recovery", {}).get("fetch_us", [])
    return samples


def summary_table(rows: list[dict], overload: bool, fetches: list[float]) -> str:
    """Counts over the runs, medians with their range, and the pooled fetch latency."""
    def count(key: str) -> str:
        return f"{sum(str(r.get(key)) == 'True' for r in rows)} / {len(rows)}"

    lines = [
        ["runs that passed their required checks", count("passed")],
        ["state strictly equal to one core" + (" (reported)" if overload else ""),
         count("states_equal_reference")],
        ["state consistent with the ground truth", count("consistent")],
        ["replicas equal to each other", count("replicas_equal")],
        ["rate back within 2 s" + (" (reported)" if overload else ""),
         count("rate_recovered")],
        ["faithful runs", count("faithful")],
        ["detection (s): median (range)", _spread(_floats(rows, "detected_s"))],
        ["rate back (s): median (range)", _spread(_floats(rows, "recovery_s"))],
        ["fetches, all runs", len(fetches)],
        ["fetch latency over all runs (µs): p50 / p99",
         " / ".join(f"{p:.0f}" for p in percentiles(fetches)) if fetches else "-"],
        ["records fetched: median (range)", _spread(_floats(rows, "recovered_records"))],
        ["records lost at every core: median (range)",
         _spread(_floats(rows, "lost_everywhere"))],
        ["dropped at a full core queue: median (range)",
         _spread(_floats(rows, "core_queue_full"))],
        ["dropped at the dead core: median (range)", _spread(_floats(rows, "at_dead_core"))],
    ]
    return tabulate(lines, headers=["", "over the runs"], tablefmt="github",
                    disable_numparse=True)


def parse_args(argv: list[str] | None):
    parser = build_parser("bench_failover", __doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=positive_int, default=10, help="repetitions")
    return finish_args(parser, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (status := start_experiment("bench_failover")) is not None:
        return status
    try:
        bench_dir, imported, config, capacity, _costs = prepare_run(
            "bench_failover", args, args.config, args.cores - 1)
    except TraceError as err:
        print(f"bench_failover: {err}", file=sys.stderr)
        return 2
    except (TrialError, KeyboardInterrupt) as err:
        print(f"bench_failover: {err or 'interrupted'}", file=sys.stderr)
        return 1
    overload = overloaded(capacity, args.load)
    log = CsvLog(bench_dir / RUNS_CSV, COLUMNS)
    rows = []
    print(f"bench_failover: {args.runs} runs at {config.rate_pps:.0f} pps"
          + (f" ({args.load:g} x the survivors' {capacity.rate(1, args.cores - 1):.0f})"
             if capacity else "") + f" -> {bench_dir}", file=sys.stderr)
    try:
        for run in tqdm(range(args.runs), desc="bench_failover", unit="run", file=sys.stderr):
            run_dir = bench_dir / f"run{run}"
            run_dir.mkdir()
            try:
                _dir, result = run_with_faults(
                    "core_failover", config, args.faults, args.duration, run_dir, imported,
                    args.skew, args.seed + run, overload=overload)
                row = row_of(run, result)
            except TrialError as err:
                row = {"run": run, "passed": False, "error": str(err)}
            log.append(row)
            rows.append(row)
            tqdm.write(f"run {run}: {'passed' if row['passed'] else 'FAILED'}"
                       f"{' ' + row['error'] if row.get('error') else ''}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"\nbench_failover: interrupted; finished runs are in {bench_dir / RUNS_CSV}",
              file=sys.stderr)
        return 130
    print(summary_table(rows, overload, pooled_fetches(bench_dir)))
    print(f"\nplot: {plot_runs(bench_dir)}\nresults: {bench_dir}")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
