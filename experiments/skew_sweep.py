"""Skew sweep: SCR's delivered rate and loss across flow skew and core counts.

For every flow skew (Zipf exponent of the flow sizes) it builds one trace, and for every
core count it runs one trial (``experiments.trial``) at a fixed offered rate on a fresh
Mininet network, checking every trial against sequential processing. It writes
``results/skew_sweep/<timestamp>/`` with ``config.json``, ``results.csv`` (one row per
trial, appended as trials finish), ``skew_sweep.png``, the traces and each trial's folder,
and prints a table.

Usage (as root)::

    sudo python experiments/skew_sweep.py --quick
    sudo python experiments/skew_sweep.py --nf knock --skews 0 1 1.5 --cores 1 2 4

Started with any Python, it re-executes itself in the project's virtual environment
(``.venv``, made by ``make setup``).

Caveat: this machine has 2 CPUs shared by the generator, OVS, the shim, the sink and the
cores. Core counts above what the CPUs hold add no capacity here (CPU quotas per emulated
core come with the MLFFR sweeps); the ``cpu_s`` column shows where the time went.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_VENV = Path(__file__).resolve().parent.parent / ".venv"
if __name__ == "__main__" and Path(sys.prefix).resolve() != _VENV.resolve():
    # Re-run inside the project's environment, with nothing but the standard library so far.
    _python = _VENV / "bin" / "python"
    if not _python.exists():
        sys.exit(f"skew_sweep: the testbed is not set up: run `sudo make setup` in {_VENV.parent}")
    os.execv(_python, [str(_python), str(Path(__file__).resolve()), *sys.argv[1:]])

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from tabulate import tabulate  # noqa: E402

from experiments.plotting import plot_skew_sweep  # noqa: E402
from experiments.preflight import EnvironmentProblem, check_environment  # noqa: E402
from experiments.results import CsvLog, new_run_dir, write_config  # noqa: E402
from experiments.traffic import TraceSpec, flow_shares, make_trace, write_pcap  # noqa: E402
from experiments.trial import TrialConfig, TrialError, run_trial  # noqa: E402
from nfs import NF_CLASSES  # noqa: E402

COLUMNS = [
    "nf", "strategy", "skew", "top_flow_share", "cores", "target_pps", "offered_pps",
    "delivered_pps", "loss", "sent", "processed", "per_core", "round_robin", "passed",
    "sink_received", "malformed_shim", "malformed_cores", "gap_records", "check_equivalent",
    "check_verdict_mismatches", "check_diverged_replicas", "cpu_s", "span_s", "seconds", "error",
]
QUICK = {"skews": [0.0, 1.5], "cores": [1, 2, 4], "packets": 3000}
# The compute cost that makes one core (about 0.6 ms per packet here) the bottleneck at
# the default offered rate, while two cores keep up: the sweep then shows scaling.
DEFAULT_WORK = 8000


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Sweep flow skew and core counts with SCR at a fixed offered rate.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--nf", choices=sorted(NF_CLASSES), default="ddos",
                        help="network function to run")
    parser.add_argument("--skews", type=non_negative_float, nargs="+",
                        default=[0.0, 0.5, 1.0, 1.5], help="Zipf exponents of flow sizes")
    parser.add_argument("--cores", type=positive_int, nargs="+", default=[1, 2, 4],
                        help="core counts N")
    parser.add_argument("--rate", type=positive_float, default=2000.0,
                        help="offered rate, packets per second")
    parser.add_argument("--packets", type=positive_int, default=10_000,
                        help="packets per trace")
    parser.add_argument("--flows", type=positive_int, default=200,
                        help="background flows per trace")
    parser.add_argument("--work", type=int, default=DEFAULT_WORK,
                        help="compute cost per packet (rounds of nfs.base.spin, ~74 ns each "
                             "here); 0 = the NF alone")
    parser.add_argument("--seed", type=int, default=1, help="trace seed")
    parser.add_argument("--quick", action="store_true",
                        help=f"a small sweep for a first look: {QUICK} (overrides those flags)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where results/<timestamp> folders go (default: results/ "
                             "in the repository)")
    args = parser.parse_args(argv)
    if args.work < 0:
        parser.error("--work must be >= 0")
    if args.quick:
        args.skews, args.cores = QUICK["skews"], QUICK["cores"]
        args.packets = QUICK["packets"]
    return args


def _sigterm_to_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def sweep(args: argparse.Namespace) -> tuple[Path, list[dict]]:
    run_dir = new_run_dir("skew_sweep", args.results_dir)
    write_config(run_dir, {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    log = CsvLog(run_dir / "results.csv", COLUMNS)
    (run_dir / "traces").mkdir()
    nf_params = {"work": args.work}
    trials = [(skew, cores) for skew in args.skews for cores in args.cores]
    rows = []
    print(f"skew sweep: {len(trials)} trials of {args.packets} packets at {args.rate:g} pps "
          f"-> {run_dir}", flush=True)
    traces: dict[float, Path] = {}
    for number, (skew, cores) in enumerate(trials, 1):
        if skew not in traces:
            spec = TraceSpec(packets=args.packets, flows=args.flows, skew=skew, seed=args.seed)
            traces[skew] = run_dir / "traces" / f"skew{skew:g}.pcap"
            write_pcap(traces[skew], make_trace(spec), args.rate)
        started = time.monotonic()
        label = f"[{number}/{len(trials)}] {args.nf} skew={skew:g} cores={cores}"
        print(f"{label} ...", end=" ", flush=True)
        config = TrialConfig(nf=args.nf, nf_params=nf_params, cores=cores, rate_pps=args.rate)
        row = {"nf": args.nf, "strategy": "scr", "skew": skew, "cores": cores,
               "top_flow_share": round(flow_shares(args.flows, skew)[0], 3)}
        try:
            row.update(run_trial(config, traces[skew],
                                 run_dir / "trials" / f"skew{skew:g}-cores{cores}"))
        except TrialError as err:
            row["error"] = str(err)
        row["seconds"] = round(time.monotonic() - started, 1)
        log.append(row)
        rows.append(row)
        print(row.get("error") or
              f"delivered {row['delivered_pps']:.0f} pps, loss {100 * row['loss']:.1f} %, "
              f"equivalent: {row['check_equivalent']} ({row['seconds']} s)", flush=True)
    return run_dir, rows


def table(rows: list[dict]) -> str:
    headers = ["skew", "top flow", "cores", "offered pps", "delivered pps", "loss %",
               "per-core packets", "equivalent"]
    body = [
        [r["skew"], f"{100 * r['top_flow_share']:.0f} %", r["cores"],
         r.get("offered_pps", "-"), r.get("delivered_pps", "-"),
         f"{100 * r['loss']:.2f}" if "loss" in r else "-",
         " ".join(map(str, r.get("per_core", []))) or r.get("error", "")[:40],
         r.get("check_equivalent", "error")]
        for r in rows
    ]
    return tabulate(body, headers=headers, tablefmt="github")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_environment()
    except EnvironmentProblem as err:
        print(f"skew_sweep: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    started = time.monotonic()
    try:
        run_dir, rows = sweep(args)
    except KeyboardInterrupt:
        print("\nskew_sweep: interrupted; finished trials are in results.csv", file=sys.stderr)
        return 130
    print()
    print(table(rows))
    if any("error" not in r for r in rows):
        print(f"\nplot: {plot_skew_sweep(run_dir)}")
    print(f"results: {run_dir}  ({time.monotonic() - started:.0f} s)")
    (run_dir / "summary.json").write_text(json.dumps(
        {"trials": len(rows), "errors": sum("error" in r for r in rows),
         "all_equivalent": all(r.get("check_equivalent") is True for r in rows),
         "seconds": round(time.monotonic() - started, 1)}, indent=1) + "\n")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
