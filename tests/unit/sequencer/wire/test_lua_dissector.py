"""The Wireshark/tshark Lua dissector (``sequencer/wire/scr.lua``) on the real sequencer's frames.

tshark runs the script on a capture of frames from ``sequencer.shim.Sequencer`` on 4 cores
(so a steady frame carries 3 history records), its STOP round, a spray command, a heartbeat,
a shard frame and a plain frame (``tests/unit/sequencer/test_dissect.py`` builds it), and
``-T fields`` must give the SCR header's fields, the records' sequence numbers, the inner
IPv4 source, the control frames' kinds and fields, and the shard trailer. A truncated SCR
frame, and an SCR frame whose original frame is malformed, must be flagged as malformed,
never a Lua error.

tshark is a test dependency (``make apt`` installs it): without it these tests fail, they do
not skip. tshark runs with a HOME of its own, so that no personal preferences or plugins
(a copy of this same script, say) change what it shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sequencer.dissect import LUA_SCRIPT
from sequencer.wire.packet import int_to_ip, parse
from sequencer.wire.pcap import write_pcap_ns
from tests.unit.sequencer.test_dissect import N_CORES, PACKETS, sequenced_capture

FIELDS = ["frame.number", "scr.seq", "scr.count", "scr.record.seq", "scr.slot", "scr.n_cores",
          "scr.spray", "scr.record_size", "scr.ts", "scr.flags.stop", "scrctl.kind",
          "scrctl.epoch", "scrctl.core", "scrctl.role", "scrctl.counter", "ip.src",
          "scrtrailer.seq", "scrtrailer.ts", "_ws.expert.message"]


def tshark(capture: Path, home: Path, *extra: str) -> list[dict[str, str]]:
    """One dict per frame of ``FIELDS`` as tshark prints them with the Lua script loaded."""
    exe = shutil.which("tshark")
    if exe is None:
        pytest.fail("tshark is not installed: the Lua dissector's tests need it "
                    "(`make apt`, or apt-get install tshark)")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    argv = [exe, "-n", "-X", f"lua_script:{LUA_SCRIPT}", "-r", str(capture), *extra,
            "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in FIELDS:
        argv += ["-e", field]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    # A Lua error does not fail tshark: a script that does not load is a line on stderr
    # (and the frames dissect without it), an error in a dissector an expert message.
    assert "Lua" not in run.stderr and "lua" not in run.stderr, run.stderr
    rows = [dict(zip(FIELDS, line.split("\t"), strict=True))
            for line in run.stdout.splitlines()]
    assert not [row for row in rows if "Lua Error" in row["_ws.expert.message"]], run.stdout
    return rows


@pytest.fixture
def dissected(tmp_path) -> tuple[list[dict[str, str]], dict]:
    path = tmp_path / "sequenced.pcap"
    cap = sequenced_capture(path)
    return tshark(path, tmp_path), cap


def test_the_lua_script_exists_where_the_cli_says():
    assert LUA_SCRIPT.is_file()
    assert "eth_withoutfcs" in LUA_SCRIPT.read_text()


def test_scr_header_and_history_records(dissected):
    rows, cap = dissected
    assert len(rows) == len(cap["frames"])
    for seq in range(PACKETS):
        row = rows[seq]
        count = min(seq, N_CORES - 1)
        assert row["frame.number"] == str(seq + 1)
        assert row["scr.seq"] == str(seq)
        assert row["scr.count"] == str(count)
        assert row["scr.record.seq"] == ",".join(str(s) for s in range(seq - count, seq))
        assert row["scr.slot"] == str(seq % N_CORES)
        assert row["scr.n_cores"] == row["scr.spray"] == str(N_CORES)
        assert row["scr.record_size"] == "4"  # ddos: the source address
        assert row["scr.ts"] == str(cap["stamps"][seq])
        assert row["scr.flags.stop"] == "0"
        # The inner frame went on to Wireshark's own Ethernet/IPv4 dissectors.
        assert row["ip.src"] == int_to_ip(parse(cap["trace"][seq]).src)
        assert row["scrctl.kind"] == row["scrtrailer.seq"] == ""


def test_stop_frames_carry_records_and_no_frame(dissected):
    rows, cap = dissected
    for slot, number in enumerate(cap["stops"]):
        row = rows[number - 1]
        assert row["scr.flags.stop"] == "1"
        assert (row["scr.seq"], row["scr.slot"], row["scr.count"]) == \
            (str(PACKETS), str(slot), str(N_CORES - 1))
        assert row["scr.record.seq"] == ",".join(
            str(s) for s in range(PACKETS - N_CORES + 1, PACKETS))
        assert row["ip.src"] == ""


def test_spray_command_heartbeat_and_shard_trailer(dissected):
    rows, cap = dissected
    spray = rows[cap["spray"] - 1]
    assert (spray["scrctl.kind"], spray["scrctl.epoch"], spray["scrctl.core"]) == \
        ("spray", "9", "0,1,3")
    assert spray["scr.seq"] == ""
    beat = rows[cap["heartbeat"] - 1]
    assert (beat["scrctl.kind"], beat["scrctl.role"], beat["scrctl.counter"]) == \
        ("heartbeat", "2", "1234")
    shard = rows[cap["shard"] - 1]
    assert (shard["scrtrailer.seq"], shard["scrtrailer.ts"]) == ("77", str(cap["stamps"][0] + 5))
    assert shard["ip.src"] == int_to_ip(parse(cap["trace"][PACKETS]).src)
    assert shard["scr.seq"] == ""
    plain = rows[cap["plain"] - 1]
    assert plain["scrtrailer.seq"] == plain["scr.seq"] == plain["scrctl.kind"] == ""
    assert plain["ip.src"] == int_to_ip(parse(cap["trace"][PACKETS + 1]).src)


def test_the_trailer_heuristic_can_be_switched_off(tmp_path):
    path = tmp_path / "sequenced.pcap"
    cap = sequenced_capture(path)
    rows = tshark(path, tmp_path, "-o", "scrtrailer.detect:FALSE")
    assert rows[cap["shard"] - 1]["scrtrailer.seq"] == ""


def test_a_truncated_scr_frame_is_flagged_and_the_rest_dissects(tmp_path):
    path = tmp_path / "cut.pcap"
    cap = sequenced_capture(path, truncate_at=7)
    rows = tshark(path, tmp_path)
    cut = rows[7]
    assert cut["scr.seq"] == "7"
    assert "do not fit" in cut["_ws.expert.message"]
    assert cut["ip.src"] == ""
    assert rows[8]["scr.seq"] == "8"
    assert rows[8]["scr.record.seq"] == "5,6,7"
    assert len(rows) == len(cap["frames"])


def test_a_malformed_inner_frame_is_flagged_not_a_lua_error(tmp_path):
    # An SCR frame whose original frame is 10 bytes, shorter than an Ethernet header:
    # Wireshark's Ethernet dissector raises, which must not become a Lua error.
    path = tmp_path / "inner.pcap"
    cap = sequenced_capture(path)
    frames = list(cap["frames"])
    inner = len(cap["trace"][5])
    frames[5] = frames[5][:len(frames[5]) - inner + 10]
    write_pcap_ns(path, frames, range(len(frames)))
    rows = tshark(path, tmp_path)
    assert (rows[5]["scr.seq"], rows[5]["scr.record.seq"]) == ("5", "2,3,4")
    assert "Malformed" in rows[5]["_ws.expert.message"]
    assert rows[5]["ip.src"] == ""
    assert rows[6]["scr.seq"] == "6"
    assert rows[6]["ip.src"] == int_to_ip(parse(cap["trace"][6]).src)
