"""Seeing SCR on the wire: a live capture of a core's port, dissected by both dissectors.

A short scr trial on 4 cores (ddos, 400 packets at 300 pps) runs on the real testbed while
``python -m sequencer.dissect --iface nf-eth0 --count 20 --write core0.pcap`` captures in the
NF host, on core 0's port. Then:

* the capture's SCR frames are core 0's of the round robin: sequence numbers 0, 4, 8, ...
  (core = seq mod 4), slot 0 of 4, each with min(seq, 3) history records for packets
  seq-3 .. seq-1, and an inner IPv4 frame: so says tshark with ``sequencer/wire/scr.lua``;
* the command-line dissector printed the same frames as they arrived, and decoded each
  record (ddos: the source address) to the source of the trace packet it belongs to: the
  generator sends the trace in order and nothing is lost, so packet ``seq`` is trace
  packet ``seq``.

The capture sees both directions: the passing packets the core sends back out of its port
are in it too, as plain IPv4 frames. The capture process is ended by its handle, whatever
happens; the Testbed cleans up the rest.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from experiments.runtime.config import TrialConfig
from experiments.runtime.testbed import Testbed
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from sequencer.dissect import LUA_SCRIPT
from sequencer.wire.packet import int_to_ip, parse
from topologies.scr_topo import NF

REPO_ROOT = Path(__file__).resolve().parents[2]
CORES = 4
FRAMES = 20
FIELDS = ["frame.number", "scr.seq", "scr.count", "scr.record.seq", "scr.slot",
          "scr.n_cores", "scr.flags.stop", "ip.src", "_ws.expert.message"]


def start_capture(host, iface: str, pcap: Path, text: Path) -> subprocess.Popen:
    """The dissector capturing ``FRAMES`` frames on ``iface`` inside ``host``, once it
    listens (it says so on stderr)."""
    with open(text, "w") as out:
        proc = host.popen(
            [sys.executable, "-m", "sequencer.dissect", "--iface", iface, "--count", str(FRAMES),
             "--write", str(pcap), "--record-format", "!I", "--record-names", "src:ip"],
            stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            line = proc.stderr.readline().decode(errors="replace")
            if "listening on" in line:
                return proc
            if not line and proc.poll() is not None:
                break
    stop(proc)
    raise AssertionError(f"the capture did not start: {proc.stderr.read()!r}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def tshark_rows(pcap: Path, home: Path) -> list[dict[str, str]]:
    exe = shutil.which("tshark")
    assert exe is not None, "tshark is not installed (make apt)"
    argv = [exe, "-n", "-X", f"lua_script:{LUA_SCRIPT}", "-r", str(pcap), "-T", "fields",
            "-E", "separator=/t", "-E", "aggregator=,", "-E", "occurrence=a"]
    for field in FIELDS:
        argv += ["-e", field]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(home)})
    assert run.returncode == 0, run.stderr
    assert "Lua" not in run.stderr, run.stderr
    return [dict(zip(FIELDS, line.split("\t"), strict=True))
            for line in run.stdout.splitlines()]


def test_a_live_capture_of_core_0_dissects(tmp_path):
    trace = make_trace(TraceSpec(packets=400, flows=20, attackers=2, knockers=2, seed=11))
    trace_path = tmp_path / "trace.pcap"
    write_pcap(trace_path, trace)
    pcap, text = tmp_path / "core0.pcap", tmp_path / "core0.txt"
    config = TrialConfig(nf="ddos", cores=CORES, rate_pps=300, core_share=None)
    with Testbed(config, tmp_path / "trial") as bed:
        capture = start_capture(bed.net[NF], bed.plan.core_iface(0), pcap, text)
        try:
            bed.send_trace(trace_path)
            capture.wait(timeout=30)  # --count: it ends by itself long before the trace
        finally:
            stop(capture)
    assert capture.returncode == 0, capture.stderr.read()

    rows = tshark_rows(pcap, tmp_path)
    assert len(rows) == FRAMES
    assert not [r for r in rows if "Lua Error" in r["_ws.expert.message"]]
    scr = [r for r in rows if r["scr.seq"]]
    # Core 0 got every 4th packet, from the first, with no gap (the capture began first).
    seqs = [int(r["scr.seq"]) for r in scr]
    assert len(seqs) >= FRAMES // 2, rows
    assert seqs == list(range(0, CORES * len(seqs), CORES))
    for row, seq in zip(scr, seqs, strict=True):
        count = min(seq, CORES - 1)
        assert (row["scr.slot"], row["scr.n_cores"], row["scr.flags.stop"]) == \
            ("0", str(CORES), "0")
        assert row["scr.count"] == str(count)
        assert row["scr.record.seq"] == ",".join(str(s) for s in range(seq - count, seq))
        assert row["ip.src"] == int_to_ip(parse(trace[seq]).src)  # the inner frame
    # The rest went the other way: passing packets the core sent on towards the sink.
    assert all(r["ip.src"] and not r["scr.count"] for r in rows if not r["scr.seq"])

    # The command-line dissector printed the same SCR frames, records decoded.
    printed = text.read_text()
    assert [int(s) for s in re.findall(r"^#\d+\s+SCR seq=(\d+) core=0/4 ", printed,
                                       re.MULTILINE)] == seqs
    for seq in seqs[1:]:
        for s in range(seq - CORES + 1, seq):
            assert f"record seq={s}: src={int_to_ip(parse(trace[s]).src)}" in printed
        assert f"trace_id={seq}" in printed
