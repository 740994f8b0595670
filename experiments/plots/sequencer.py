"""The sequencer's ceiling beside the NF cores' demand (``bench_sequencer.py``'s figure).

:func:`plot_sequencer` reads a ``bench_sequencer`` run's ``ceilings.csv``, ``crossover.csv``
and ``live.csv`` and draws ``sequencer.png``: one panel per NF, packets/s against the
number of cores (both logarithmic), the cores' demand ``n / (t + (n-1) c)`` (whole CPUs),
the single shim's ceiling and the parallel sequencer's with 1, 2, 4 and 8 builder CPUs,
the crossover core counts marked, and the live measurements (``ddos`` only: the shim and
the pipeline on direct veth links) as points.

Caveat: the ceilings past one CPU are a model of measured per-stage costs (see
``experiments.campaigns.bench_sequencer``); the live points were measured on this machine,
whose two CPUs the sender and the receiver share with the sequencer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt  # the package chose the Agg backend

from experiments.runtime.results import read_csv

CEILINGS_CSV = "ceilings.csv"
CROSSOVER_CSV = "crossover.csv"
LIVE_CSV = "live.csv"
FIGURE = "sequencer.png"
LIVE_NF = "ddos"  # the NF the live shim and pipeline ran
COLORS = {"shim": "#c0392b", "pipeline-1": "#85c1e9", "pipeline-2": "#5dade2",
          "pipeline-4": "#2e86c1", "pipeline-8": "#1b4f72"}


def _live_points(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Measured live rates by series: ``shim`` and ``pipeline-<K>``, (cores, pps) each."""
    points: dict[str, list[tuple[int, float]]] = {"shim": []}
    path = run_dir / LIVE_CSV
    if not path.exists():
        return points
    for row in read_csv(path):
        name, rate = row["path"], row.get("delivered_pps")
        if not rate or row.get("error") or row.get("unavailable"):
            continue
        if name.startswith("shim-direct-"):
            points["shim"].append((int(name.rsplit("-", 1)[1]), float(rate)))
        elif name.startswith("pipeline-"):
            _, cores, builders = name.split("-")
            points.setdefault(f"pipeline-{builders}", []).append((int(cores), float(rate)))
    return points


def plot_sequencer(run_dir: Path) -> Path:
    """Draw ``sequencer.png`` in ``run_dir`` from its CSVs; its path."""
    run_dir = Path(run_dir)
    rows = read_csv(run_dir / CEILINGS_CSV)
    cross = {(r["nf"], r["sequencer"]): r["crossover_cores"]
             for r in read_csv(run_dir / CROSSOVER_CSV)}
    nfs = sorted({r["nf"] for r in rows})
    if not nfs:
        raise ValueError(f"{run_dir / CEILINGS_CSV} has no rows")
    live = _live_points(run_dir)
    fig, axes = plt.subplots(1, len(nfs), figsize=(3.4 * len(nfs), 3.6), sharey=True,
                             squeeze=False)
    for ax, nf in zip(axes[0], nfs, strict=True):
        mine = [r for r in rows if r["nf"] == nf]
        demand = sorted({(int(r["cores"]), float(r["demand_pps"])) for r in mine})
        ax.plot(*zip(*demand, strict=True), color="black", lw=2, label="cores' demand")
        for name, color in COLORS.items():
            curve = sorted((int(r["cores"]), float(r["ceiling_pps"]))
                           for r in mine if r["sequencer"] == name)
            if not curve:
                continue
            label = "shim (1 CPU)" if name == "shim" else f"pipeline, {name[9:]} builder CPUs"
            ax.plot(*zip(*curve, strict=True), color=color, lw=1.4, label=label,
                    ls="-" if name == "shim" else "--")
            at = cross.get((nf, name))
            if at:
                ax.axvline(int(at), color=color, ls=":", lw=1)
        if nf == LIVE_NF:
            for name, measured in sorted(live.items()):
                if not measured:
                    continue
                color = COLORS.get(name, "#7f8c8d")  # a builder count the model lacks
                ax.scatter(*zip(*measured, strict=True), marker="o" if name == "shim" else "s",
                           color=color, edgecolor="black", zorder=5, s=24,
                           label=f"{name}, measured here")
        shim_at = cross.get((nf, "shim"))
        ax.set_title(f"{nf}: the shim limits SCR " + (f"from {shim_at} cores" if shim_at
                                                     else "nowhere up to 64"), fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("NF cores (whole CPUs)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("packets/s")
    axes[0][-1].legend(fontsize=6.5, loc="lower right")
    fig.suptitle("Software sequencer's ceiling vs. the SCR cores' demand n/(t+(n-1)c)",
                 fontsize=10)
    fig.tight_layout()
    path = run_dir / FIGURE
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m experiments.plots.sequencer RUN_DIR", file=sys.stderr)
        return 2
    try:
        print(plot_sequencer(Path(args[0])))
    except (OSError, ValueError, KeyError) as err:
        print(f"plots.sequencer: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
