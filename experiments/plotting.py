"""Plots drawn from a results folder's CSV, never from memory: any run can be redrawn.

``python -m experiments.plotting RESULTS_DIR`` redraws every plot a folder supports.
``plot_skew_sweep`` draws, for a skew sweep, the delivered rate against flow skew with one
line per core count (left) and the loss (right); points whose sequential-equivalence check
failed are marked with a red ×.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a testbed machine
import matplotlib.pyplot as plt  # noqa: E402

from experiments.results import read_csv  # noqa: E402

SKEW_PLOT = "skew_sweep.png"


def plot_skew_sweep(run_dir: Path) -> Path:
    """Draw ``skew_sweep.png`` from ``run_dir/results.csv``; return its path."""
    run_dir = Path(run_dir)
    rows = [r for r in read_csv(run_dir / "results.csv") if not r.get("error")]
    if not rows:
        raise ValueError(f"{run_dir / 'results.csv'} has no successful trials to plot")
    series: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        series[int(row["cores"])].append(row)
    fig, (ax_rate, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for cores in sorted(series):
        points = sorted(series[cores], key=lambda r: float(r["skew"]))
        skews = [float(r["skew"]) for r in points]
        line, = ax_rate.plot(skews, [float(r["delivered_pps"]) for r in points], marker="o",
                             label=f"{cores} core{'s' if cores > 1 else ''}")
        ax_loss.plot(skews, [100 * float(r["loss"]) for r in points], marker="o",
                     color=line.get_color())
        bad = [r for r in points if r["check_equivalent"] != "True"]
        ax_rate.scatter([float(r["skew"]) for r in bad], [float(r["delivered_pps"]) for r in bad],
                        marker="x", s=80, color="red", zorder=3)
    nf = rows[0]["nf"]
    offered = max(float(r["offered_pps"]) for r in rows)
    ax_rate.axhline(offered, color="grey", linestyle=":", label="offered")
    ax_rate.set(xlabel="flow skew (Zipf exponent)", ylabel="delivered (packets/s)",
                title=f"SCR, {nf}: delivered rate", ylim=(0, None))
    ax_loss.set(xlabel="flow skew (Zipf exponent)", ylabel="loss (%)", title="loss",
                ylim=(0, None))
    ax_rate.legend()
    for ax in (ax_rate, ax_loss):
        ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, "red × = replicas or verdicts differ from sequential processing",
             fontsize=7, color="red")
    fig.tight_layout()
    path = run_dir / SKEW_PLOT
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


PLOTTERS = {"skew_sweep": plot_skew_sweep}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redraw the plots of a results folder.")
    parser.add_argument("run_dir", type=Path, help="e.g. results/skew_sweep/20261122-120000")
    args = parser.parse_args(argv)
    if not (args.run_dir / "results.csv").is_file():
        parser.exit(2, f"plotting: no results.csv in {args.run_dir}\n")
    kind = args.run_dir.resolve().parent.name
    plotter = PLOTTERS.get(kind)
    if plotter is None:
        parser.exit(2, f"plotting: do not know how to plot a {kind!r} folder\n")
    try:
        print(plotter(args.run_dir))
    except (ValueError, KeyError) as err:
        parser.exit(2, f"plotting: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
