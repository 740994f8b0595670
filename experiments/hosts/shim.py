"""The sequencer host's process: the shim (:mod:`sequencer.shim`) for one trial's NF and
strategy.

It asks the strategy registry how to spray (``--strategy``: the strategy's ``spray``), builds
the NF whose records the history carries (``--nf``, ``--nf-params``), hands both to
:class:`sequencer.shim.Sequencer` and runs it between the switch's two shim ports until a
stop signal; then it writes the ground truth (``sequenced.pcap``, ``sequenced.csv``,
``shim.json``) in ``--out``. A ``--plugin`` file (:mod:`nfs.plugins`) may declare NFs,
strategies and a ``SEQUENCER`` class that replaces :class:`~sequencer.shim.Sequencer` (a
lab's student sequencer).

Run: ``python -m experiments.hosts.shim --in-iface seq-eth0 --out-iface seq-eth1 --cores 4
--nf ddos --strategy scr --out DIR``. Bad options end it with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from nfs import NF_CLASSES, make_nf, parse_nf_params
from nfs.plugins import add_plugin_flag, plugin_sequencer, preload_plugins
from nfs.strategies import get, names
from sequencer.dataplane import check_places, run_until_stopped
from sequencer.shim import DEFAULT_REBALANCE_MS, Sequencer, run, write_results


def main(argv: list[str] | None = None) -> int:
    modules = preload_plugins(argv, "shim")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-iface", required=True, help="interface the switch feeds")
    parser.add_argument("--out-iface", required=True, help="interface towards the cores")
    parser.add_argument("--cores", type=int, required=True, help="number of cores N")
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--strategy", default="scr", choices=names())
    parser.add_argument("--loss", type=float, default=0.0,
                        help="drop this fraction of sequenced packets (injected loss, 0..1)")
    parser.add_argument("--loss-seed", type=int, default=1, help="seed of the injected loss")
    parser.add_argument("--withhold", type=int, nargs="*", default=[], metavar="SEQ",
                        help="fault injection, to test the oracle: send these packets with "
                             "their oldest history record withheld")
    parser.add_argument("--plan", type=Path, default=None,
                        help="rsspp: the file the rebalancing moves are written to")
    parser.add_argument("--rebalance-ms", type=float, default=DEFAULT_REBALANCE_MS,
                        help="rsspp: how often the indirection table is rebalanced")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    add_plugin_flag(parser)
    args = parser.parse_args(argv)
    try:
        nf = make_nf(args.nf, **parse_nf_params(args.nf_params))
        sequencer = plugin_sequencer(modules) or Sequencer
        # Only RSS++ takes a plan: a lab's sequencer need not know these options.
        rebalancing = ({"plan": args.plan, "rebalance_ms": args.rebalance_ms}
                       if args.plan is not None else {})
        seq = sequencer(nf, args.cores, get(args.strategy).spray, args.loss, args.loss_seed,
                        args.withhold, **rebalancing)
        check_places(args.out, args.in_iface, args.out_iface)  # after the values
    except ValueError as err:
        parser.exit(2, f"shim: {err}\n")
    stats: Counter = Counter()
    return run_until_stopped(lambda: run(seq, args.in_iface, args.out_iface, stats),
                             lambda: write_results(seq, stats, args.out, args.strategy))


if __name__ == "__main__":
    sys.exit(main())
