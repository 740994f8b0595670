"""The failover trial's analysis without a network: rates per bin aligned on the kill, the
recovery time, the replica's held updates, the plot drawn from the files, the command
line, and the sink's per-packet arrival log that the timeline is drawn from."""

from __future__ import annotations

import json
import re
from array import array

import pytest

from experiments import failover as script
from experiments.analysis import faults as f
from experiments.campaigns import failover as campaign
from experiments.hosts import sink
from experiments.runtime.config import TrialConfig
from experiments.workload.traffic import TraceSpec, make_trace
from sequencer.wire.packet import parse


def steady(rate: float, start: float, end: float) -> list[float]:
    """Event times at ``rate`` per second in ``[start, end)``."""
    n = round((end - start) * rate)
    return [start + (i + 0.5) / rate for i in range(n)]


def test_timeline_bins_are_aligned_on_the_kill_and_whole():
    offered = steady(1000, 0.0, 3.0)
    delivered = steady(1000, 0.0, 1.23) + steady(1000, 1.5, 3.0)
    rows = f.timeline(1.23, 0.0, 3.0, offered, offered, delivered)
    starts = [r["t_s"] for r in rows]
    assert starts[0] == pytest.approx(0.03) and starts[-1] == pytest.approx(2.83)
    assert all(b - a == pytest.approx(0.1) for a, b in zip(starts, starts[1:], strict=False))
    assert any(s == pytest.approx(1.23) for s in starts)  # a bin starts at the kill
    by_start = {round(r["t_s"], 2): r for r in rows}
    assert by_start[0.53]["offered_pps"] == pytest.approx(1000, abs=10)
    assert by_start[1.23]["delivered_pps"] == 0 and by_start[1.33]["delivered_pps"] == 0
    assert by_start[1.53]["delivered_pps"] == pytest.approx(1000, abs=10)
    with pytest.raises(ValueError, match="bin must be > 0"):
        f.timeline(1.0, 0.0, 2.0, [], [], [], bin_s=0)


def test_recovery_is_the_end_of_the_first_good_bin_after_the_kill():
    offered = steady(1000, 0.0, 4.0)
    delivered = steady(1000, 0.0, 2.0) + steady(1000, 2.25, 4.0)
    rows = f.timeline(2.0, 0.0, 4.0, offered, offered, delivered)
    # [2.2, 2.3) holds half a bin: not back; [2.3, 2.4) is: 0.4 s after the kill.
    assert f.recovery_time(rows, 2.0) == pytest.approx(0.4)


def test_one_lucky_bin_is_not_a_recovery():
    offered = steady(1000, 0.0, 4.0)
    delivered = (steady(1000, 0.0, 2.0) + steady(1000, 2.3, 2.4)
                 + steady(400, 2.4, 3.0) + steady(1000, 3.0, 4.0))
    rows = f.timeline(2.0, 0.0, 4.0, offered, offered, delivered)
    assert f.recovery_time(rows, 2.0) == pytest.approx(1.1)  # [3.0, 3.1) and on


def test_no_recovery_and_expected_below_offered():
    offered = steady(1000, 0.0, 3.0)
    expected = offered[::2]  # the NF drops every other packet
    delivered = expected[:1000]  # nothing after 2 s
    rows = f.timeline(2.0, 0.0, 3.0, offered, expected, delivered)
    assert f.recovery_time(rows, 2.0) is None
    assert f.recovery_time(f.timeline(2.0, 0.0, 3.0, offered, expected, expected), 2.0) \
        == pytest.approx(0.1)  # never dipped: back by the end of the first bin


def test_held_seqs():
    assert campaign.held_seqs(9, [(2, 4), (7, 7)]) == {0, 1, 5, 6, 8, 9}
    assert campaign.held_seqs(-1, []) == set()


def result_for_plot() -> dict:
    return {"nf": "ddos", "rate_pps": 1000.0, "kill_s": 1.0, "recovery_s": 0.3,
            "lost_updates": 190, "controller_events": [
                {"from_port": 10, "to_port": 11, "t_s": 1.2}]}


def test_plot_is_drawn_from_the_files(tmp_path):
    offered = steady(1000, 0.0, 3.0)
    delivered = steady(1000, 0.0, 1.0) + steady(1000, 1.2, 3.0)
    f.write_timeline(tmp_path / f.TIMELINE_CSV,
                     f.timeline(1.0, 0.0, 3.0, offered, offered, delivered))
    (tmp_path / campaign.RESULT_JSON).write_text(json.dumps(result_for_plot()))
    path = campaign.plot_failover(tmp_path)
    assert path == tmp_path / campaign.PLOT and path.stat().st_size > 10_000
    rows = f.read_timeline(tmp_path / f.TIMELINE_CSV)
    assert list(rows[0]) == f.TIMELINE_COLUMNS and len(rows) == 30


def test_plot_needs_rows(tmp_path):
    f.write_timeline(tmp_path / f.TIMELINE_CSV, [])
    (tmp_path / campaign.RESULT_JSON).write_text(json.dumps(result_for_plot()))
    with pytest.raises(ValueError, match="has no rows"):
        campaign.plot_failover(tmp_path)


def test_table_names_every_check():
    result = {"offered_pps": 1000.0, "sequenced": 6000, "sink_received": 4700,
              "kill_s": 2.5, "detection_s": 0.19, "resumed_s": 0.2, "recovery_s": 0.3,
              "recovery_limit_s": 2.0,
              "lost_updates": 190, "lost_updates_ms": 190.0, "lost_passes": 150,
              "checks": {"state_equal": True, "recovered": False}}
    text = script.table(result)
    assert re.search(r"check: state_equal\s*\|\s*ok", text)
    assert re.search(r"check: recovered\s*\|\s*FAILED", text) and "0.30 s" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--kill-at", "5", "--duration", "4"], "--kill-at must be less than --duration"),
    (["--nf-params", "[1]"], "must be a JSON object"),
    (["--nf-params", '{"threshold": -1}'], "threshold must be >= 1"),
    (["--rate", "0"], "must be > 0"),
])
def test_bad_arguments_end_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        script.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_run_failover_rejects_a_kill_outside_the_traffic(tmp_path):
    config = TrialConfig(nf="ddos", cores=1, strategy="single")
    with pytest.raises(ValueError, match="--kill-at must be inside the traffic"):
        campaign.run_failover(config, tmp_path, duration_s=2.0, kill_at_s=3.0)
    assert not list(tmp_path.iterdir())  # checked before anything was made


def test_sink_logs_each_frame_with_its_arrival_time(tmp_path):
    frames = make_trace(TraceSpec(packets=100, flows=5, seed=1))[:5]
    arrivals = array("q", [100, 200, 300, 400])  # the last frame's stamp never came
    summary = sink.summarize([*frames[:4], b"junk", frames[4]], [100, 400], [0],
                             array("q", [*arrivals[:4], 450]), tmp_path / "sink_log.csv")
    lines = (tmp_path / "sink_log.csv").read_text().splitlines()
    assert lines[0] == "trace_id,t_ns"
    ids = [parse(frame).trace_id for frame in frames]
    # The junk frame is skipped; the last frame's stamp never came (a stop signal).
    assert lines[1:] == [f"{ids[0]},100", f"{ids[1]},200", f"{ids[2]},300", f"{ids[3]},400"]
    assert summary["received"] == 6 and len(summary["trace_ids"]) == 5
    assert summary["malformed"]
