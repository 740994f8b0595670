"""Core sweep: throughput of each strategy as cores are added (the paper's Fig. 6).

For every NF and flow skew it measures each strategy's MLFFR on each core count (``single``
on one core), and draws one panel per NF with one line per strategy and the fitted model
``MLFFR(n) = n / (t + (n-1) c)`` beside SCR. The cores are emulated: each has its own CPU
quota (``--core-share`` of a CPU), so k cores have k times one core's capacity as long as
the machine has room; the fidelity monitor marks points where it did not. See
``experiments.campaigns.sweep`` for what each run writes (``results/core_sweep/<timestamp>/``).

Usage (as root)::

    python experiments/core_sweep.py --quick
    python experiments/core_sweep.py --nf all --skews 2
    python experiments/core_sweep.py --nf ddos --skews 0 2 --cores 1 2 4 6 8

Started with any Python, it re-executes itself in the project's virtual environment.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

from experiments.campaigns import sweep

DEFAULTS = {"nf": ["ddos"], "strategies": ["scr", "lock", "shard", "rsspp", "service", "remote"],
            "cores": [1, 2, 4, 6, 8],
            "skews": [2.0], "mode": "mlffr", "duration": 2.0, "precision": 0.06,
            "max_steps": 5}
QUICK = {"cores": [1, 2, 4], "duration": 1.5, "max_steps": 4, "precision": 0.1,
         "repeats": 1, "latency_loads": []}


def parse_args(argv: list[str] | None):
    parser = sweep.build_parser("core_sweep", __doc__.split("\n\n")[0], DEFAULTS, QUICK)
    return sweep.finish_args(parser, parser.parse_args(argv), QUICK)


def main(argv: list[str] | None = None) -> int:
    return sweep.main("core_sweep", parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
