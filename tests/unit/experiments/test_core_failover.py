"""SCR core failover without a network: the spray command's wire format, the shim obeying
it (histories stay continuous through a respray), the controller's core watch and rules,
and the experiments' pure parts (fault schedules, the soak's periodic faults, their command
lines)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from controller.dispatch import CoreWatch, check_plan, pipeline_rules
from experiments.campaigns.core_failover import Fault, check_faults, periodic_faults
from experiments.runtime.results import REPO_ROOT
from nfs import make_nf
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire import spray
from sequencer.wire.heartbeat import ETH_P_HEARTBEAT
from sequencer.wire.packet import PROTO_TCP, build
from topologies.scr_topo import PortPlan

FRAME = build(src=1, dst=2, proto=PROTO_TCP, sport=1, dport=2, trace_id=0)


def test_spray_frame_round_trip_and_rejects():
    frame = spray.spray_frame(7, [0, 2, 3])
    assert len(frame) == 60 and frame[12:14] == spray.ETH_P_SPRAY.to_bytes(2, "big")
    assert spray.unpack_spray(frame) == (7, (0, 2, 3))
    with pytest.raises(ValueError, match="distinct core ids"):
        spray.spray_frame(1, [1, 1])
    with pytest.raises(ValueError, match="distinct core ids"):
        spray.spray_frame(1, [])
    bad_magic = frame[:14] + b"XXXX" + frame[18:]
    with pytest.raises(h.MalformedFrame, match="bad_spray"):
        spray.unpack_spray(bad_magic)
    with pytest.raises(h.MalformedFrame, match="truncated"):
        spray.unpack_spray(frame[:16])
    repeated = frame[:23] + bytes([2, 2]) + frame[25:]
    with pytest.raises(h.MalformedFrame, match="repeated"):
        spray.unpack_spray(repeated)
    with pytest.raises(h.MalformedFrame, match="ethertype"):
        spray.unpack_spray(FRAME)


def test_shim_obeys_a_spray_command_from_the_next_packet_on():
    seq = Sequencer(make_nf("ddos"), 4)
    slots = [seq.sequence(FRAME, i)[0] for i in range(5)]
    assert slots == [0, 1, 2, 3, 0]
    assert seq.control(spray.spray_frame(1, [0, 2, 3]), 99) == []
    outs = [seq.sequence(FRAME, i) for i in range(6)]
    # The round robin goes on after core 0 (the last sprayed to), skipping the dead core 1.
    assert [slot for slot, _ in outs] == [2, 3, 0, 2, 3, 0]
    headers = [h.unpack_header(out) for _slot, out in outs]
    # Going on in order, each survivor's next frame is 3 packets after its previous one:
    # 2 records (spray - 1) keep its history continuous. The header's core count stays.
    assert [hdr.count for hdr in headers] == [2, 2, 2, 2, 2, 2]
    assert {hdr.spray for hdr in headers} == {3} and {hdr.n_cores for hdr in headers} == {4}
    assert seq.reconfigs == [{"seq": 5, "epoch": 1, "cores": [0, 2, 3], "t_ns": 99, "event": 0}]
    assert [h.unpack_header(f).slot for f in seq.stop_frames(0)] == [0, 2, 3]
    # Stale, unknown-core and malformed commands change nothing; only the first two count.
    assert seq.control(spray.spray_frame(1, [0]), 0) == []
    assert seq.control(spray.spray_frame(2, [0, 9]), 0) == []
    assert seq.control(spray.spray_frame(3, [0])[:15], 0) is None
    assert seq.malformed == {"stale_spray": 1, "bad_spray": 1}
    assert seq.active == (0, 2, 3)
    seq.control(spray.spray_frame(2, [0, 1, 2, 3]), 0)
    # Back to all four, after core 0: core 1 (its last frame long ago) gets all n-1.
    outs = [seq.sequence(FRAME, i) for i in range(4)]
    assert [slot for slot, _ in outs] == [1, 2, 3, 0]
    assert [h.unpack_header(out).count for _slot, out in outs] == [3, 3, 3, 3]
    assert seq.ring.maxlen == 3


@pytest.mark.parametrize("cores", [[1, 2], [0, 2], [0, 1], [2]])
def test_a_respray_leaves_no_healthy_core_a_gap(cores):
    """Whatever the spray changes to, and wherever the round robin was, every frame a core
    gets carries every record since its previous frame (or N-1 of them)."""
    for before in range(7):
        seq = Sequencer(make_nf("ddos"), 3)
        outs = [seq.sequence(FRAME, i) for i in range(before)]
        seq.control(spray.spray_frame(1, cores), 0)
        outs += [seq.sequence(FRAME, i) for i in range(9)]
        seq.control(spray.spray_frame(2, [0, 1, 2]), 0)
        outs += [seq.sequence(FRAME, i) for i in range(9)]
        last = {}
        for number, (slot, out) in enumerate(outs):
            first = number - h.unpack_header(out).count
            assert first <= last.get(slot, -1) + 1 or h.unpack_header(out).count == 2
            last[slot] = number


def test_core_watch_removes_a_silent_core_and_takes_it_back():
    watch = CoreWatch([10, 11, 12, 13], 0.2)
    for port in (10, 11, 12, 13):
        watch.heartbeat(port, 0.0)
    assert watch.check(0.1) is None
    for port in (10, 12, 13):
        watch.heartbeat(port, 0.25)
    event = watch.check(0.3)  # port 11 silent for 0.3 s
    assert event == {"epoch": 1, "dead_ports": [11], "joined_ports": [], "cores": [0, 2, 3]}
    assert watch.check(0.31) is None
    watch.heartbeat(11, 0.5)  # a replacement beats on the port
    for port in (10, 12, 13):
        watch.heartbeat(port, 0.5)
    assert watch.check(0.55)["cores"] == [0, 1, 2, 3]
    # Everyone silent (the end of a run): the last cores are kept, nothing changes.
    assert watch.check(5.0) is None
    assert [e["epoch"] for e in watch.events] == [1, 2]


def test_a_core_that_never_beat_is_not_judged():
    watch = CoreWatch([10, 11], 0.2)
    watch.heartbeat(10, 1.0)
    assert watch.check(1.1) is None and watch.cores == [0, 1]
    with pytest.raises(ValueError, match="2 or more ports"):
        CoreWatch([10], 0.2)


def test_watched_scr_plans_send_heartbeats_to_the_controller():
    plan = {**PortPlan(3).to_json(), "mode": "scr", "watch_cores": True}
    beats = [r for r in pipeline_rules(plan) if r.match.get("eth_type") == ETH_P_HEARTBEAT
             and "eth_src" not in r.match]
    assert sorted(r.match["in_port"] for r in beats) == [10, 11, 12]
    with pytest.raises(ValueError, match="watch_cores is for mode 'scr'"):
        check_plan({**plan, "mode": "shard", "shard_fields": ["ip_src"]})
    with pytest.raises(ValueError, match="2 or more distinct core ports"):
        check_plan({**PortPlan(1).to_json(), "mode": "scr", "watch_cores": True})


@pytest.mark.parametrize(("faults", "message"), [
    ([Fault(4, 1, 2)], "not one of the 4 cores"),
    ([Fault(0, 0, 2)], "outside the traffic"),
    ([Fault(0, 3, 2)], "must come after the kill"),
    ([Fault(0, 1, 11)], "before the end"),
    ([Fault(0, 1, 5), Fault(0, 2, 6)], "killed again before it rejoined"),
    ([Fault(0, 1), Fault(1, 2), Fault(2, 3), Fault(3, 4)], "every core would be dead"),
])
def test_bad_fault_schedules_are_refused(faults, message):
    with pytest.raises(ValueError, match=message):
        check_faults(faults, 4, 10.0)


def test_periodic_faults_rotate_over_the_cores_and_end_before_the_run():
    faults = periodic_faults(3, 100.0, 20.0)
    assert faults == [Fault(0, 20, 30), Fault(1, 40, 50), Fault(2, 60, 70), Fault(0, 80, 90)]
    check_faults(faults, 3, 100.0)
    assert periodic_faults(2, 30.0, 20.0) == []
    with pytest.raises(ValueError, match="> 0"):
        periodic_faults(2, 30.0, 0)


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("core_failover", ["--cores", "1"], "--cores must be >= 2"),
    ("core_failover", ["--kill-at", "5", "--rejoin-at", "4"], "must come after the kill"),
    ("core_failover", ["--core", "7"], "not one of the 4 cores"),
    ("core_failover", ["--loss", "2"], "must be in [0, 1)"),
    ("soak", ["--minutes", "0.5", "--fault-every", "40"], "leaves no fault"),
    ("soak", ["--minutes", "-1"], "must be > 0"),
])
def test_experiment_flags_fail_in_one_line(script, argv, message):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "experiments" / f"{script}.py"),
                             *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["--join"], "--join needs --recovery"),
    (["--strategy", "lock", "--recovery", "/dev/shm/x", "--table", "/nonexistent"],
     "unrecognized arguments: --recovery"),
    (["--recovery", "/nonexistent/ring"], "cannot open the record log /nonexistent/ring.core0"),
])
def test_worker_recovery_flags_fail_in_one_line(argv, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "nfs.worker", "--iface", "lo", "--core", "0",
                             "--cores", "2", "--nf", "ddos", "--out", str(tmp_path), *argv],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]


def test_stop_rounds_and_a_respray_at_one_sequence_number_keep_the_history_rule():
    """At the end of a run a core may exit (and fall silent) between two STOP rounds: the
    controller resprays at the same sequence number. The oracle replays the control events
    in the order they happened, so each STOP frame is judged by the spray it was sent in."""
    from experiments.analysis.offline import ground_truth
    from nfs.oracle import protocol_errors

    seq = Sequencer(make_nf("ddos"), 4)
    for i in range(10):
        seq.sequence(FRAME, i)
    seq.stop_frames(10)
    seq.control(spray.spray_frame(1, [1, 2, 3]), 11)
    seq.stop_frames(12)
    truth = ground_truth(seq)
    assert [s["history"] for s in truth.stops] == [3, 3, 3, 3, 2, 3, 2]
    assert protocol_errors(truth) == []
    # Judged in the wrong order (the respray first), the first round breaks the rule.
    for reconfig in truth.reconfigs:
        reconfig["event"] = -1
    assert protocol_errors(truth)
