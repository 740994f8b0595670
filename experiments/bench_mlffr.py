"""Benchmark: the MLFFR search's bias and resolution, against a simulated core.

No network: the simulation of ``experiments.analysis.search_model`` (a sweep's trials:
``--cores`` emulated cores of ``--per-core`` pps, ``--duration`` s per trial, ``--queue``
frames of receive queue per core, trial-to-trial capacity noise ``--noise``). For each
noise level and number of searches per point it measures ``--runs`` points twice, once
judging ``loss`` alone (the search before the steady-state loss existed) and once judging
both figures, and prints the ratio of the reported MLFFR to the true one: its mean is the
**bias**, its 5-95 % range the **resolution**. Also the trials a point cost.

Usage: ``python experiments/bench_mlffr.py [--noise 0 0.1 0.2] [--runs 400]``

Caveat: a model, not the testbed (see ``experiments.analysis.search_model``).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse
from dataclasses import replace

from tabulate import tabulate

from experiments.analysis.search_model import HEADERS, Shape, measure
from experiments.argtypes import non_negative_float, positive_float, positive_int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise", type=non_negative_float, nargs="+", default=[0.0, 0.1, 0.2],
                        help="standard deviations of a trial's capacity factor")
    parser.add_argument("--runs", type=positive_int, default=400, help="points per setting")
    parser.add_argument("--repeats", type=positive_int, nargs="+", default=[1, 3],
                        help="searches per point (the point is their median)")
    parser.add_argument("--cores", type=positive_int, default=4)
    parser.add_argument("--per-core", type=positive_float, default=900.0)
    parser.add_argument("--duration", type=positive_float, default=2.0)
    parser.add_argument("--queue", type=positive_int, default=90, help="frames per core")
    parser.add_argument("--precision", type=positive_float, default=0.06)
    parser.add_argument("--max-steps", type=positive_int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    shape = Shape(cores=args.cores, per_core=args.per_core, duration=args.duration,
                  queue=args.queue, precision=args.precision, max_steps=args.max_steps)
    body = [measure(replace(shape, noise=noise), repeats, steady, args.runs, args.seed).row()
            for noise in args.noise for repeats in args.repeats for steady in (False, True)]
    print(f"{args.cores} cores x {args.per_core:g} pps, {args.duration:g} s trials, "
          f"{args.queue}-frame queues; true MLFFR {shape.true_mlffr:.0f} pps; "
          f"{args.runs} points each")
    print(tabulate(body, headers=HEADERS, tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
