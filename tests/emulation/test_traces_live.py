"""A capture the testbed did not write, replayed live, and its own check trusted.

The capture is built here with Scapy's layers and written by Scapy's pcapng writer, as any
other tool would: addresses from 10.0.0.0/8, 192.0.2.0/24 and 203.0.113.0/24 (never sent:
the import maps them into 198.18.0.0/15), random payloads (no trace ids), some IPv6 and ARP
frames (skipped and counted), and port knockers whose three knocks are placed so that, on
4 cores, each knock of a source lands on a different core. Replayed through the port
knocking firewall under SCR:

* its own check says equivalent, and the run really opened the door for the good knockers
  (and only for them), with each of their knocks on a different core;
* the same run with one history record withheld by the shim (``TrialConfig.withhold``) is
  neither equivalent nor consistent;
* an experiment given a capture that is not one ends with one line and makes no results
  folder.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import defaultdict

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter

from experiments.runtime.config import TrialConfig
from experiments.runtime.results import REPO_ROOT
from experiments.runtime.trial import run_trial
from experiments.workload.trace_files import import_trace
from nfs.base import PASS
from nfs.port_knocking import DEFAULT_KNOCKS
from tests.emulation.conftest import rate_for

CORES = 4
SERVER = "203.0.113.5"
SERVICE_PORT = 22
GOOD = [f"10.0.{i}.7" for i in range(4)]
BAD = [f"10.0.{i}.9" for i in range(4, 7)]  # knock in the wrong order: stay out


def _tcp(rng: random.Random, src: str, dport: int, flags: str) -> Ether:
    payload = Raw(rng.randbytes(rng.randint(0, 40)))
    return (Ether(src="00:16:3e:11:22:33", dst="00:16:3e:44:55:66")
            / IP(src=src, dst=SERVER) / TCP(sport=40000 + rng.randint(0, 999), dport=dport,
                                             flags=flags) / payload)


def foreign_capture(path, seed: int = 5) -> list[tuple[str, int]]:
    """Write the capture (pcapng, by Scapy); the IPv4 packets' (source, dport) in order."""
    rng = random.Random(seed)
    background = [_tcp(rng, f"192.0.2.{rng.randint(1, 40)}", 80, "A") for _ in range(1100)]
    packets = list(background)
    # Each knocker's knocks and its service packets go where, on a round robin of 4 cores
    # counted over the IPv4 packets, they fall on successive cores.
    for i, src in enumerate(GOOD + BAD):
        knocks = list(DEFAULT_KNOCKS) if src in GOOD else [DEFAULT_KNOCKS[1],
                                                            DEFAULT_KNOCKS[0],
                                                            DEFAULT_KNOCKS[2]]
        at = 40 + 120 * i
        for k, port in enumerate([*knocks, SERVICE_PORT, SERVICE_PORT]):
            packets.insert(at + 5 * k, _tcp(rng, src, port, "S" if k < 3 else "A"))
    ipv4 = [(p[IP].src, p[TCP].dport) for p in packets]
    others = [Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(),
              Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.9.9.9")]
    for j, frame in enumerate(others * 3):
        packets.insert(200 * (j + 1) + j, frame)
    with PcapNgWriter(str(path)) as writer:
        for t, packet in enumerate(packets):
            packet.time = 1_700_000_000 + t / 1000
            writer.write(packet)
    return ipv4


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("foreign")
    order = foreign_capture(folder / "capture.pcapng")
    summary = import_trace(folder / "capture.pcapng", folder / "trace.pcap")
    assert summary.ipv4_kept == len(order)
    assert summary.skipped == {"ipv6": 3, "arp": 3}
    return folder / "trace.pcap", order


def _verdicts(trial_dir) -> list[tuple[int, int, int]]:
    rows = (trial_dir / "verdicts.csv").read_text().splitlines()[1:]
    return [tuple(int(x) for x in row.split(",")[:3]) for row in rows]


def test_a_foreign_capture_replays_and_its_check_says_equivalent(tmp_path, imported,
                                                                 capacity):
    trace, order = imported
    config = TrialConfig(nf="knock", cores=CORES, rate_pps=rate_for(capacity, CORES))
    result = run_trial(config, trace, tmp_path)
    assert result["sequenced"] == result["processed"] == len(order)
    assert result["check_equivalent"], result["check_problems"]
    # The IPv4 packets kept their order: sequence number i is the capture's i-th.
    by_source = defaultdict(list)
    for seq, core, verdict in _verdicts(tmp_path):
        src, dport = order[seq]
        by_source[src].append((seq, core, verdict, dport))
    for src in GOOD + BAD:
        rows = sorted(by_source[src])
        knocks = [core for _s, core, _v, dport in rows if dport in DEFAULT_KNOCKS]
        assert len(set(knocks)) == 3, (src, rows)  # each knock on its own core
        served = [verdict for _s, _c, verdict, dport in rows if dport == SERVICE_PORT]
        assert served == ([PASS] * 2 if src in GOOD else [0] * 2), (src, rows)


def test_the_same_run_with_a_record_withheld_is_not_equivalent(tmp_path, imported,
                                                               capacity):
    trace, order = imported
    config = TrialConfig(nf="knock", cores=CORES, rate_pps=rate_for(capacity, CORES),
                         withhold=(101,))
    result = run_trial(config, trace, tmp_path)
    assert not result["check_equivalent"] and not result["check_consistent"]
    problems = "\n".join(result["check_problems"])
    assert "seq 101 went to core 1 with 2 history records; the history rule asks for 3" \
        in problems, problems
    assert "never processed 1 frames sent to it (seq 101)" in problems, problems
    core1 = (tmp_path / "core1.json").read_text()
    assert '"short_history": 1' in core1  # the core refused the frame itself


@pytest.mark.parametrize("script", ["skew_sweep", "core_failover", "failover"])
def test_an_experiment_given_a_bad_capture_says_so_in_one_line(script, tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    results = tmp_path / "results"
    out = subprocess.run([sys.executable, str(REPO_ROOT / "experiments" / f"{script}.py"),
                          "--trace", str(bad), "--results-dir", str(results)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"{script}: {bad} is not a pcap or pcapng file (magic " \
                                 f"{bad.read_bytes()[:4].hex()})"
    assert not results.exists()
