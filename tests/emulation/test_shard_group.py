"""The controller's modes on a real network: ``shard`` installs an OpenFlow 1.5 select group
that hashes the plan's fields (OVS's ``selection_method=hash,fields(...)``) and really splits
traffic by them; ``lock`` keeps the slot-MAC spray rules; an unknown mode stops the
controller at start-up.

Frames are sent from host ``seq`` out of ``seq-eth1`` (where the shim writes) and read by raw
sockets on every ``nf-eth<i>`` in host ``nf``, so what is checked is what the switch did to
real frames. No shim, workers or sink run: the trial runner's ``Testbed`` only knows the
``scr`` strategy, so the network is built here the way ``Testbed.__enter__`` builds it.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from mininet.log import setLogLevel
from mininet.net import Mininet

from controller.dispatch import expected_flow_count, expected_groups
from controller.launcher import ControllerProcess, LoopbackController
from experiments.runtime.config import HOST_IP_BASE
from experiments.runtime.ovs import pipeline_flows, quiet_switch_ports
from experiments.runtime.processes import deferred_interrupts
from experiments.workload.traffic import SERVER, write_pcap
from sequencer.dataplane import READY
from sequencer.wire.header import slot_mac
from sequencer.wire.packet import PROTO_TCP, build, ip_to_int
from topologies.scr_topo import NF, SEQ, SWITCH, PortPlan, ScrTopo

CORES = 4
SOURCES = 64
SOURCE_NET = ip_to_int("198.18.0.0")
TRAILER = b"\x00SHARD\x00\x01"  # stands in for the shim's trailer after the IP packet
START_TIMEOUT_S = 30.0

# Runs in host nf: one raw socket per core interface; prints READY, then, once no frame has
# come for 1.5 s after the last one (or at the deadline), {core: [[source address, source
# port], ...]} of the IPv4/TCP frames each core received.
RECEIVER = """
import json, select, socket, sys, time
ifaces = sys.argv[1:]
socks = {}
for core, iface in enumerate(ifaces):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((iface, 0x0800))
    socks[s] = core
print("READY", flush=True)
got = {core: [] for core in range(len(ifaces))}
last, deadline = None, time.monotonic() + 30
while time.monotonic() < deadline and (last is None or time.monotonic() - last < 1.5):
    ready, _, _ = select.select(list(socks), [], [], 0.1)
    for s in ready:
        frame = s.recv(2048)
        got[socks[s]].append([int.from_bytes(frame[26:30], "big"),
                              int.from_bytes(frame[34:36], "big")])
        last = time.monotonic()
print(json.dumps(got), flush=True)
"""

# Runs in host seq: sends the pcap's frames out of the interface, paced a little so that
# the switch port's socket queue never overflows.
SENDER = """
import socket, sys, time
from experiments.workload.traffic import read_pcap
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((sys.argv[1], 0))
for frame in read_pcap(sys.argv[2]):
    s.send(frame)
    time.sleep(0.0005)
"""


def ovs_ofctl15(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", *args], capture_output=True,
                          text=True, check=True).stdout


def switch_groups() -> list[str]:
    return [line.strip() for line in ovs_ofctl15("dump-groups", SWITCH).splitlines()
            if "group_id=" in line]


def selection(group: str) -> tuple[str, list[str]]:
    """The selection method and hash fields of a ``dump-groups`` line.

    OVS prints one field as ``fields=ip_src`` and several as ``fields(ip_src,ip_dst)``.
    """
    found = re.search(r"selection_method=(\w+)(?:,fields(?:=(\w+)|\(([\w,]+)\)))?", group)
    assert found, group
    method, one, several = found.groups()
    return method, [one] if one else several.split(",") if several else []


@contextlib.contextmanager
def network(pipeline: dict, workdir: Path):
    """The controller with ``pipeline`` and a ScrTopo network, until its rules and groups are
    on the switch; everything is stopped, by handle, however the block ends."""
    setLogLevel("warning")
    plan = PortPlan(len(pipeline["core_ports"]))
    stack = contextlib.ExitStack()
    try:
        controller = stack.enter_context(ControllerProcess(pipeline, workdir))
        net = Mininet(topo=ScrTopo(plan), controller=None, build=False, ipBase=HOST_IP_BASE)
        stack.callback(net.stop)
        net.addController(LoopbackController("c0", controller.port))
        net.build()
        quiet_switch_ports(net.switches)
        net.start()
        flows, groups = expected_flow_count(pipeline), expected_groups(pipeline)
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(pipeline_flows()) < flows or len(switch_groups()) < groups:
            assert time.monotonic() < deadline, (
                f"controller did not install {flows} rules and {groups} groups: "
                f"{(workdir / 'controller.log').read_text()}")
            time.sleep(0.05)
        yield net
    finally:
        with deferred_interrupts():
            stack.close()


def send_and_capture(net, frames: list[bytes], workdir: Path) -> dict[int, list[tuple]]:
    """Send ``frames`` from the shim's egress; (source address, source port) of the frames
    each core received."""
    plan = PortPlan(CORES)
    pcap = workdir / "frames.pcap"
    write_pcap(pcap, frames)
    receiver = net[NF].popen(
        [sys.executable, "-c", RECEIVER, *(plan.core_iface(i) for i in range(CORES))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert receiver.stdout.readline().strip() == READY, receiver.stderr.read()
        sender = net[SEQ].popen([sys.executable, "-c", SENDER, plan.shim_out_iface, str(pcap)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True)
        try:
            out, _ = sender.communicate(timeout=30)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
        assert sender.returncode == 0, out
        out, err = receiver.communicate(timeout=40)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate()
    assert receiver.returncode == 0, err
    return {int(core): [tuple(key) for key in keys] for core, keys in json.loads(out).items()}


def cores_by(received: dict[int, list[tuple]], key) -> dict:
    """Which cores received the frames of each ``key(address, port)``."""
    cores = defaultdict(set)
    for core, frames in received.items():
        for address, port in frames:
            cores[key(address, port)].add(core)
    return cores


def busy_cores(received: dict[int, list[tuple]]) -> int:
    return sum(1 for frames in received.values() if frames)


def tcp_frame(i: int, src: int, sport: int, dport: int = 80) -> bytes:
    return build(src=src, dst=SERVER, proto=PROTO_TCP, sport=sport, dport=dport,
                 trace_id=i) + TRAILER


def shard_pipeline(fields: list[str]) -> dict:
    return {**PortPlan(CORES).to_json(), "mode": "shard", "shard_fields": fields}


def test_shard_group_hashes_the_source_address(tmp_path):
    pipeline = shard_pipeline(["ip_src"])
    plan = PortPlan(CORES)
    # 64 sources, 4 frames each with different ports: hashing ports too would split them.
    frames = [tcp_frame(i, SOURCE_NET + i % SOURCES, sport=1000 + i, dport=2000 + 7 * i)
              for i in range(4 * SOURCES)]
    with network(pipeline, tmp_path) as net:
        groups = switch_groups()
        assert len(groups) == 1, groups
        group = groups[0]
        assert "group_id=1,type=select" in group
        assert selection(group) == ("hash", ["ip_src"])
        assert group.count("bucket=") == CORES
        for i in range(CORES):
            assert f"bucket=bucket_id:{i},actions=output:{plan.core_port(i)}" in group
        flows = pipeline_flows()  # still listed over OpenFlow 1.3
        assert len(flows) == expected_flow_count(pipeline) == 2 * CORES + 3
        assert sum(f"ip,in_port={plan.shim_out_port} actions=group:1" in f
                   for f in flows) == 1
        # Only the end-of-run STOP frames use the per-slot rules in shard mode.
        assert sum("dl_type=0x88b5" in f for f in flows) == CORES
        assert any("priority=0 actions=drop" in f for f in flows)
        received = send_and_capture(net, frames, tmp_path)

    per_core = {core: len(frames) for core, frames in received.items()}
    assert sum(per_core.values()) == len(frames), per_core  # every frame, exactly once
    by_source = cores_by(received, lambda address, _port: address)
    assert set(by_source) == {SOURCE_NET + s for s in range(SOURCES)}
    assert all(len(cores) == 1 for cores in by_source.values()), dict(by_source)
    assert busy_cores(received) >= 3, per_core


def test_shard_group_with_the_four_tuple_splits_one_source_by_port(tmp_path):
    pipeline = shard_pipeline(["ip_src", "ip_dst", "tcp_src", "tcp_dst"])
    one_source = SOURCE_NET + 1
    # 32 connections of one source, 3 frames each, interleaved.
    frames = [tcp_frame(i, one_source, sport=40000 + i % 32) for i in range(96)]
    with network(pipeline, tmp_path) as net:
        (group,) = switch_groups()
        assert selection(group) == ("hash", ["ip_src", "ip_dst", "tcp_src", "tcp_dst"])
        assert group.count("bucket=") == CORES
        received = send_and_capture(net, frames, tmp_path)

    per_core = {core: len(frames) for core, frames in received.items()}
    assert sum(per_core.values()) == len(frames), per_core
    by_connection = cores_by(received, lambda address, port: (address, port))
    assert len(by_connection) == 32
    assert all(len(cores) == 1 for cores in by_connection.values()), dict(by_connection)
    # One source, yet several cores: the ports are hashed (all 32 connections on one of 4
    # cores by chance: 4**-31).
    assert busy_cores(received) >= 2, per_core


def test_lock_mode_installs_the_slot_rules_and_no_group(tmp_path):
    pipeline = {**PortPlan(CORES).to_json(), "mode": "lock"}
    plan = PortPlan(CORES)
    with network(pipeline, tmp_path):
        flows = pipeline_flows()
        assert len(flows) == expected_flow_count(pipeline) == 2 * CORES + 2
        for core in range(CORES):
            spray = [f for f in flows if f"dl_src={slot_mac(core)}" in f]
            assert len(spray) == 1
            assert f"in_port={plan.shim_out_port}" in spray[0]
            assert spray[0].endswith(f"actions=output:{plan.core_port(core)}")
        assert switch_groups() == []


def test_unknown_mode_stops_the_controller_at_start_up(tmp_path):
    pipeline = {**PortPlan(CORES).to_json(), "mode": "rss"}
    with pytest.raises(RuntimeError, match="controller exited"), \
            ControllerProcess(pipeline, tmp_path):
        pass
    assert "unknown mode 'rss'" in (tmp_path / "controller.log").read_text()
