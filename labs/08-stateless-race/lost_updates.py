"""Lab 8's helper: per DDoS source, how many packets went in, what Redis counted, and
how many updates were lost, for one run of ``make run`` (or any trial folder).

Run it on the folder that the CLI's ``results`` command prints, from the lab's folder::

    ../../.venv/bin/python lost_updates.py RESULTS_FOLDER

(inside the Mininet CLI: ``sh ../../.venv/bin/python lost_updates.py RESULTS_FOLDER``).

It reads the folder's ``trial.json`` (the trace, the NF's threshold, the oracle's result),
``sequenced.csv`` (which trace packet got which sequence number), ``verdicts.csv`` (each
packet's verdict) and ``store.json`` (Redis's final state, dumped at the end of the run).
A DDoS source's count in Redis must equal its packets: one update per packet. The
``passed`` column counts the packets the cores let through; no more than the threshold
may pass, whatever the order.

Caveat: it knows the DDoS NF only (key: the source address, value: its count), and a
folder of a run that was not judged (no ``trial.json``) has nothing to show.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

from experiments.workload.trace_files import read_pcap
from nfs import make_nf
from sequencer.wire.packet import parse


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "trial.json").is_file():
        print("usage: lost_updates.py RUN_FOLDER  (a folder with trial.json: the CLI's "
              "`results` prints it after a send)", file=sys.stderr)
        return 2
    run = Path(argv[0])
    trial = json.loads((run / "trial.json").read_text())
    config, result = trial["config"], trial["result"]
    if config["nf"] != "ddos":
        print(f"this helper knows the ddos NF only, not {config['nf']}", file=sys.stderr)
        return 2
    nf = make_nf("ddos", **config["nf_params"])
    frames = read_pcap(trial["trace"])
    source_of = {}  # seq -> the source, as Redis's dump names it
    with open(run / "sequenced.csv") as f:
        for row in csv.DictReader(f):
            pkt = parse(frames[int(row["trace_id"])])
            source_of[int(row["seq"])] = nf.key_to_json(nf.key(nf.record(pkt, 0)))
    sent = Counter(source_of.values())
    passed: Counter = Counter()
    with open(run / "verdicts.csv") as f:
        for row in csv.DictReader(f):
            if row["verdict"] == "1":
                passed[source_of[int(row["seq"])]] += 1
    state_path = run / "store.json"
    state = json.loads(state_path.read_text())["state"] if state_path.is_file() else {}
    print(f"{config['strategy']} on {config['cores']} cores, {config['inflight']} in flight, "
          f"store delay {config['store_delay_us'] / 1000:g} ms, threshold {nf.threshold}")
    print(f"{'source':<16}{'packets':>8}{'Redis':>8}{'lost':>6}{'passed':>8}")
    for src in sorted(sent, key=lambda s: tuple(int(x) for x in s.split("."))):
        have = state.get(src, 0)
        print(f"{src:<16}{sent[src]:>8}{have:>8}{sent[src] - have:>6}{passed[src]:>8}"
              + ("   <- more passed than the threshold" if passed[src] > nf.threshold
                 else ""))
    lost = sum(sent.values()) - sum(state.get(s, 0) for s in sent)
    print(f"{lost} of {sum(sent.values())} updates lost; {result.get('store_retries', 0)} "
          f"retries; equivalent to one core in sequence: {result['check_equivalent']}; "
          f"Redis's order list replays to its state: {result.get('check_access_order')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
