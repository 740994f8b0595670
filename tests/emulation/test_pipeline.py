"""SCR end to end on a real network: the controller's rules, exact round-robin, and
equivalence with sequential processing for both NFs on 1, 2 and 4 cores."""

from __future__ import annotations

import csv
import time
from collections import defaultdict

import pytest

from controller.dispatch import expected_flow_count
from experiments.analysis.collect import collect
from experiments.hosts.generator import END_MARKERS
from experiments.runtime.config import TrialConfig
from experiments.runtime.ovs import pipeline_flows
from experiments.runtime.testbed import Testbed
from experiments.runtime.trial import run_trial
from experiments.workload.traffic import KNOCK_NET
from nfs.base import PASS
from sequencer.wire.header import slot_mac
from sequencer.wire.packet import parse
from tests.emulation.conftest import rate_for
from topologies.scr_topo import PortPlan

NF_PARAMS = {"ddos": {"threshold": 30}, "knock": {}}


def read_verdicts(trial_dir) -> list[dict]:
    with open(trial_dir / "verdicts.csv") as f:
        return [{k: int(v) for k, v in row.items()} for row in csv.DictReader(f)]


def spray_counts() -> list[int]:
    """Packets matched so far by each core's spray rule."""
    return [int(f.split("n_packets=")[1].split(",")[0])
            for f in pipeline_flows() if "dl_src=02:53:43:52:00" in f]


def test_controller_installs_the_dispatch_pipeline(tmp_path, trace_path, trace_frames):
    plan = PortPlan(4)
    with Testbed(TrialConfig(nf="ddos", cores=4), tmp_path) as bed:
        flows = pipeline_flows()
        assert len(flows) == expected_flow_count(plan.to_json())
        assert sum(f"in_port={plan.gen_port} actions=output:{plan.shim_in_port}" in f
                   for f in flows) == 1
        for core in range(4):
            spray = [f for f in flows if f"dl_src={slot_mac(core)}" in f]
            assert len(spray) == 1
            assert f"in_port={plan.shim_out_port}" in spray[0]
            assert "dl_type=0x88b5" in spray[0]
            assert spray[0].endswith(f"actions=output:{plan.core_port(core)}")
            assert any(f"ip,in_port={plan.core_port(core)} actions=output:{plan.sink_port}" in f
                       for f in flows)
        assert any("priority=0 actions=drop" in f for f in flows)
        bed.send_trace(trace_path)
        # The packets really crossed the rules: the spray rules matched every packet and
        # the STOP frames (one per core for each of the generator's end markers). OVS
        # refreshes flow counters lazily, so give them a moment to catch up.
        expected = len(trace_frames) + 4 * END_MARKERS
        deadline = time.monotonic() + 5
        while sum(spray_counts()) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum(spray_counts()) == expected
    result = collect(bed.config, trace_path, tmp_path, bed.window)
    assert result["sequenced"] == len(trace_frames)


@pytest.mark.parametrize("cores", [1, 2, 4])
@pytest.mark.parametrize("nf", ["ddos", "knock"])
def test_scr_equals_sequential_with_exact_round_robin(tmp_path, trace_path, trace_frames, nf,
                                                      cores, capacity):
    result = run_trial(TrialConfig(nf=nf, nf_params=NF_PARAMS[nf], cores=cores,
                                   rate_pps=rate_for(capacity, cores)), trace_path, tmp_path)
    assert result["sent"] == result["sequenced"] == result["processed"] == len(trace_frames)
    assert result["check_equivalent"], result["check_problems"]
    assert result["check_packets_checked"] == len(trace_frames)
    assert result["stopped_by_marker"]
    assert 0 < result["passed"] < len(trace_frames)  # the NF really decided both ways
    assert result["sink_received"] == result["passed"] and result["sink_missing"] == 0

    verdicts = read_verdicts(tmp_path)
    seqs_by_core = defaultdict(set)
    for row in verdicts:
        seqs_by_core[row["core"]].add(row["seq"])
    n = len(trace_frames)
    for core in range(cores):
        assert seqs_by_core[core] == set(range(core, n, cores))
    assert max(result["per_core"]) - min(result["per_core"]) <= 1

    if nf == "knock" and cores > 1:
        # A knock sequence spread over several cores still opened the door.
        by_source = defaultdict(list)
        for row in verdicts:
            pkt = parse(trace_frames[row["trace_id"]])
            by_source[pkt.src].append((row["seq"], row["core"], row["verdict"], pkt.dport))
        spread_and_open = [
            src for src, rows in by_source.items()
            if src >= KNOCK_NET
            and len({core for _s, core, _v, port in rows if port in (100, 101, 102)}) > 1
            and any(v == PASS and port == 22 for _s, _c, v, port in rows)
        ]
        assert spread_and_open, "no knocker had its knocks on different cores and got in"
