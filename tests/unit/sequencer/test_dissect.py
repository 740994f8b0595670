"""The command-line dissector (``sequencer.dissect``) on frames the real sequencer made.

The frames come from ``sequencer.shim.Sequencer`` with the ddos NF's record packer on a
synthetic trace (4 cores, so a steady frame carries 3 history records), plus a STOP round,
a spray command, a heartbeat, a shard frame (the shim in ``shard`` mode) and a plain IPv4
frame, written to a pcap; the expectations are computed from the trace and the NF, not from
the dissector's own codecs. Also: ``--json``, ``--count``, gzip, a truncated SCR frame in
the middle of a capture, bad input (one line on stderr, exit 2), ``--write`` with a stand-in
socket, and one run through ``python -m``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.workload.traffic import TraceSpec, make_trace
from nfs import make_nf
from sequencer import dissect
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire.header import ETH_MIN_FRAME
from sequencer.wire.heartbeat import CORE, heartbeat_frame
from sequencer.wire.packet import int_to_ip, parse
from sequencer.wire.pcap import write_pcap_ns
from sequencer.wire.spray import spray_frame

REPO_ROOT = Path(__file__).resolve().parents[3]
N_CORES = 4
PACKETS = 24
TS0 = 1_700_000_000_000_000_000  # the sequencer's clock, ns
DDOS_ARGS = ["--record-format", "!I", "--record-names", "src:ip"]


def sequenced_capture(path: Path, truncate_at: int | None = None) -> dict:
    """Write a capture of the real sequencer's frames and control frames to ``path``.

    Returns what the tests expect: ``trace`` (the original frames), ``stamps`` (the
    sequencer's timestamps), ``nf`` (the record packer), and the 1-based frame numbers of
    the STOP frames, the spray command, the heartbeat, the shard frame and the plain
    frame. ``truncate_at``: cut the SCR frame of that sequence number to 40 bytes.
    """
    trace = make_trace(TraceSpec(packets=200, flows=8, attackers=1, knockers=1, seed=5))
    nf = make_nf("ddos")
    seq = Sequencer(nf, N_CORES)
    frames, stamps = [], []
    for i, frame in enumerate(trace[:PACKETS]):
        _slot, out = seq.sequence(frame, TS0 + 1000 * i)
        frames.append(out[:40] if i == truncate_at else out)
        stamps.append(TS0 + 1000 * i)
    stops = seq.stop_frames(TS0 + 10**6)
    frames += stops
    shard = Sequencer(nf, N_CORES, mode="shard")
    shard.next_seq = 77  # as if 77 packets had gone before
    _slot, shard_frame = shard.sequence(trace[PACKETS], TS0 + 5)
    frames += [spray_frame(9, [0, 1, 3]), heartbeat_frame(CORE, 1234), shard_frame,
               trace[PACKETS + 1]]
    write_pcap_ns(path, frames, [TS0 + k for k in range(len(frames))])
    first_stop = PACKETS + 1
    return {"trace": trace, "stamps": stamps, "nf": nf, "frames": frames,
            "stops": list(range(first_stop, first_stop + len(stops))),
            "spray": first_stop + len(stops), "heartbeat": first_stop + len(stops) + 1,
            "shard": first_stop + len(stops) + 2, "plain": first_stop + len(stops) + 3}


@pytest.fixture
def capture(tmp_path) -> tuple[Path, dict]:
    path = tmp_path / "sequenced.pcap"
    return path, sequenced_capture(path)


def blocks(text: str) -> dict[int, list[str]]:
    """The text output, by frame number: the first line, then the indented ones."""
    out: dict[int, list[str]] = {}
    number = None
    for line in text.splitlines():
        match = re.match(r"#(\d+)\s+(.*)", line)
        if match:
            number = int(match.group(1))
            out[number] = [match.group(2)]
        else:
            assert line.startswith("    "), line
            out[number].append(line.strip())
    return out


def expected_history(seq: int) -> list[int]:
    """The record seqs of frame ``seq`` in a steady 4-core round robin from seq 0."""
    count = min(seq, N_CORES - 1)
    return list(range(seq - count, seq))


def src_of(trace: list[bytes], seq: int) -> str:
    return int_to_ip(parse(trace[seq]).src)


# --- text ----------------------------------------------------------------------------------


def test_text_shows_each_frame_its_history_and_inner_packet(capture, capsys):
    path, cap = capture
    assert dissect.main([str(path), *DDOS_ARGS]) == 0
    out = blocks(capsys.readouterr().out)
    assert len(out) == len(cap["frames"])
    for seq in range(PACKETS):
        lines = out[seq + 1]
        history = expected_history(seq)
        assert lines[0] == (f"SCR seq={seq} core={seq % N_CORES}/{N_CORES} spray={N_CORES} "
                            f"ts={cap['stamps'][seq]}ns records={len(history)}x4B")
        assert lines[1:-1] == [f"record seq={s}: src={src_of(cap['trace'], s)}"
                               for s in history]
        pkt = parse(cap["trace"][seq])
        assert lines[-1].startswith(f"inner: IPv4 {int_to_ip(pkt.src)}:{pkt.sport} -> "
                                    f"{int_to_ip(pkt.dst)}:{pkt.dport} TCP [")
        assert lines[-1].endswith(f"len={pkt.length} trace_id={seq}")


def test_steady_frames_carry_n_minus_1_records(capture, capsys):
    path, _cap = capture
    dissect.main([str(path)])
    out = blocks(capsys.readouterr().out)
    counts = [int(re.search(r"records=(\d+)x", out[n][0]).group(1))
              for n in range(N_CORES, PACKETS + 1)]
    assert counts == [N_CORES - 1] * len(counts)


def test_records_are_hex_without_a_format(capture, capsys):
    path, cap = capture
    dissect.main([str(path)])
    lines = blocks(capsys.readouterr().out)[6]  # seq 5: records 2, 3, 4
    nf, trace, stamps = cap["nf"], cap["trace"], cap["stamps"]
    assert lines[1:4] == [f"record seq={s}: {nf.pack_record(parse(trace[s]), stamps[s]).hex()}"
                          for s in (2, 3, 4)]


def test_control_stop_and_shard_frames_have_their_own_lines(capture, capsys):
    path, cap = capture
    dissect.main([str(path), *DDOS_ARGS])
    out = blocks(capsys.readouterr().out)
    for slot, number in enumerate(cap["stops"]):
        lines = out[number]
        assert lines[0].startswith(f"SCR STOP seq={PACKETS} core={slot}/{N_CORES} ")
        assert not any(line.startswith("inner:") for line in lines)  # a STOP has no frame
        # Each core gets the records since its last frame: the last N-1 packets.
        assert [int(re.match(r"record seq=(\d+):", line).group(1)) for line in lines[1:]] \
            == list(range(PACKETS - N_CORES + 1, PACKETS))
    assert out[cap["spray"]] == ["SCR spray command epoch=9 cores=0,1,3"]
    assert out[cap["heartbeat"]] == ["SCR heartbeat role=core counter=1234"]
    shard = out[cap["shard"]]
    assert len(shard) == 1
    assert shard[0].startswith(f"SCR trailer seq=77 ts={TS0 + 5}ns | IPv4 "
                               f"{src_of(cap['trace'], PACKETS)}:")
    plain = parse(cap["trace"][PACKETS + 1])
    assert len(out[cap["plain"]]) == 1
    assert out[cap["plain"]][0].startswith(f"IPv4 {int_to_ip(plain.src)}:{plain.sport} -> "
                                           f"{int_to_ip(plain.dst)}:{plain.dport} TCP [")
    assert "trailer" not in out[cap["plain"]][0]


def test_a_record_format_of_another_size_falls_back_to_hex(capture, capsys):
    path, cap = capture
    assert dissect.main([str(path), "--record-format", "!IH", "--count", "6"]) == 0
    lines = blocks(capsys.readouterr().out)[6]
    record = cap["nf"].pack_record(parse(cap["trace"][2]), cap["stamps"][2]).hex()
    assert lines[1] == f"record seq=2: {record}"
    assert "(the record format is 6 B, these records are 4 B: shown as hex)" in lines


def test_count_and_gzip(capture, capsys, tmp_path):
    path, _cap = capture
    gz = tmp_path / "sequenced.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert dissect.main([str(gz), "--count", "3"]) == 0
    out = blocks(capsys.readouterr().out)
    assert sorted(out) == [1, 2, 3]
    assert out[3][0].startswith("SCR seq=2 ")


# --- JSON ------------------------------------------------------------------------------------


def test_json_has_one_object_per_frame(capture, capsys):
    path, cap = capture
    assert dissect.main([str(path), "--json", *DDOS_ARGS]) == 0
    objs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["frame"] for o in objs] == list(range(1, len(cap["frames"]) + 1))
    assert [o["length"] for o in objs] == [len(f) for f in cap["frames"]]
    for seq in range(PACKETS):
        obj = objs[seq]
        history = expected_history(seq)
        assert obj["kind"] == "scr"
        assert (obj["seq"], obj["slot"], obj["n_cores"], obj["spray"]) == \
            (seq, seq % N_CORES, N_CORES, N_CORES)
        assert (obj["count"], obj["record_size"], obj["timestamp_ns"]) == \
            (len(history), 4, cap["stamps"][seq])
        assert obj["record_seqs"] == history
        assert obj["records"] == [{"src": src_of(cap["trace"], s)} for s in history]
        assert f"trace_id={seq}" in obj["inner"]
    assert [objs[n - 1]["kind"] for n in cap["stops"]] == ["stop"] * N_CORES
    assert all(objs[n - 1]["inner"] is None for n in cap["stops"])
    assert objs[cap["spray"] - 1] == {"frame": cap["spray"], "length": ETH_MIN_FRAME,
                                      "kind": "spray", "epoch": 9, "cores": [0, 1, 3]}
    assert objs[cap["heartbeat"] - 1]["kind"] == "heartbeat"
    assert objs[cap["heartbeat"] - 1]["role"] == "core"
    assert objs[cap["heartbeat"] - 1]["counter"] == 1234
    shard = objs[cap["shard"] - 1]
    assert (shard["kind"], shard["seq"], shard["timestamp_ns"]) == ("trailer", 77, TS0 + 5)
    assert objs[cap["plain"] - 1]["kind"] == "other"


def test_json_records_are_hex_without_a_format(capture, capsys):
    path, cap = capture
    dissect.main([str(path), "--json", "--count", "5"])
    obj = json.loads(capsys.readouterr().out.splitlines()[4])  # seq 4: records 1, 2, 3
    nf, trace, stamps = cap["nf"], cap["trace"], cap["stamps"]
    assert obj["records"] == [nf.pack_record(parse(trace[s]), stamps[s]).hex()
                              for s in (1, 2, 3)]


# --- malformed frames and bad input ------------------------------------------------------------


def test_a_truncated_scr_frame_is_malformed_and_the_rest_still_dissects(tmp_path, capsys):
    path = tmp_path / "cut.pcap"
    cap = sequenced_capture(path, truncate_at=7)
    assert dissect.main([str(path)]) == 0
    out = blocks(capsys.readouterr().out)
    assert out[8] == ["malformed: truncated: 3 records of 4 B do not fit"]
    assert len(out) == len(cap["frames"])
    assert out[9][0].startswith("SCR seq=8 ")
    assert out[PACKETS][0].startswith(f"SCR seq={PACKETS - 1} ")
    dissect.main([str(path), "--json"])
    objs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert objs[7]["kind"] == "malformed"
    assert objs[7]["reason"].startswith("truncated")


@pytest.mark.parametrize("frame", [b"\x02" * 10, bytes(12) + b"\x88\xb5" + bytes(4),
                                   bytes(12) + b"\x88\xb6SC",
                                   bytes(12) + b"\x88\xb6SCRX" + bytes(42),
                                   bytes(12) + b"\x88\xb6SCRC" + bytes(42)])
def test_odd_frames_are_malformed_never_a_traceback(tmp_path, capsys, frame):
    path = tmp_path / "odd.pcap"
    write_pcap_ns(path, [frame, heartbeat_frame(CORE, 5)], [1, 2])
    assert dissect.main([str(path)]) == 0
    out = blocks(capsys.readouterr().out)
    assert out[1][0].startswith("malformed: ")
    assert out[2] == ["SCR heartbeat role=core counter=5"]


def test_zero_byte_records_and_an_empty_scr_frame(tmp_path, capsys):
    # The header allows both; Scapy's record list stops at an empty record.
    path = tmp_path / "edge.pcap"
    write_pcap_ns(path, [h.encode(h.ScrHeader(h.FLAG_STOP, 1, 0, 0, 2, 2, 5, 1), [b""]),
                         h.encode(h.ScrHeader(0, 0, 4, 0, 1, 1, 0, 0), [])], [1, 2])
    assert dissect.main([str(path)]) == 0
    assert blocks(capsys.readouterr().out) == {
        1: ["SCR STOP seq=5 core=0/2 spray=2 ts=1ns records=1x0B", "record seq=4: (empty)"],
        2: ["SCR seq=0 core=0/1 spray=1 ts=0ns records=0x4B", "inner: empty frame"]}


def one_line_error(capsys, argv: list[str]) -> str:
    assert dissect.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("scr-dissect: ")
    return lines[0]


def test_bad_files_end_with_one_line_and_status_2(tmp_path, capsys):
    assert "No such file" in one_line_error(capsys, [str(tmp_path / "missing.pcap")])
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n" * 10)
    assert "Not a supported capture file" in one_line_error(capsys, [str(text)])
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert "empty.pcap" in one_line_error(capsys, [str(empty)])
    assert "Is a directory" in one_line_error(capsys, [str(tmp_path)])


@pytest.mark.parametrize(("args", "words"), [
    (["--record-format", "!Z"], "bad --record-format"),
    (["--record-format", "!I", "--record-names", "a,b"], "1 field"),
    (["--record-format", "!IH", "--record-names", "a,a"], "repeated name"),
    (["--record-format", "!I", "--record-names", "a:float"], "bad record field"),
    (["--record-format", "!"], "is 0 B"),
])
def test_bad_record_formats_end_with_one_line(capture, capsys, args, words):
    path, _cap = capture
    assert words in one_line_error(capsys, [str(path), *args])


def test_a_missing_interface_ends_with_one_line(capsys):
    assert "cannot capture on nosuch0" in one_line_error(capsys, ["--iface", "nosuch0",
                                                                  "--count", "1"])


@pytest.mark.parametrize("argv", [[], ["x.pcap", "--iface", "lo"], ["x.pcap", "--write", "y"],
                                  ["x.pcap", "--record-names", "a"], ["--iface", "lo",
                                                                      "--count", "0"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        dissect.main(argv)
    assert exc.value.code == 2
    assert "scr-dissect: error:" in capsys.readouterr().err


# --- live capture, with a stand-in socket ---------------------------------------------------


class FakeSocket:
    """What ``capture`` needs of an AF_PACKET socket: frames, then a timeout."""

    def __init__(self, frames: list[bytes]):
        self.frames = list(frames)
        self.options: list[tuple] = []
        self.closed = False

    def setsockopt(self, *args):
        self.options.append(args)

    def settimeout(self, _seconds):
        pass

    def recv(self, _size):
        if not self.frames:
            raise TimeoutError
        return self.frames.pop(0)

    def close(self):
        self.closed = True


def test_write_saves_what_was_captured(capture, tmp_path, monkeypatch, capsys):
    _path, cap = capture
    sock = FakeSocket(cap["frames"][:10])
    opened = []
    monkeypatch.setattr(dissect, "open_socket",
                        lambda iface, ethertype: opened.append((iface, ethertype)) or sock)
    out_pcap = tmp_path / "core.pcap"
    assert dissect.main(["--iface", "nf-eth0", "--count", "8", "--write", str(out_pcap)]) == 0
    live = blocks(capsys.readouterr().out)
    assert opened == [("nf-eth0", 0x0003)]  # ETH_P_ALL: every frame, not one ethertype
    assert sock.closed
    assert len(sock.frames) == 2  # --count 8 of 10
    assert sorted(live) == list(range(1, 9))
    # Both directions, as tcpdump: open_socket's PACKET_IGNORE_OUTGOING is switched off.
    assert (dissect.SOL_PACKET, dissect.PACKET_IGNORE_OUTGOING, 0) in sock.options
    assert dissect.main([str(out_pcap)]) == 0
    assert blocks(capsys.readouterr().out) == live


class SignalledSocket(FakeSocket):
    """A socket whose ``recv`` is interrupted by SIGTERM once its frames are gone: how a
    lab's CLI or a test ends a capture without ``--count``."""

    def recv(self, size):
        if not self.frames:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().recv(size)


def test_sigterm_ends_a_capture_with_the_pcap_whole(capture, tmp_path, monkeypatch, capsys):
    _path, cap = capture
    sock = SignalledSocket(cap["frames"][:5])
    monkeypatch.setattr(dissect, "open_socket", lambda iface, ethertype: sock)
    before = signal.getsignal(signal.SIGTERM)
    out_pcap = tmp_path / "core.pcap"
    assert dissect.main(["--iface", "nf-eth0", "--write", str(out_pcap)]) == 0
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back
    assert sock.closed
    live = blocks(capsys.readouterr().out)
    assert sorted(live) == [1, 2, 3, 4, 5]
    assert dissect.main([str(out_pcap)]) == 0
    assert blocks(capsys.readouterr().out) == live


def test_timeout_ends_a_capture_and_in_only_keeps_the_default(capture, monkeypatch, capsys):
    _path, cap = capture
    sock = FakeSocket(cap["frames"][:3])
    monkeypatch.setattr(dissect, "open_socket", lambda iface, ethertype: sock)
    assert dissect.main(["--iface", "nf-eth0", "--timeout", "5", "--in-only"]) == 0
    captured = capsys.readouterr()
    assert sorted(blocks(captured.out)) == [1, 2, 3]
    assert sock.options == []
    assert captured.err.strip() == "scr-dissect: listening on nf-eth0"


# --- the Lua dissector's path and the module run as a program ---------------------------------


def test_lua_path_names_the_lua_dissector(capsys):
    assert dissect.main(["--lua-path"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.is_absolute()
    assert path.name == "scr.lua"
    assert path.read_text().startswith("--[[")


def test_runs_as_a_module(capture):
    path, cap = capture
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([sys.executable, "-m", "sequencer.dissect", str(path), *DDOS_ARGS],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    out = blocks(run.stdout)
    assert out[N_CORES + 2][0].startswith(f"SCR seq={N_CORES + 1} core=1/{N_CORES} ")
    assert out[N_CORES + 2][1] == f"record seq=2: src={src_of(cap['trace'], 2)}"
    bad = subprocess.run([sys.executable, "-m", "sequencer.dissect", str(path) + ".missing"],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1
    assert "Traceback" not in bad.stderr

