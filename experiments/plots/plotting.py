"""Paper-style plots and the SCR throughput model fit, drawn from a results folder's CSV.

Everything here reads ``RESULTS_DIR/results.csv`` (never in-memory results), so any run can
be redrawn later with ``python -m experiments.plot RESULTS_DIR`` (or ``python -m
experiments.plots.plotting RESULTS_DIR``: the same command, named ``plotting``).

- :func:`plot_run` draws whatever the CSV supports and writes ``model_fit.csv``; it is the
  entry point, for the sweeps and the command line. One module per figure kind:
- ``experiments.plots.cores``: Fig. 6 style throughput vs. cores, one figure per skew
  (``cores_skew<s>.png``), with the fitted SCR model ``MLFFR(n) = n / (t + (n-1) c)``
  (the fit: ``experiments.analysis.model``), and ``model_fit.csv``;
- ``experiments.plots.skew``: throughput vs. flow skew at the largest core count
  (``skew.png``);
- ``experiments.plots.latency``: throughput and latency vs. the store latency injected into
  the ``service``/``remote`` strategies, one line per strategy (``store_delay.png``);
- ``experiments.plots.loss``: MLFFR vs. the loss injected at the dispatch stage, and the
  MLFFR relative to the same point without loss, one line per NF (``loss.png``);
- ``experiments.plots.common`` reads the CSV into points and fixes a style per strategy;
  ``experiments.plots.figures`` draws the series, legend and caption they share.
- :func:`main` is the command line: :func:`fit_table` prints ``model_fit.csv`` back.

Caveats:
- Only faithful, error-free SCR points measured in mode "mlffr" enter the model fit
  (``experiments.plots.cores``); fixed-mode data gets no model.
- Unfaithful points (the generator, OVS, shim or sink was the bottleneck) are drawn hollow,
  reached by faint dotted segments, and counted per bottleneck in the caption; an empty
  ``faithful`` cell is not a flag. Points whose sequential-equivalence check failed get a
  red ×. Rows with an ``error`` are skipped and counted in the caption.
- Repeated rows for one (mode, NF, strategy, skew, cores) are one point's searches: the
  median, with error bars from their min to their max; rows with an
  injected loss or a store delay are their own series (see ``experiments.plots.common``).
- A CSV mixing modes gets one figure per mode (``cores_skew<s>_<mode>.png``,
  ``skew_<mode>.png``): MLFFR and fixed-rate numbers never share an axis.
- CSVs written before some columns existed still load (see ``experiments.plots.common``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from experiments.plots.common import RESULTS_CSV, has_core_scaling, load_results
from experiments.plots.cores import MODEL_FIT_CSV, draw_cores, write_model_fit
from experiments.plots.latency import delay_rows, plot_delay
from experiments.plots.loss import loss_rows, plot_loss
from experiments.plots.skew import draw_skew
from experiments.runtime.results import read_csv


def plot_run(run_dir: Path) -> list[Path]:
    """Draw every plot ``run_dir/results.csv`` supports and write ``model_fit.csv``; return
    the figures' paths. ValueError when there is nothing to plot."""
    run_dir = Path(run_dir)
    points, errors = load_results(run_dir)
    if not points:
        raise ValueError(f"{run_dir / RESULTS_CSV} has no rows without an error "
                         f"({errors} skipped for an error)")
    modes = sorted({p.mode for p in points})
    paths: list[Path] = []
    if len({r["delay_ms"] for r in delay_rows(run_dir)}) >= 2:
        paths.append(plot_delay(run_dir))
    if len({r["loss_pct"] for r in loss_rows(run_dir)}) >= 2:
        paths.append(plot_loss(run_dir))
    for mode in modes:
        suffix = f"_{mode}" if len(modes) > 1 else ""
        mine = [p for p in points if p.mode == mode]
        if has_core_scaling(mine):
            paths += draw_cores(run_dir, points, errors, mode, suffix)
        if len({p.skew for p in mine}) >= 2:
            paths.append(draw_skew(run_dir, points, errors, mode, suffix))
    if not paths:
        raise ValueError(
            f"nothing to plot in {run_dir / RESULTS_CSV}: needs 2 or more core counts for one "
            f"strategy, 2 or more skews, store delays or loss rates "
            f"(cores {sorted({p.cores for p in points})}, "
            f"skews {sorted({p.skew for p in points})})")
    write_model_fit(run_dir, points)  # always, so no stale fit outlives a redraw
    return paths


def fit_table(run_dir: Path) -> str:
    """The folder's ``model_fit.csv`` as a table (read back from the file, not memory)."""
    rows = read_csv(Path(run_dir) / MODEL_FIT_CSV)
    if not rows:
        return "model fit: none (needs faithful SCR MLFFR points at 2 or more core counts)"
    def interval(r: dict, name: str) -> str:
        low, high = r.get(f"{name}_low") or "", r.get(f"{name}_high") or ""
        return f"{float(low):.1f} – {float(high):.1f}" if low and high else "-"

    body = [[r["nf"], r["skew"], f"{float(r['t_us']):.3f}", interval(r, "t_us"),
             f"{float(r['c_us']):.3f}", interval(r, "c_us"),
             f"{100 * float(r['max_rel_error']):.1f}", r["points"]] for r in rows]
    return tabulate(body, headers=["nf", "skew", "t (µs)", "t 95 %", "c (µs)", "c 95 %",
                                   "max error %", "searches"],
                    tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None, prog: str = "plotting") -> int:
    """Redraw the plots of each folder given; print the figures' paths and the model fit.

    A missing folder or CSV ends the command with one line and exit status 2 before
    anything is drawn; a folder whose CSV has nothing to plot is reported in one line, the
    others are still drawn, and the exit status is 2."""
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
