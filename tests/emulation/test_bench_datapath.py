"""The datapath benchmark runs its simplest paths on real networks and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from experiments.campaigns.bench_datapath import BRIDGE, benchmark
from experiments.workload.traffic import TraceSpec, make_trace
from tests.emulation.conftest import leftovers


def bench_leftovers() -> list[str]:
    """What ``leftovers()`` does not look for: the bench's switch ports and processes."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found = [line.split(": ")[1] for line in links.splitlines() if f" {BRIDGE}-eth" in line]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "experiments.hosts.bench_roles --role" in cmdline:
            found.append(f"{pid}: {cmdline.strip()}")
    return found


def test_bench_measures_ovs_and_relay_paths(tmp_path):
    run_dir, rows = benchmark(["ovs-system", "relay-direct"], count=3000, results_dir=tmp_path)
    assert [r["path"] for r in rows] == ["ovs-system", "relay-direct"]
    for row in rows:
        assert "error" not in row and "unavailable" not in row, row
        assert row["delivered_pps"] > 0
        assert 0 < row["received"] <= row["sent"] <= 3000
    assert rows[0]["us_per_packet"]["ovs"] is not None  # OVS did the forwarding
    assert (run_dir / "results.csv").read_text().count("\n") == 1 + len(rows)
    assert leftovers() == {}
    assert bench_leftovers() == []


def test_the_parallel_sequencer_delivers_every_frame_in_order(tmp_path):
    """The pipeline with 2 builders, paced so that nothing queues over: every frame out,
    in sequence order (the receiver checks each), from both builders."""
    run_dir, rows = benchmark(["pipeline-8-2"], count=3000, results_dir=tmp_path,
                              rate_pps=4000)
    row = rows[0]
    assert "error" not in row and "unavailable" not in row, row
    assert row["received"] == row["sent"] == 3000
    assert row["out_of_order"] == 0
    assert row["us_per_packet"]["builders"] > 0
    assert leftovers() == {}
    assert bench_leftovers() == []


def test_the_receivers_order_check_catches_frames_out_of_order(tmp_path):
    """The check above can fail: SCR frames sent 0, 1, 2, 5, 3, 4, ... through the relay
    are counted out of order once per swap."""
    from experiments.campaigns.bench_datapath import PathSpec, run_path
    from experiments.workload.traffic import write_pcap
    from nfs import make_nf
    from sequencer.shim import Sequencer
    from sequencer.wire.header import ETH_P_SCR

    seq = Sequencer(make_nf("ddos"), 4)
    frames = [seq.sequence(f, i)[1] for i, f in enumerate(make_trace(TraceSpec(packets=60)))]
    swapped = list(frames)
    for at in (5, 20, 40):  # three swaps of neighbours: three decreases
        swapped[at], swapped[at + 1] = swapped[at + 1], swapped[at]
    trace = tmp_path / "scr.pcap"
    write_pcap(trace, swapped)
    spec = PathSpec("scr-relay", False, "", "relay", sink_type=ETH_P_SCR)
    row = run_path(spec, trace, len(swapped), tmp_path / "run", rate_pps=2000)
    assert row["received"] == len(swapped)
    assert row["out_of_order"] == 3
