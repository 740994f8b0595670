"""The dispatch app's pure parts: plan -> rules and group, plan checks, and the bytes of OVS's
selection-method group property, checked against the layout in OVS's source
(``include/openflow/netronome-ext.h``, ``lib/ofp-group.c``, ``lib/nx-match.c``) and, where
``ovs-ofctl`` is installed, decoded by OVS itself (``ofp-print`` needs no switch and no root).
"""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import pytest

from controller import dispatch as d
from controller.compat import ofproto_v1_3, ofproto_v1_5, ofproto_v1_5_parser
from sequencer.wire.header import ETH_P_IP, ETH_P_SCR, slot_mac
from topologies.scr_topo import PortPlan

FOUR_TUPLE = ["ip_src", "ip_dst", "tcp_src", "tcp_dst"]


def plan(mode="scr", cores=4, **extra) -> dict:
    return {**PortPlan(cores).to_json(), "mode": mode, **extra}


def shard_plan(fields=("ip_src",), cores=4) -> dict:
    return plan("shard", cores, shard_fields=list(fields))


# --- plan -> rules -----------------------------------------------------------------------


def test_scr_rules_spray_by_slot_mac_and_forward_cores_to_sink():
    p = PortPlan(4)
    rules = d.pipeline_rules(plan())
    assert len(rules) == d.expected_flow_count(plan()) == 2 * 4 + 2
    assert rules[0] == d.Rule(100, {"in_port": p.gen_port}, p.shim_in_port)
    for core in range(4):
        assert d.Rule(100, {"in_port": p.shim_out_port, "eth_type": ETH_P_SCR,
                            "eth_src": slot_mac(core)}, p.core_port(core)) in rules
        assert d.Rule(100, {"in_port": p.core_port(core), "eth_type": ETH_P_IP},
                      p.sink_port) in rules
    assert rules[-1] == d.Rule(0, {}, None)
    assert all(r.group_id is None for r in rules)
    assert d.select_group(plan()) is None and d.expected_groups(plan()) == 0


@pytest.mark.parametrize("mode", ["lock", "single"])
def test_lock_and_single_are_aliases_of_scr(mode):
    cores = 1 if mode == "single" else 4
    assert d.pipeline_rules(plan(mode, cores)) == d.pipeline_rules(plan("scr", cores))
    assert d.expected_groups(plan(mode, cores)) == 0


def test_a_plan_without_mode_is_scr():
    bare = PortPlan(2).to_json()
    assert d.pipeline_rules(bare) == d.pipeline_rules(plan("scr", 2))


@pytest.mark.parametrize("cores", [1, 4, 7])
def test_shard_sends_the_shims_ipv4_output_to_one_select_group(cores):
    p = PortPlan(cores)
    rules = d.pipeline_rules(shard_plan(FOUR_TUPLE, cores))
    assert len(rules) == d.expected_flow_count(shard_plan(FOUR_TUPLE, cores)) == 2 * cores + 3
    to_group = [r for r in rules if r.group_id is not None]
    assert to_group == [d.Rule(100, {"in_port": p.shim_out_port, "eth_type": ETH_P_IP},
                               None, d.SHARD_GROUP_ID)]
    # SCR frames (only the STOP frames, in shard mode) still go to their slot's core.
    stop_rules = [r for r in rules if r.match.get("eth_type") == ETH_P_SCR]
    assert [r.out_port for r in stop_rules] == p.core_ports
    assert sum(r.out_port == p.sink_port for r in rules) == cores  # core -> sink stays
    assert rules[-1] == d.Rule(0, {}, None)  # and the drop rule
    group = d.select_group(shard_plan(FOUR_TUPLE, cores))
    assert group == d.SelectGroup(d.SHARD_GROUP_ID, tuple(p.core_ports), "hash",
                                  tuple(FOUR_TUPLE))
    assert d.expected_groups(shard_plan(FOUR_TUPLE, cores)) == 1


def test_other_modes_ignore_shard_fields():
    assert d.pipeline_rules(plan("scr", shard_fields=["ip_src"])) == d.pipeline_rules(plan())


@pytest.mark.parametrize(("bad", "message"), [
    (plan("rss"), "unknown mode 'rss'"),
    (plan("shard"), "needs a non-empty list 'shard_fields'"),
    (shard_plan([]), "needs a non-empty list 'shard_fields'"),
    (plan("shard", shard_fields="ip_src"), "needs a non-empty list 'shard_fields'"),
    (shard_plan(["ip_src", "ipv6_src"]), "unknown shard field(s) 'ipv6_src'"),
    (shard_plan(["ip_src", "ip_src"]), "repeated shard field"),
    ({"mode": "scr", "gen_port": 1}, "lacks shim_in_port, shim_out_port, sink_port"),
    ({**plan(), "core_ports": []}, "no core ports"),
])
def test_bad_plans_fail_with_one_line(bad, message):
    for check in (d.check_plan, d.pipeline_rules, d.expected_flow_count, d.expected_groups):
        with pytest.raises(ValueError) as err:
            check(bad)
        assert message in str(err.value) and "\n" not in str(err.value)


# --- the selection-method property's bytes -------------------------------------------------


def test_oxm_field_numbers_agree_with_os_ken():
    os_ken_name = {"ip_src": "ipv4_src", "ip_dst": "ipv4_dst", "nw_proto": "ip_proto"}
    known = {t.name: (t.oxm_field, t.type.size) for t in ofproto_v1_5.oxm_types}
    for name, (number, width) in d.SHARD_FIELDS.items():
        assert known[os_ken_name.get(name, name)] == (number, width), name
        header = ofproto_v1_5.oxm_tlv_header(number, width)
        assert d.oxm_field_array([name])[:4] == header.to_bytes(4, "big")


def test_oxm_field_array_is_headers_with_all_ones_masks():
    # class 0x8000 (OpenFlow basic), field << 1 with has_mask 0, length, then the mask.
    assert d.oxm_field_array(["ip_src"]) == bytes.fromhex("80001604" "ffffffff")
    assert d.oxm_field_array(["tcp_dst", "eth_src"]) == bytes.fromhex(
        "80001c02" "ffff" "80000806" "ffffffffffff")
    with pytest.raises(ValueError, match="unknown shard field 'ip'"):
        d.oxm_field_array(["ip"])


def test_selection_method_property_hash_with_one_field():
    expected = bytes.fromhex(
        "ffff"              # type: OFPGPT15_EXPERIMENTER
        "0030"              # length 48: 40 fixed + 8 of OXM, no padding needed
        "0000154d"          # experimenter: NTR_VENDOR_ID
        "00000001"          # exp_type: NTRT_SELECTION_METHOD
        "00000000"          # pad
        "68617368" + "00" * 12 +  # selection_method "hash", NUL-padded to 16
        "0000000000000000"  # selection_method_param
        "80001604ffffffff"  # OXM ip_src, value = mask
    )
    assert d.selection_method_property("hash", ["ip_src"]) == expected


def test_selection_method_property_pads_to_8_but_length_excludes_padding():
    prop = d.selection_method_property("hash", ["tcp_src"])
    assert prop[2:4] == (40 + 6).to_bytes(2, "big")
    assert len(prop) == 48 and prop[46:] == b"\0\0"
    assert prop[40:46] == bytes.fromhex("80001a02ffff")


def test_selection_method_property_dp_hash_has_no_fields():
    prop = d.selection_method_property("dp_hash", param=7)
    assert len(prop) == 40 and prop[2:4] == b"\x00\x28"
    assert prop[16:32] == b"dp_hash" + bytes(9)
    assert prop[32:40] == (7).to_bytes(8, "big")


@pytest.mark.parametrize(("args", "message"), [
    (("random",), "unknown selection method"),
    (("dp_hash", ["ip_src"]), "takes no fields"),
    (("hash", ["ip_src"], -1), "64 bits"),
])
def test_selection_method_property_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        d.selection_method_property(*args)


# --- whole OpenFlow messages, as OVS reads them ------------------------------------------


def datapath(ofproto=ofproto_v1_5, parser=ofproto_v1_5_parser):
    """What the message builders read from a datapath: its OpenFlow version's modules."""
    return SimpleNamespace(ofproto=ofproto, ofproto_parser=parser, id=1)


def wire(msg) -> str:
    msg.serialize()
    return bytes(msg.buf).hex()


def test_group_mods_carry_the_property_and_one_weighted_bucket_per_core():
    delete, add = d.group_mods(datapath(), d.select_group(shard_plan(FOUR_TUPLE)))
    assert delete.command == ofproto_v1_5.OFPGC_DELETE and not delete.buckets
    assert add.command == ofproto_v1_5.OFPGC_ADD and add.type == ofproto_v1_5.OFPGT_SELECT
    assert [b.actions[0].port for b in add.buckets] == PortPlan(4).core_ports
    raw = bytes.fromhex(wire(add))
    assert raw.endswith(d.selection_method_property("hash", FOUR_TUPLE))


def test_group_mods_need_openflow_15():
    v13 = datapath(ofproto_v1_3, None)
    with pytest.raises(ValueError, match="needs OpenFlow 1.5"):
        d.group_mods(v13, d.select_group(shard_plan()))


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="Open vSwitch not installed")
def test_ovs_decodes_the_group_and_flow_mods():
    def ofp_print(msg) -> str:
        out = subprocess.run(["ovs-ofctl", "ofp-print", wire(msg)], capture_output=True,
                             text=True, check=True).stdout
        assert "invalid" not in out.lower() and "error" not in out.lower(), out
        return out

    dp = datapath()
    p = PortPlan(4)
    delete, add = d.group_mods(dp, d.select_group(shard_plan(FOUR_TUPLE)))
    assert "DEL group_id=1,type=select" in ofp_print(delete)
    text = ofp_print(add)
    assert ("ADD group_id=1,type=select,selection_method=hash,"
            "fields(ip_src,ip_dst,tcp_src,tcp_dst)") in text
    for i in range(4):
        assert f"bucket=bucket_id:{i},actions=output:{p.core_port(i)}" in text
    flows = [ofp_print(d.flow_mod(dp, r)) for r in d.pipeline_rules(shard_plan(FOUR_TUPLE))]
    assert any(f"ip,in_port={p.shim_out_port}" in f and "actions=group:1" in f for f in flows)
    assert all("cookie:0x5c5" in f for f in flows)


# --- primary-backup (pb) ----------------------------------------------------------------


def pb_plan(timeout_ms=None) -> dict:
    extra = {} if timeout_ms is None else {"failover_timeout_ms": timeout_ms}
    return plan("pb", 2, **extra)


def test_pb_is_single_to_the_primary_plus_heartbeats_to_the_controller():
    p = PortPlan(2)
    rules = d.pipeline_rules(pb_plan())
    assert len(rules) == d.expected_flow_count(pb_plan()) == 7
    slot_rules = [r for r in rules if r.match.get("in_port") == p.shim_out_port]
    assert slot_rules == [d.Rule(100, {"in_port": p.shim_out_port, "eth_type": ETH_P_SCR,
                                       "eth_src": slot_mac(0)}, p.core_port(0))]
    for port in p.core_ports:  # both instances may forward, both must beat
        assert d.Rule(100, {"in_port": port, "eth_type": ETH_P_IP}, p.sink_port) in rules
        assert d.Rule(100, {"in_port": port, "eth_type": 0x88B6}, d.OFPP_CONTROLLER) in rules
    assert rules[-1] == d.Rule(0, {}, None)
    assert d.expected_groups(pb_plan()) == 0
    assert d.OFPP_CONTROLLER == ofproto_v1_3.OFPP_CONTROLLER == ofproto_v1_5.OFPP_CONTROLLER


def test_pb_failover_rule_moves_only_the_output():
    p = PortPlan(2)
    before = d.pipeline_rules(pb_plan())[1]
    after = d.failover_rule(pb_plan(), p.core_port(1))
    assert after.match == before.match and after.priority == before.priority
    assert after.out_port == p.core_port(1)
    with pytest.raises(ValueError, match="no failover to port 99"):
        d.failover_rule(pb_plan(), 99)
    with pytest.raises(ValueError, match="in mode 'scr'"):
        d.failover_rule(plan("scr", 2), p.core_port(1))


def test_pb_timeout_defaults_to_200_ms():
    assert d.failover_timeout_s(pb_plan()) == 0.2
    assert d.failover_timeout_s(pb_plan(50)) == 0.05


@pytest.mark.parametrize(("bad", "message"), [
    (plan("pb", 1), "2 or more distinct core ports"),
    ({**plan("pb", 2), "core_ports": [10, 10]}, "2 or more distinct core ports"),
    (pb_plan(0), "failover_timeout_ms must be a number > 0"),
    (pb_plan("fast"), "failover_timeout_ms must be a number > 0"),
    (pb_plan(True), "failover_timeout_ms must be a number > 0"),
])
def test_bad_pb_plans_fail_with_one_line(bad, message):
    with pytest.raises(ValueError) as err:
        d.check_plan(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_watchdog_fails_over_once_when_the_primary_falls_silent():
    dog = d.Watchdog([10, 11], 0.2)
    assert dog.check(5.0) is None  # nobody has beaten yet: nothing to judge
    for t in (0.0, 0.02, 0.04):
        dog.heartbeat(10, t)
        dog.heartbeat(11, t)
    dog.heartbeat(11, 0.2)
    assert dog.check(0.2) is None  # 10 silent for 0.16 s: not yet
    event = dog.check(0.241)
    assert event == {"from_port": 10, "to_port": 11, "silent_s": 0.201}
    assert dog.active == 11 and dog.events == [event]
    dog.heartbeat(10, 0.25)  # the old primary comes back: it never gets the traffic again
    assert dog.check(5.0) is None and dog.active == 11
    assert dog.counts == {10: 4, 11: 4}


def test_watchdog_never_fails_over_to_a_silent_backup():
    dog = d.Watchdog([10, 11, 12], 0.2)
    dog.heartbeat(10, 0.0)
    dog.heartbeat(11, 0.0)
    assert dog.check(0.3) is None  # 11 is as dead as 10, 12 never beat: keep the rule
    dog.heartbeat(12, 0.5)
    assert dog.check(0.6)["to_port"] == 12
    dog.heartbeat(99, 0.6)  # not a core port: ignored
    assert 99 not in dog.counts


def test_watchdog_needs_two_ports_and_a_timeout():
    with pytest.raises(ValueError):
        d.Watchdog([10], 0.2)
    with pytest.raises(ValueError):
        d.Watchdog([10, 11], 0)


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="Open vSwitch not installed")
def test_ovs_decodes_the_pb_rules_and_the_failover_modify():
    def ofp_print(msg) -> str:
        out = subprocess.run(["ovs-ofctl", "ofp-print", wire(msg)], capture_output=True,
                             text=True, check=True).stdout
        assert "invalid" not in out.lower() and "error" not in out.lower(), out
        return out

    dp = datapath()
    beat = [r for r in d.pipeline_rules(pb_plan()) if r.out_port == d.OFPP_CONTROLLER]
    assert "actions=CONTROLLER" in ofp_print(d.flow_mod(dp, beat[0]))
    text = ofp_print(d.flow_mod(dp, d.failover_rule(pb_plan(), 11), modify=True))
    assert "MOD_STRICT" in text and "actions=output:11" in text
    assert "dl_src=02:53:43:52:00:00" in text
