"""Sequencer benchmark: the software sequencer's ceiling, and the core count where it limits SCR.

Is there a fundamental reason a multi-core CPU cannot be SCR's sequencer? This measures
what one costs here and models where it stops keeping up:

* the shim's CPU per packet against the history length (N = 1..32 cores) and the record
  size (the five NFs: 4 to 32 bytes), in process (``sequence.csv``);
* the same for the parallel sequencer's stages (``sequencer.pipeline``: a stamper, K
  builders that send in turn);
* each NF's t and c on a whole core (``nf_costs.csv``: an SCR replica's CPU per packet with
  no history, and per history record more, the default 110 µs of work included);
* live (root), the shim and the pipeline between two veth links with no OVS, blasted: the
  rate they deliver and their CPU per packet, sockets included (``live.csv``, the
  datapath benchmark's rows; the receiver checks the pipeline's frames come in order);
* the model: each sequencer's ceiling at n cores beside the cores' demand
  ``n / (t + (n-1) c)``, and the crossover, the core count from which the sequencer is the
  bottleneck (``ceilings.csv``, ``crossover.csv``, the figure ``sequencer.png``).

Results: ``results/bench_sequencer/<timestamp>/`` with ``config.json``, the CSVs above, the
figure and the datapath benchmark's own folder (``datapath/``).

Usage (as root)::

    .venv/bin/python experiments/bench_sequencer.py
    .venv/bin/python experiments/bench_sequencer.py --quick

Caveats: see ``experiments.campaigns.bench_sequencer``: CPU times of Python processes on a
2-CPU machine; the pipeline's ceilings beyond what this machine can run are a model of its
stages' measured costs.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse
import time
from dataclasses import asdict

from tabulate import tabulate
from tqdm import tqdm

from experiments.argtypes import positive_int
from experiments.campaigns import bench_sequencer as bench
from experiments.campaigns.bench_datapath import benchmark
from experiments.plots.sequencer import CEILINGS_CSV, CROSSOVER_CSV, LIVE_CSV, plot_sequencer
from experiments.runtime.preflight import EnvironmentProblem
from experiments.runtime.processes import start_experiment
from experiments.runtime.results import CsvLog, new_run_dir, read_csv, write_config
from nfs import NF_CLASSES

LIVE_PATHS = ["relay-direct", "shim-direct-1", "shim-direct-16", "shim-direct-32",
              "pipeline-16-1", "pipeline-16-2", "pipeline-16-3"]
LIVE_COUNT, QUICK_LIVE_COUNT = 50_000, 10_000
SOCKETS_NF = "ddos"  # the live shim's NF (experiments.campaigns.bench_datapath.SHIM_NF)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_sequencer", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--nf", nargs="+", choices=sorted(NF_CLASSES),
                        default=sorted(NF_CLASSES), help="NFs (record sizes) to measure")
    parser.add_argument("--packets", type=positive_int, default=bench.DEFAULT_PACKETS,
                        help="packets per in-process measurement")
    parser.add_argument("--live-count", type=positive_int, default=LIVE_COUNT,
                        help="frames sent per live path")
    parser.add_argument("--quick", action="store_true",
                        help=f"{bench.QUICK_PACKETS} packets in process, {QUICK_LIVE_COUNT} "
                             f"live")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where bench_sequencer/<timestamp> goes (default: results/)")
    args = parser.parse_args(argv)
    if args.quick:
        args.packets, args.live_count = bench.QUICK_PACKETS, QUICK_LIVE_COUNT
    return args


def _log(path: Path, rows: list[dict]) -> None:
    log = CsvLog(path, list(rows[0]))
    for row in rows:
        log.append(row)


def run(args: argparse.Namespace) -> Path:
    run_dir = new_run_dir("bench_sequencer", args.results_dir)
    write_config(run_dir, vars(args), live_paths=LIVE_PATHS)
    frames = bench.trace(args.packets)
    steps = len(args.nf) * (len(bench.HISTORY_CORES) + 1)
    with tqdm(total=steps, desc="bench_sequencer", unit="step", file=sys.stderr,
              dynamic_ncols=True) as bar:
        def step(row):
            bar.set_postfix_str(f"{row['nf']} {row.get('cores', 't, c')}")
            bar.update()

        costs = bench.sequencer_costs(frames, nfs=args.nf, progress=step)
        _log(run_dir / "sequence.csv", costs)
        cores = bench.core_costs(frames, nfs=args.nf, progress=step)
        _log(run_dir / "nf_costs.csv", cores)
    live_dir, live = benchmark(LIVE_PATHS, args.live_count, run_dir / "datapath")
    (run_dir / LIVE_CSV).write_bytes((live_dir / "results.csv").read_bytes())
    live = bench.read_live(run_dir / LIVE_CSV)
    sockets = bench.sockets_from_live(costs, live, SOCKETS_NF)
    write_config(run_dir, vars(args), live_paths=LIVE_PATHS, sockets_us=asdict(sockets))
    curve, cross = bench.ceilings(costs, cores, sockets)
    _log(run_dir / CEILINGS_CSV, curve)
    _log(run_dir / CROSSOVER_CSV, cross)
    return run_dir


def tables(run_dir: Path) -> str:
    """The benchmark's three tables, from its CSVs."""
    costs = read_csv(run_dir / "sequence.csv")
    ns = sorted({int(r["cores"]) for r in costs})
    head = ["NF", "record B", *[f"shim µs @{n}" for n in ns], "builder µs @16",
            "stamper µs @16"]
    body = []
    for nf in sorted({r["nf"] for r in costs}):
        mine = {int(r["cores"]): r for r in costs if r["nf"] == nf}
        body.append([nf, mine[ns[0]]["record_size"], *[mine[n]["shim_us"] for n in ns],
                     mine.get(16, {}).get("builder_us", "-"),
                     mine.get(16, {}).get("stamper_us", "-")])
    first = tabulate(body, headers=head, tablefmt="github", disable_numparse=True)
    cross = read_csv(run_dir / CROSSOVER_CSV)
    head = ["NF", "t µs", "c µs", "16 cores demand (pps)", "sequencer",
            "its ceiling @16 (pps)", "it limits SCR"]
    body = [[r["nf"], r["t_us"], r["c_us"], r["demand_at_16_pps"], r["sequencer"],
             r["ceiling_at_16_pps"], r["reading"]] for r in cross]
    second = tabulate(body, headers=head, tablefmt="github", disable_numparse=True)
    head = ["live path", "delivered pps", "out of order", "stamper/shim µs/pkt",
            "builders µs/pkt"]
    body = []
    for r in bench.read_live(run_dir / LIVE_CSV):
        per = r["us_per_packet"]
        body.append([r["path"], r.get("delivered_pps") or r.get("error") or
                     r.get("unavailable"), r.get("out_of_order", ""), per.get("middle", "-"),
                     per.get("builders", "-")])
    third = tabulate(body, headers=head, tablefmt="github", disable_numparse=True)
    return f"{first}\n\n{third}\n\n{second}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (status := start_experiment("bench_sequencer")) is not None:
        return status
    started = time.monotonic()
    try:
        run_dir = run(args)
    except EnvironmentProblem as err:
        print(f"bench_sequencer: {err}", file=sys.stderr)
        return 2
    except bench.LiveRowsMissing as err:  # the live paths failed: no model without them
        print(f"bench_sequencer: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench_sequencer: interrupted", file=sys.stderr)
        return 130
    figure = plot_sequencer(run_dir)
    print()
    print(tables(run_dir))
    print(f"\nplot: {figure}\nresults: {run_dir}  ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
