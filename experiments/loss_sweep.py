"""Loss sweep: SCR's throughput and correctness when the dispatch stage loses packets.

SCR's replicas stay equal only while every core sees every history record. Here the shim
drops a seeded fraction of the packets it stamped (``--losses``, the injected loss) before
they reach a core, and each SCR core, with ``--recovery on``, keeps a ring of the records it
saw in shared memory and reads the ones it missed from its peers' rings
(``nfs/cores/recovery.py``). For every NF and injected loss rate the sweep measures SCR's MLFFR
and checks, in every trial:

* ``check_equivalent`` (strict): every replica and every verdict equal one core processing
  *every* sequenced packet in the sequencer's order: recovery filled every gap;
* ``check_consistent``: the same without the updates the ground truth shows no core ever
  had (each gap a replica declares is checked against what the cores received).

The trial's ``loss`` (what the MLFFR search judges) leaves the injected drops out, so the
search measures what the cores sustain while they recover, not the injection itself.

Acceptance target (the paper's Fig. 9 claim): at 1 % injected loss, for every NF, the states
equal the reference (``check_equivalent``), and the MLFFR with recovery is at least 80 % of
the MLFFR at no loss. The table's "vs no loss" column is that ratio; ``loss.png`` draws it,
with the 80 % line. See ``experiments.campaigns.sweep`` for what each run writes
(``results/loss_sweep/<timestamp>/``).

Usage (as root)::

    python experiments/loss_sweep.py --quick
    python experiments/loss_sweep.py
    python experiments/loss_sweep.py --nf ddos --losses 0 0.01 0.05 --recovery off

Caveats: a dropped packet was stamped, so its record still reaches the other cores in the
next N-1 packets' histories; the core it was meant for lacks N records (its packet and the
history it carried) and fetches them from its peers. A record that no core got (its packet
and the N-1 after it all dropped: ``lost_everywhere``) is gone for every replica alike, which
the checks allow for.
A fetch reads shared memory (microseconds) but may wait for a peer that has not reached
the record yet (its CPU quota): the fetch latency is in the table. With ``--recovery off``
the replicas keep their gaps: consistent, not equivalent.
Throughputs move by 10-20 % between runs on this two-CPU machine (see the README): compare
the ratio within one run. Started with any Python, it re-executes itself in the project's
virtual environment.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

from experiments.campaigns import sweep

DEFAULTS = {"nf": [sweep.ALL], "strategies": ["scr"], "cores": [4], "skews": [1.0],
            "losses": [0.0, 0.005, 0.01, 0.015], "recovery": "on", "mode": "mlffr",
            "duration": 2.0, "precision": 0.06, "max_steps": 5}
QUICK = {"nf": ["ddos", "knock"], "losses": [0.0, 0.01], "duration": 1.5, "max_steps": 4,
         "precision": 0.1,
         "repeats": 1, "latency_loads": []}


def parse_args(argv: list[str] | None):
    parser = sweep.build_parser("loss_sweep", __doc__.split("\n\n")[0], DEFAULTS, QUICK)
    return sweep.finish_args(parser, parser.parse_args(argv), QUICK)


def main(argv: list[str] | None = None) -> int:
    return sweep.main("loss_sweep", parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
