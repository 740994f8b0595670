"""Heartbeats and the controller, by frame: what the dispatch pipeline does with a real
heartbeat frame (``sequencer.wire.heartbeat``, ethertype 0x88B6) and with the SCR frames
(0x88B5) around it, matched against the rules as the switch would match them, and what the
app's packet-in handler counts. The heartbeat had the SCR ethertype once; these tests pin
the two apart."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from controller import dispatch as d
from sequencer.wire import header as h
from sequencer.wire import heartbeat as hb
from sequencer.wire.spray import spray_frame
from topologies.scr_topo import PortPlan

DROP = "drop"


def plan(mode: str, cores: int, **extra) -> dict:
    return {**PortPlan(cores).to_json(), "mode": mode, **extra}


WATCHED = [plan("pb", 2), plan("scr", 4, watch_cores=True)]
UNWATCHED = [plan("scr", 4), plan("lock", 2), plan("single", 1), plan("shard", 2,
                                                                       shard_fields=["ip_src"])]


def fields(frame: bytes, in_port: int) -> dict:
    """The match fields the rules use, read from ``frame``'s Ethernet header."""
    return {"in_port": in_port, "eth_type": int.from_bytes(frame[12:14], "big"),
            "eth_src": ":".join(f"{b:02x}" for b in frame[6:12])}


def forward(rules: list[d.Rule], frame: bytes, in_port: int):
    """Where the highest-priority matching rule sends ``frame`` (exact matches only)."""
    seen = fields(frame, in_port)
    for rule in sorted(rules, key=lambda r: -r.priority):  # stable: install order in a tie
        if all(seen[key] == value for key, value in rule.match.items()):
            if rule.group_id is not None:
                return f"group:{rule.group_id}"
            return rule.out_port if rule.out_port is not None else DROP
    raise AssertionError("no rule matched: the pipeline has no table-miss rule")


def test_the_heartbeat_rule_matches_the_heartbeat_ethertype():
    rules = d.pipeline_rules(WATCHED[0])
    beats = [r for r in rules if r.out_port == d.OFPP_CONTROLLER]
    assert beats and {r.match["eth_type"] for r in beats} == {hb.ETH_P_HEARTBEAT} == {0x88B6}


@pytest.mark.parametrize("the_plan", WATCHED, ids=lambda p: p["mode"])
def test_heartbeats_from_every_core_port_reach_the_controller(the_plan):
    rules = d.pipeline_rules(the_plan)
    for role in sorted(hb.ROLES):
        for port in the_plan["core_ports"]:
            assert forward(rules, hb.heartbeat_frame(role, 1), port) == d.OFPP_CONTROLLER


@pytest.mark.parametrize("the_plan", UNWATCHED, ids=lambda p: p["mode"])
def test_unwatched_plans_drop_heartbeats(the_plan):
    rules = d.pipeline_rules(the_plan)
    for port in the_plan["core_ports"]:
        assert forward(rules, hb.heartbeat_frame(hb.CORE, 1), port) == DROP


@pytest.mark.parametrize("the_plan", WATCHED + UNWATCHED[:3], ids=lambda p: p["mode"])
def test_scr_frames_never_reach_the_controller(the_plan):
    """The shim's SCR frames go to their core; SCR frames out of a core port are dropped,
    not taken for heartbeats (which they were while both had ethertype 0x88B5)."""
    rules = d.pipeline_rules(the_plan)
    slots = 1 if the_plan["mode"] == "pb" else len(the_plan["core_ports"])
    for slot in range(slots):
        frame = h.encode(h.ScrHeader(h.FLAG_STOP, 0, 4, slot, slots, slots, 0, 0), [])
        assert forward(rules, frame, the_plan["shim_out_port"]) == the_plan["core_ports"][slot]
        for port in the_plan["core_ports"]:
            assert forward(rules, frame, port) == DROP


def packet_in(frame: bytes, in_port: int) -> SimpleNamespace:
    return SimpleNamespace(msg=SimpleNamespace(data=bytearray(frame), match={"in_port": in_port}))


def test_the_packet_in_handler_counts_heartbeats_only():
    app = SimpleNamespace(watchdog=d.CoreWatch([10, 11], 0.2))
    handler = d.DispatchApp.packet_in_handler
    handler(app, packet_in(hb.heartbeat_frame(hb.CORE, 0), 10))
    handler(app, packet_in(hb.heartbeat_frame(hb.CORE, 1), 10))
    handler(app, packet_in(spray_frame(1, [0]), 11))  # same ethertype, another magic
    handler(app, packet_in(h.encode(h.ScrHeader(0, 0, 4, 0, 1, 1, 0, 0), []), 11))
    old = bytearray(hb.heartbeat_frame(hb.CORE, 2))
    old[12:14] = h.ETH_P_SCR.to_bytes(2, "big")  # a heartbeat in the old ethertype
    handler(app, packet_in(bytes(old), 11))
    assert app.watchdog.counts == {10: 2, 11: 0}
