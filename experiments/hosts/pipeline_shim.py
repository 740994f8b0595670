"""The parallel sequencer's process (:mod:`sequencer.pipeline`), for the benchmarks.

It runs the stamper between ``--in-iface`` and ``--out-iface`` with ``--builders`` builder
processes until a stop signal, then ends the builders and writes ``pipeline.json`` in
``--out``: what the stamper counted, each builder's frames and CPU time, and the CPU time of
the whole pipeline (``cpu_s``). It sprays as SCR does (``--cores``, the NF's records in
the history) and writes no ground truth: the testbed's trials use the shim
(:mod:`experiments.hosts.shim`); ``experiments/bench_sequencer.py`` runs this.

Run: ``python -m experiments.hosts.pipeline_shim --in-iface bmid-eth0 --out-iface bmid-eth1
--cores 16 --nf ddos --builders 2 --out DIR``. Bad options end it with one line and exit
status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.argtypes import positive_int
from nfs import NF_CLASSES, make_nf, parse_nf_params
from sequencer.dataplane import announce_ready, check_places, run_until_stopped, write_json
from sequencer.pipeline import DEFAULT_BATCH, Pipeline, PipelineBroken

PIPELINE_JSON = "pipeline.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pipeline_shim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-iface", required=True, help="interface the frames come in on")
    parser.add_argument("--out-iface", required=True, help="interface towards the cores")
    parser.add_argument("--cores", type=positive_int, required=True, help="number of cores N")
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--builders", type=positive_int, default=2,
                        help="builder processes (each builds and sends frames)")
    parser.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH,
                        help="at most this many frames per hand-over to a builder")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args(argv)
    try:
        nf = make_nf(args.nf, **parse_nf_params(args.nf_params))
        pipeline = Pipeline(nf, args.cores, args.builders, args.out_iface, args.batch)
        check_places(args.out, args.in_iface, args.out_iface)
    except ValueError as err:
        parser.exit(2, f"pipeline_shim: {err}\n")
    pipeline.start()
    broken = []

    def loop():
        try:
            pipeline.run(args.in_iface, on_ready=announce_ready)
        except PipelineBroken as err:  # one line; the builders' reports say more
            broken.append(str(err))
            print(f"pipeline_shim: {err}", file=sys.stderr, flush=True)

    def finish():
        pipeline.close()
        write_json(args.out / PIPELINE_JSON, {**pipeline.stats.to_json(), "broken": broken})

    status = run_until_stopped(loop, finish)
    return 1 if broken else status


if __name__ == "__main__":
    sys.exit(main())
