"""The NF worker: one process per emulated core, for every strategy.

It builds the core its strategy declares (``--strategy``, see :mod:`nfs.strategies`; each
strategy adds its own options), then runs it on the frames of its core port until a STOP
frame or a stop signal, and writes the core's results in ``--out`` (see
:mod:`nfs.cores.base`).

Options every strategy has: the NF (``--nf``, ``--nf-params``), the core's place
(``--iface``, ``--core``, ``--cores``), its receive queue (``--rcvbuf``, like a NIC RX
ring: an overloaded core drops frames, which the kernel counts), the spin calibration
(``--spin-ns``), ``--health-ms`` (heartbeats to the controller, which resprays when a
watched core goes silent) and ``--plugin FILE`` (NFs and strategies from a file outside the
package, :mod:`nfs.plugins`: a lab's student code, a researcher's new strategy).

With ``--replicate-to`` or ``--backup-listen`` a ``single`` core is the primary or the backup
of a primary-backup pair, kept equal by access-order replay (see :mod:`nfs.cores.replication`).

Run: ``python -m nfs.worker --iface nf-eth0 --core 0 --cores 4 --nf ddos --out DIR``.
Bad options end the worker with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nfs import NF_CLASSES, make_nf, parse_nf_params
from nfs.cores import replication
from nfs.cores.heartbeat import CORE, DEFAULT_HEARTBEAT_MS, Heartbeat
from nfs.plugins import add_plugin_flag, preload_plugins
from nfs.strategies import get, names
from sequencer.dataplane import SOCKET_BUFFER, check_places, run_until_stopped
from sequencer.wire import header as h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", required=True, help="this core's interface")
    parser.add_argument("--core", type=int, required=True, help="core index i (0-based)")
    parser.add_argument("--cores", type=int, required=True, help="number of cores N")
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--strategy", default="scr", choices=names())
    parser.add_argument("--spin-ns", type=float, default=0.0,
                        help="the calibrated cost of a spin round (ns): keep the NF's "
                             "costs at their CPU time as it drifts (0: fixed rounds)")
    parser.add_argument("--rcvbuf", type=int, default=SOCKET_BUFFER,
                        help="receive queue in bytes (the core's RX ring)")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--health-ms", type=float, default=0.0,
                        help="send a heartbeat frame to the controller this often (0: none)")
    parser.add_argument("--replicate-to", metavar="HOST:PORT",
                        help="primary-backup: be the primary, replicating to the backup there")
    parser.add_argument("--backup-listen", metavar="HOST:PORT",
                        help="primary-backup: be the backup, taking the primary's log there")
    parser.add_argument("--heartbeat-ms", type=float, default=DEFAULT_HEARTBEAT_MS,
                        help="primary-backup: send a heartbeat frame this often (0: none)")
    add_plugin_flag(parser)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The common options, then the chosen strategy's own (it adds them to the parser)."""
    preload_plugins(argv, "worker")
    parser = build_parser()
    known, _rest = parser.parse_known_args(argv)
    get(known.strategy).add_flags(parser.add_argument_group(f"{known.strategy} strategy"))
    args = parser.parse_args(argv)
    if not 1 <= args.cores <= h.MAX_CORES:
        parser.error(f"--cores must be in 1..{h.MAX_CORES} (the SCR header's core field)")
    if not 0 <= args.core < args.cores:
        parser.error(f"--core must be in 0..{args.cores - 1}")
    if args.rcvbuf < 4096:
        parser.error("--rcvbuf must be >= 4096 bytes")
    if not 0 <= args.health_ms <= 60_000:
        parser.error("--health-ms must be in 0..60000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replicate_to or args.backup_listen:
        return replication.main(args)
    strategy = get(args.strategy)
    beat = None
    try:
        nf = make_nf(args.nf, **parse_nf_params(args.nf_params))
        strategy.check_cores(args.cores)
        core = strategy.make_core(nf, args.core, args.cores, args)
        if args.spin_ns:
            core.govern(args.spin_ns)
        check_places(args.out, args.iface)  # after the values: a bad value says so first
        core.start()
        if args.health_ms:
            beat = Heartbeat(args.iface, CORE, args.health_ms / 1000)
    except (ValueError, OSError) as err:
        print(f"worker: {err}", file=sys.stderr)
        return 2
    if beat is not None:  # beating from now on: ready (a joining core has its snapshot)
        beat.start()

    def finish() -> None:
        if beat is not None:
            beat.stop()
        core.write_results(args.out)

    return run_until_stopped(lambda: strategy.runtime(core, args.iface, args.rcvbuf), finish)


if __name__ == "__main__":
    sys.exit(main())
