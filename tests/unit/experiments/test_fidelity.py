"""The fidelity verdict (``experiments.analysis.fidelity.assess``): one rule per bottleneck.

``assess`` is a pure function of two ``Sample`` objects and the processes' own counters, so
each rule is checked by building samples by hand: a clean window is faithful, and each of
generator under-offer, shim/sink busy or socket drops, OVS busy or port drops, and a machine
with no idle time flips ``faithful`` and names its bottleneck (and only it). Also the
sampling helpers (``experiments.runtime.fidelity``) on this machine's ``/proc`` (no root,
no network).
"""

from __future__ import annotations

import os

import pytest

from experiments.analysis.fidelity import DEFAULT, Sample, Thresholds, assess
from experiments.runtime.fidelity import machine_cpu, pid_cpu_seconds

WALL = 2.0  # seconds between the two samples
TARGET = 10_000.0


def sample(wall: float, cpu: dict[str, float], busy: float, total: float,
           drops: dict[str, int] | None = None) -> Sample:
    return Sample(wall, dict(cpu), busy, total, dict(drops or {}))


def window(shim=0.5, sink=0.4, ovs=0.6, idle=0.3, drops=(0, 0)):
    """Two samples ``WALL`` s apart: the processes' busy fractions, the machine's idle
    fraction (of 2 CPUs) and the drops of two OVS ports (before -> after)."""
    before = sample(100.0, {"shim": 10.0, "sink": 20.0, "ovs": 30.0}, 1_000.0, 5_000.0,
                    {"s1-eth1": 7, "s1-eth2": 0})
    total = 2 * WALL
    after = sample(100.0 + WALL,
                   {"shim": 10.0 + shim * WALL, "sink": 20.0 + sink * WALL,
                    "ovs": 30.0 + ovs * WALL},
                   1_000.0 + (1 - idle) * total, 5_000.0 + total,
                   {"s1-eth1": 7 + drops[0], "s1-eth2": drops[1]})
    return before, after


def verdict(before, after, offered=TARGET, socket_drops=None, **kwargs):
    return assess(before, after, target_pps=TARGET, offered_pps=offered,
                  socket_drops=socket_drops if socket_drops is not None else
                  {"shim": 0, "sink": 0}, **kwargs)


def test_clean_window_is_faithful():
    result = verdict(*window())
    assert result["faithful"] is True
    assert result["bottleneck"] == ""
    assert result["busy"] == {"shim": 0.5, "sink": 0.4, "ovs": 0.6}
    assert result["machine_idle"] == pytest.approx(0.3)
    assert result["ovs_port_drops"] == 0
    assert result["window_s"] == WALL
    assert result["thresholds"] == {"max_busy": 0.9, "min_idle": 0.05, "min_offered": 0.95}


@pytest.mark.parametrize(("offered", "faithful"),
                         [(TARGET, True), (0.96 * TARGET, True), (0.95 * TARGET, True),
                          (0.94 * TARGET, False), (0.0, False)])
def test_generator_under_offer(offered, faithful):
    result = verdict(*window(), offered=offered)
    assert result["faithful"] is faithful
    assert result["bottleneck"] == ("" if faithful else "generator")


@pytest.mark.parametrize("name", ["shim", "sink"])
def test_shim_or_sink_busy(name):
    result = verdict(*window(**{name: 0.95}))
    assert result["faithful"] is False
    assert result["bottleneck"] == name
    assert result["busy"][name] == 0.95
    # At the threshold itself it still counts as keeping up.
    assert verdict(*window(**{name: 0.9}))["faithful"] is True


@pytest.mark.parametrize("name", ["shim", "sink"])
def test_shim_or_sink_socket_drops(name):
    drops = {"shim": 0, "sink": 0, name: 3}
    result = verdict(*window(), socket_drops=drops)
    assert result["faithful"] is False
    assert result["bottleneck"] == name
    assert result["socket_drops"] == drops


def test_ovs_busy():
    result = verdict(*window(ovs=0.97))
    assert (result["faithful"], result["bottleneck"]) == (False, "ovs")


@pytest.mark.parametrize("drops", [(1, 0), (0, 5), (2, 2)])
def test_ovs_port_drops(drops):
    result = verdict(*window(drops=drops))
    assert (result["faithful"], result["bottleneck"]) == (False, "ovs")
    assert result["ovs_port_drops"] == sum(drops)


def test_old_port_drops_do_not_count():
    """Drops from before the window (7 on s1-eth1 in both samples) are not this trial's."""
    before, after = window()
    assert before.port_drops["s1-eth1"] == after.port_drops["s1-eth1"] == 7
    assert verdict(before, after)["ovs_port_drops"] == 0


@pytest.mark.parametrize(("idle", "faithful"), [(0.3, True), (0.05, True), (0.02, False),
                                                (0.0, False)])
def test_machine_idle(idle, faithful):
    result = verdict(*window(idle=idle))
    assert result["faithful"] is faithful
    assert result["bottleneck"] == ("" if faithful else "cpu")
    assert result["machine_idle"] == pytest.approx(idle)


def test_several_bottlenecks_are_all_named_in_order():
    before, after = window(shim=1.0, sink=0.99, ovs=1.0, idle=0.0)
    result = verdict(before, after, offered=0.5 * TARGET)
    assert result["faithful"] is False
    assert result["bottleneck"] == "generator;shim;sink;ovs;cpu"


def test_generator_busy_is_reported_not_judged():
    result = verdict(*window(), generator_busy=0.99)
    assert result["busy"]["generator"] == 0.99
    assert result["faithful"] is True


def test_custom_thresholds():
    strict = Thresholds(max_busy=0.3, min_idle=0.5, min_offered=1.0)
    result = verdict(*window(), offered=0.99 * TARGET, thresholds=strict)
    assert result["bottleneck"] == "generator;shim;sink;ovs;cpu"
    assert result["thresholds"]["max_busy"] == 0.3
    assert Thresholds() == DEFAULT


def test_process_missing_from_a_sample_counts_as_idle():
    before, after = window()
    del before.cpu["ovs"]
    result = verdict(before, after)
    assert "ovs" not in result["busy"]
    assert result["faithful"] is True


def test_zero_length_window_does_not_crash():
    before, _ = window()
    result = verdict(before, before)
    assert result["busy"] == {"shim": 0.0, "sink": 0.0, "ovs": 0.0}
    assert result["machine_idle"] == 1.0
    assert result["window_s"] == 0.0


def test_pid_cpu_seconds_of_this_process_grows():
    first = pid_cpu_seconds(os.getpid())
    x = 0
    for i in range(2_000_000):
        x += i
    assert pid_cpu_seconds(os.getpid()) > first >= 0


def test_pid_cpu_seconds_of_a_missing_process_is_zero():
    assert pid_cpu_seconds(2**22 + 12345) == 0.0  # above pid_max: never a live process


def test_machine_cpu_is_consistent():
    busy, total = machine_cpu()
    assert 0 < busy <= total


@pytest.mark.parametrize("after_drops", [{"s1-eth1": 0, "s1-eth2": 5}, {}],
                         ids=["counter_reset_hides_drops", "unreadable_counters"])
def test_port_drops_never_negative_nor_hidden(after_drops):
    before, after = window()
    after.port_drops = dict(after_drops)
    result = verdict(before, after)
    assert result["ovs_port_drops"] >= 0
    assert result["faithful"] is (not after_drops.get("s1-eth2"))


def test_frames_lost_before_the_shim_make_the_path_a_bottleneck():
    # Every other rule holds (a clean window): only the unexplained loss flips the verdict.
    result = verdict(*window(), lost_before_shim=600)
    assert result["faithful"] is False and result["bottleneck"] == "path"
    assert result["lost_before_shim"] == 600
    assert verdict(*window(), lost_before_shim=0)["faithful"] is True


def test_quota_received_is_each_busy_cores_cpu_over_its_quota():
    from experiments.analysis.fidelity import quota_received

    second = 1_000_000_000
    cores = [{"busy_cpu_s": 0.10, "first_ns": 0, "last_ns": 2 * second},   # 0.05 of a CPU
             {"busy_cpu_s": 0.08, "first_ns": 0, "last_ns": 2 * second},   # 0.04
             {"busy_cpu_s": 0.01, "first_ns": 0, "last_ns": second // 20}]  # too short
    got = quota_received(cores, 0.05)
    assert got == {"quota_received": 0.9, "quota_received_min": 0.8}
    assert quota_received(cores, None) == {}  # no quota, nothing to receive
    assert quota_received(cores[2:], 0.05) == {}
