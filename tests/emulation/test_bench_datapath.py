"""The datapath benchmark runs its simplest paths on real networks and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from experiments.campaigns.bench_datapath import BRIDGE, benchmark
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
