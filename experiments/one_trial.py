"""One trial, start to finish: the smallest complete use of the testbed.

It shows the whole path a packet takes and the check every run gets, in the order the
library does it:

1. calibrate the NF's costs (µs of CPU time → spin rounds of this machine);
2. make a synthetic trace (``--flows`` flows, Zipf ``--skew``) and write it as a pcap;
3. measure what the cores of this configuration carry (two short trials), unless
   ``--rate`` is given, and offer ``--load`` of it;
4. run the trial on a fresh Mininet network: generator → OVS → sequencer shim → OVS →
   ``--cores`` NF cores running ``--strategy`` → sink;
5. print what the oracle found: every verdict and every core's state against one core
   processing the same packets in sequence.

Usage (as root)::

    python experiments/one_trial.py
    python experiments/one_trial.py --nf knock --strategy lock --cores 2
    python experiments/one_trial.py --cores 16 --core-share 0.05 --work-us 450 \
        --rate 1200 --port-type system   # what AF_XDP ports save: run it with afxdp-nonpmd

Writes ``results/one_trial/<timestamp>/`` (``config.json``, the trial's files under
``trial/``). Caveats: one trial at one rate, not an MLFFR (the sweeps search for that);
the capacity measurement has ~10 % noise between runs on a 2-CPU machine.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

from tabulate import tabulate

from experiments.analysis.errors import TrialError
from experiments.argtypes import fraction, non_negative_float, positive_float, positive_int
from experiments.runtime.calibration import DEFAULT_WORK_US, calibrate
from experiments.runtime.capacity import measure_capacity
from experiments.runtime.config import TrialConfig
from experiments.runtime.cpu_quota import DEFAULT_CORE_SHARE
from experiments.runtime.ovs import PORT_TYPES
from experiments.runtime.preflight import EnvironmentProblem, check_environment
from experiments.runtime.results import new_run_dir, write_config
from experiments.runtime.trial import run_trial
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from nfs import NF_CLASSES
from nfs.strategies import names as strategy_names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="one_trial", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nf", choices=sorted(NF_CLASSES), default="ddos")
    parser.add_argument("--strategy", choices=strategy_names(), default="scr")
    parser.add_argument("--cores", type=positive_int, default=4)
    parser.add_argument("--flows", type=positive_int, default=200)
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of flow sizes")
    parser.add_argument("--packets", type=positive_int, default=3000)
    parser.add_argument("--load", type=fraction, default=0.5,
                        help="offer this fraction of the measured capacity")
    parser.add_argument("--rate", type=positive_float, help="offer this rate (pps) instead")
    parser.add_argument("--core-share", type=positive_float, default=DEFAULT_CORE_SHARE,
                        help="CPU quota of each emulated core, fraction of one CPU")
    parser.add_argument("--work-us", type=non_negative_float, default=DEFAULT_WORK_US,
                        help="stateless compute per packet, µs of CPU time")
    parser.add_argument("--port-type", choices=PORT_TYPES, default="auto",
                        help="the switch's ports (auto: AF_XDP where the kernel allows it)")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        args.config = TrialConfig(nf=args.nf, strategy=args.strategy, cores=args.cores,
                                  core_share=args.core_share, port_type=args.port_type)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_environment()
    except EnvironmentProblem as err:
        print(f"one_trial: {err}", file=sys.stderr)
        return 2
    costs = calibrate(work_us=args.work_us)  # 1. the NF's costs in this machine's rounds
    config = replace(args.config, nf_params=costs.nf_params(), spin_ns=costs.ns_per_round,
                     transfer_work=costs.transfer_work, packets=args.packets)
    run_dir = new_run_dir("one_trial", args.results_dir)
    trace = run_dir / "trace.pcap"  # 2. the workload
    write_pcap(trace, make_trace(TraceSpec(packets=args.packets, flows=args.flows,
                                           skew=args.skew)))
    try:
        if args.rate is None:  # 3. what these cores carry, measured
            capacity = measure_capacity(config, trace, run_dir / "capacity")
            config = replace(config, rate_pps=round(capacity.rate(args.load), 1))
        else:
            config = replace(config, rate_pps=args.rate)
        write_config(run_dir, {k: v for k, v in vars(args).items() if k != "config"},
                     config=asdict(config), costs=costs.to_json())
        result = run_trial(config, trace, run_dir / "trial")  # 4. the live run
    except TrialError as err:
        print(f"one_trial: {err}", file=sys.stderr)
        return 1
    rows = [(key, result[key]) for key in (  # 5. what it delivered, and the oracle's verdict
        "strategy", "cores", "offered_pps", "delivered_pps", "loss", "faithful",
        "check_equivalent", "check_consistent", "port_type")]
    fidelity = result.get("fidelity") or {}  # what the infrastructure took meanwhile
    rows += [(f"busy {name}", busy) for name, busy in sorted(fidelity.get("busy", {}).items())]
    rows.append(("machine idle", fidelity.get("machine_idle")))
    print(tabulate(rows, tablefmt="plain"))
    for problem in result["check_problems"]:
        print(f"  oracle: {problem}")
    print(f"results: {run_dir}")
    return 0 if result["check_consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
