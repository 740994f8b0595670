"""Redraw every plot of one or more results folders from their ``results.csv``.

Usage::

    python -m experiments.plot RESULTS_DIR [RESULTS_DIR ...]
    python experiments/plot.py RESULTS_DIR

For each folder it draws what the CSV supports (``experiments.plots.plotting.plot_run``),
writes ``model_fit.csv``, and prints the figures' paths and a table of the SCR model fit. A
missing folder or CSV ends the command with one line and exit status 2 before anything is
drawn; a folder whose CSV has nothing to plot is reported in one line, the others are still
drawn, and the exit status is 2. The command itself is ``experiments.plots.plotting.main``;
this script only names it ``plot``.

Started as a script with any Python, it re-executes itself in the project's virtual
environment (``.venv``), like the sweeps, because it needs matplotlib and the installed
``experiments`` package.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

from experiments.plots import plotting


def main(argv: list[str] | None = None, prog: str = "plot") -> int:
    """``python -m experiments.plot DIR ...``: see the module docstring."""
    return plotting.main(argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
