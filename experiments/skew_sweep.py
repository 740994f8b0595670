"""Skew sweep: throughput of each strategy as the flow-size skew grows (the paper's story).

For every flow skew (Zipf exponent of the flow sizes: 0 is uniform; with 200 flows the
largest flow carries 40 % of the packets at 1.5 and 61 % at 2) it runs every strategy on
the largest core count, plus ``single`` on one core, and measures each point's MLFFR (or,
with ``--mode fixed``, the delivered rate at one offered rate). SCR should stay flat, RSS
sharding should collapse as one flow dominates. See ``experiments.campaigns.sweep`` for what
each run writes (``results/skew_sweep/<timestamp>/``) and ``README.md`` for the flags.

Usage (as root)::

    python experiments/skew_sweep.py --quick
    python experiments/skew_sweep.py --nf ddos knock --skews 0 1 2 --cores 4

Started with any Python, it re-executes itself in the project's virtual environment
(``.venv``, made by ``make setup``).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

from experiments.campaigns import sweep

DEFAULTS = {"nf": ["ddos"], "strategies": ["scr", "lock", "shard", "rsspp", "single", "service",
                                            "remote"],
            "cores": [4],
            "skews": [0.0, 0.5, 1.0, 1.5, 2.0], "mode": "mlffr", "duration": 2.0,
            "precision": 0.06, "max_steps": 5}
QUICK = {"skews": [0.0, 2.0], "duration": 1.5, "max_steps": 4, "precision": 0.1,
         "repeats": 1, "latency_loads": []}


def parse_args(argv: list[str] | None):
    parser = sweep.build_parser("skew_sweep", __doc__.split("\n\n")[0], DEFAULTS, QUICK)
    return sweep.finish_args(parser, parser.parse_args(argv), QUICK)


def main(argv: list[str] | None = None) -> int:
    return sweep.main("skew_sweep", parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
