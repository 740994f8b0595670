"""Malformed frames into the shim and into a worker are counted by reason and dropped; the
run goes on and stays equal to sequential processing."""

from __future__ import annotations

from experiments.analysis.collect import collect
from experiments.runtime.config import TrialConfig
from experiments.runtime.testbed import Testbed
from experiments.runtime.trial import run_trial
from experiments.workload.traffic import write_pcap
from sequencer.wire import header as h
from tests.emulation.conftest import rate_for


def test_shim_counts_and_drops_malformed_frames(tmp_path, trace_frames, capacity):
    good = trace_frames[:400]
    ipv4 = good[0]
    bad = {
        "truncated": [ipv4[:30], ipv4[:14]],
        "ethertype": [ipv4[:12] + b"\x08\x06" + ipv4[14:]],
        "bad_ip": [ipv4[:14] + b"\x65" + ipv4[15:]],  # IP version 6 in an IPv4 frame
    }
    mixed = list(good)
    for i, frame in enumerate(f for frames in bad.values() for f in frames):
        mixed.insert(50 + 60 * i, frame)
    path = tmp_path / "mixed.pcap"
    write_pcap(path, mixed)
    result = run_trial(TrialConfig(nf="knock", cores=2, rate_pps=rate_for(capacity, 2)), path,
                       tmp_path / "run")
    shim = (tmp_path / "run" / "shim.json").read_text()
    for reason, frames in bad.items():
        assert f'"{reason}": {len(frames)}' in shim
    assert result["malformed_shim"] == sum(map(len, bad.values()))
    assert result["sequenced"] == result["processed"] == len(good)
    assert result["check_equivalent"], result["check_problems"]


def test_worker_counts_and_drops_malformed_frames(tmp_path, trace_path, trace_frames,
                                                  capacity):
    config = TrialConfig(nf="ddos", nf_params={"threshold": 30}, cores=2,
                         rate_pps=rate_for(capacity, 2))
    inner = trace_frames[0]
    record = b"\0\0\0\0"

    def scr(slot=0, n_cores=2, count=0, seq=0, size=4, records=()):
        return h.encode(h.ScrHeader(0, count, size, slot, n_cores, n_cores, seq, 0),
                        list(records))

    good_header = scr()
    bad = {
        "truncated": [good_header[:20], scr(count=1, records=[record])[:-2]],
        "bad_header": [good_header[:14] + b"\x00" + good_header[15:] + inner],  # magic
        "wrong_core": [scr(slot=1) + inner],  # core 0 gets slot 1's frame
        # A frame claiming seq 5 with no history, in a spray of 2: the record of seq 4
        # would pass for lost.
        "short_history": [scr(seq=5) + inner],
        "ethertype": [scr() + inner[:12] + b"\x86\xdd" + inner[14:]],  # inner not IPv4
    }
    with Testbed(config, tmp_path) as bed:
        bed.inject(bed.plan.core_port(0), [f for frames in bad.values() for f in frames])
        bed.send_trace(trace_path)
    result = collect(config, trace_path, tmp_path, bed.window)
    core0 = (tmp_path / "core0.json").read_text()
    for reason, frames in bad.items():
        assert f'"{reason}": {len(frames)}' in core0
    assert result["malformed_cores"] == sum(map(len, bad.values()))
    assert result["processed"] == len(trace_frames)
    assert result["check_equivalent"], result["check_problems"]

