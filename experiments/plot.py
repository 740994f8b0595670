"""Redraw every plot of one or more results folders from their ``results.csv``.

Usage::

    python -m experiments.plot RESULTS_DIR [RESULTS_DIR ...]
    python experiments/plot.py RESULTS_DIR

For each folder it draws what the CSV supports (``experiments.plots.plotting.plot_run``), writes
``model_fit.csv``, and prints the figures' paths and a table of the SCR model fit. A missing
folder or CSV ends the command with one line and exit status 2 before anything is drawn; a
folder whose CSV has nothing to plot is reported in one line, the others are still drawn,
and the exit status is 2.

Started as a script with any Python, it re-executes itself in the project's virtual
environment (``.venv``), like the sweeps, because it needs matplotlib and the installed
``experiments`` package.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

import argparse

from tabulate import tabulate

from experiments.plots.plotting import MODEL_FIT_CSV, RESULTS_CSV, plot_run
from experiments.runtime.results import read_csv


def fit_table(run_dir: Path) -> str:
    """The folder's ``model_fit.csv`` as a table (read back from the file, not memory)."""
    rows = read_csv(Path(run_dir) / MODEL_FIT_CSV)
    if not rows:
        return "model fit: none (needs faithful SCR MLFFR points at 2 or more core counts)"
    body = [[r["nf"], r["skew"], f"{float(r['t_us']):.3f}", f"{float(r['c_us']):.3f}",
             f"{100 * float(r['max_rel_error']):.1f}", r["points"]] for r in rows]
    return tabulate(body, headers=["nf", "skew", "t (µs)", "c (µs)", "max error %", "points"],
                    tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None, prog: str = "plot") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Redraw the plots and the model fit of results folders.")
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RESULTS_DIR",
                        help="e.g. results/mlffr/20261122-120000")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        if not run_dir.is_dir():
            parser.exit(2, f"{prog}: no such folder: {run_dir}\n")
        if not (run_dir / RESULTS_CSV).is_file():
            parser.exit(2, f"{prog}: no {RESULTS_CSV} in {run_dir}\n")
    status = 0
    for run_dir in args.run_dirs:
        try:
            paths = plot_run(run_dir)
        except ValueError as err:
            print(f"{prog}: {err}", file=sys.stderr)
            status = 2
            continue
        for path in paths:
            print(path)
        print(fit_table(run_dir))
    return status


if __name__ == "__main__":
    sys.exit(main())
