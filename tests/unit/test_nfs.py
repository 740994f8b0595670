"""The network functions: the SCR contract, each NF's semantics and ``make_nf``.

For every NF in ``nfs.NF_CLASSES``, ``update(s, unpack_record(pack_record(p, ts)))`` must
leave ``s`` exactly as ``process(s, p, ts)`` does, checked after every packet of a generated
trace. Then the DDoS mitigator's threshold, the port-knocking firewall's state machine
(in-order knocks open, out-of-order knocks and wrong ports do not, FIN closes) and the
errors ``make_nf`` raises for unknown names and bad parameters.
"""

from __future__ import annotations

import json

import pytest

from experiments.traffic import ATTACK_NET, KNOCK_NET, TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from nfs.base import DROP, PASS, VERDICT_NAMES, NetworkFunction, spin
from nfs.ddos import DDoSMitigator
from nfs.packet import PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_SYN, Packet, ip_to_int, parse
from nfs.port_knocking import CLOSED_0, CLOSED_1, CLOSED_2, OPEN, PortKnockingFirewall

SPEC = TraceSpec(packets=800, flows=30, skew=1.0, attackers=3, attack_share=0.2, knockers=3,
                 seed=7)
# Small thresholds so that the trace crosses them and both verdicts occur.
PARAMS = {"ddos": [{}, {"threshold": 5}, {"threshold": 1}],
          "knock": [{}, {"knocks": (22, 80, 100)}]}


@pytest.fixture(scope="module")
def trace() -> list[tuple[Packet, int]]:
    return [(parse(frame), 1_000 * i + 17) for i, frame in enumerate(make_trace(SPEC))]


def pkt(src="10.0.0.1", dport=80, flags=TCP_ACK, proto=PROTO_TCP, trace_id=0) -> Packet:
    return Packet(ip_to_int(src), ip_to_int("10.9.9.9"), proto, 40000, dport, flags, 40, 0, 0,
                  trace_id)


def test_nf_classes_registry():
    assert set(NF_CLASSES) == {"ddos", "knock"}
    for name, cls in NF_CLASSES.items():
        assert cls.name == name
        assert issubclass(cls, NetworkFunction)


def nf_cases():
    return [(name, params) for name in NF_CLASSES for params in PARAMS.get(name, [{}])]


def test_every_nf_has_contract_cases():
    assert {name for name, _ in nf_cases()} == set(NF_CLASSES)


# --- the SCR contract -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_update_of_record_equals_process(name, params, trace):
    nf = make_nf(name, **params)
    processed, updated = nf.new_state(), nf.new_state()
    verdicts = []
    for i, (packet, ts) in enumerate(trace):
        verdicts.append(nf.process(processed, packet, ts))
        record = nf.pack_record(packet, ts)
        assert len(record) == nf.record_size == nf.record_format.size
        fields = nf.unpack_record(record)
        assert fields == tuple(nf.record(packet, ts))
        nf.update(updated, fields)
        assert nf.state_to_json(updated) == nf.state_to_json(processed), f"packet {i}"
    assert set(verdicts) <= {PASS, DROP}
    assert nf.state_to_json(processed)  # the trace touched the state


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_state_to_json_is_canonical_json(name, params, trace):
    nf = make_nf(name, **params)
    state = nf.new_state()
    assert nf.state_to_json(state) == {}
    for packet, ts in trace[:200]:
        nf.process(state, packet, ts)
    data = nf.state_to_json(state)
    assert json.loads(json.dumps(data)) == data
    assert all(isinstance(k, str) for k in data)
    assert list(data) == [k for _, k in sorted((ip_to_int(k), k) for k in data)]


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_params_round_trip(name, params):
    nf = make_nf(name, **params, work=3)
    assert nf.params()["work"] == 3
    again = make_nf(name, **nf.params())
    assert again.params() == nf.params()


def test_trace_exercises_both_verdicts(trace):
    for name, params in [("ddos", {"threshold": 5}), ("knock", {})]:
        nf = make_nf(name, **params)
        state = nf.new_state()
        verdicts = {nf.process(state, packet, ts) for packet, ts in trace}
        assert verdicts == {PASS, DROP}, name


# --- DDoS mitigator ------------------------------------------------------------------------


def test_ddos_threshold_semantics():
    nf = DDoSMitigator(threshold=3)
    state = nf.new_state()
    verdicts = [nf.process(state, pkt("1.1.1.1"), 0) for _ in range(5)]
    assert verdicts == [PASS, PASS, PASS, DROP, DROP]
    assert nf.process(state, pkt("2.2.2.2"), 0) == PASS  # another source is unaffected
    assert nf.state_to_json(state) == {"1.1.1.1": 5, "2.2.2.2": 1}


def test_ddos_threshold_one():
    nf = DDoSMitigator(threshold=1)
    state = nf.new_state()
    assert [nf.process(state, pkt(), 0) for _ in range(3)] == [PASS, DROP, DROP]


def test_ddos_counts_all_protocols_and_ignores_time():
    nf = DDoSMitigator(threshold=2)
    state = nf.new_state()
    assert nf.process(state, pkt(proto=PROTO_UDP), 0) == PASS
    assert nf.process(state, pkt(dport=443, flags=TCP_SYN), 10**18) == PASS
    assert nf.process(state, pkt(), 5) == DROP


def test_ddos_update_counts_like_process():
    nf = DDoSMitigator(threshold=2)
    state = nf.new_state()
    nf.update(state, nf.unpack_record(nf.pack_record(pkt("3.3.3.3"), 0)))
    nf.update(state, (ip_to_int("3.3.3.3"),))
    assert nf.process(state, pkt("3.3.3.3"), 0) == DROP
    assert state == {ip_to_int("3.3.3.3"): 3}
    assert nf.record_size == 4


def test_ddos_over_trace(trace):
    """Exactly the packets of a source past its ``threshold``-th are dropped."""
    threshold = 40
    nf = DDoSMitigator(threshold=threshold)
    state = nf.new_state()
    sent: dict[int, int] = {}
    dropped: dict[int, int] = {}
    for packet, ts in trace:
        sent[packet.src] = sent.get(packet.src, 0) + 1
        if nf.process(state, packet, ts) == DROP:
            dropped[packet.src] = dropped.get(packet.src, 0) + 1
            assert sent[packet.src] > threshold
    assert dropped == {src: n - threshold for src, n in sent.items() if n > threshold}
    assert {ATTACK_NET + i for i in range(SPEC.attackers)} <= set(dropped)
    assert state == sent


@pytest.mark.parametrize("threshold", [0, -1])
def test_ddos_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        DDoSMitigator(threshold=threshold)


# --- port knocking ---------------------------------------------------------------------------


def run_knock(nf, packets, state=None):
    state = nf.new_state() if state is None else state
    return [nf.process(state, packet, 0) for packet in packets], state


def test_knock_in_order_opens():
    nf = PortKnockingFirewall()
    verdicts, state = run_knock(nf, [pkt(dport=100), pkt(dport=101), pkt(dport=102),
                                     pkt(dport=22), pkt(dport=443)])
    assert verdicts == [DROP, DROP, PASS, PASS, PASS]  # the third knock itself passes
    assert nf.state_to_json(state) == {"10.0.0.1": "OPEN"}


def test_knock_steps_through_states():
    nf = PortKnockingFirewall()
    state = nf.new_state()
    src = ip_to_int("10.0.0.1")
    seen = []
    for port in (100, 101, 102):
        nf.process(state, pkt(dport=port), 0)
        seen.append(state[src])
    assert seen == [CLOSED_1, CLOSED_2, OPEN]


@pytest.mark.parametrize("order", [(101, 100, 102), (100, 102, 101), (102, 101, 100),
                                   (101, 102, 100)])
def test_knock_out_of_order_does_not_open(order):
    nf = PortKnockingFirewall()
    verdicts, state = run_knock(nf, [pkt(dport=p) for p in [*order, 22, 22]])
    assert verdicts == [DROP] * 5
    assert state[ip_to_int("10.0.0.1")] != OPEN


@pytest.mark.parametrize("wrong_at", [1, 2])
def test_knock_wrong_port_resets(wrong_at):
    nf = PortKnockingFirewall()
    ports = [100, 101, 102]
    ports.insert(wrong_at, 22)
    verdicts, state = run_knock(nf, [pkt(dport=p) for p in ports])
    assert verdicts == [DROP] * 4
    # The wrong port sent it back to CLOSED_0: the remaining knocks cannot open it ...
    assert state[ip_to_int("10.0.0.1")] in (CLOSED_0, CLOSED_1)
    # ... but a whole new sequence does.
    verdicts, state = run_knock(nf, [pkt(dport=p) for p in (100, 101, 102)], state)
    assert verdicts == [DROP, DROP, PASS]


def test_knock_repeated_first_knock_resets():
    nf = PortKnockingFirewall()
    verdicts, state = run_knock(nf, [pkt(dport=p) for p in (100, 100, 101, 102)])
    assert verdicts == [DROP] * 4
    assert state[ip_to_int("10.0.0.1")] == CLOSED_0


def test_knock_fin_closes():
    nf = PortKnockingFirewall()
    opening = [pkt(dport=p) for p in (100, 101, 102)]
    verdicts, state = run_knock(nf, [*opening, pkt(dport=22, flags=TCP_FIN | TCP_ACK),
                                     pkt(dport=22)])
    assert verdicts == [DROP, DROP, PASS, DROP, DROP]  # the FIN itself is dropped
    assert nf.state_to_json(state) == {"10.0.0.1": "CLOSED_0"}
    verdicts, state = run_knock(nf, opening, state)  # and it can knock again
    assert verdicts[-1] == PASS


def test_knock_fin_while_closed_is_just_a_packet():
    nf = PortKnockingFirewall()
    verdicts, state = run_knock(nf, [pkt(dport=100, flags=TCP_FIN), pkt(dport=101),
                                     pkt(dport=102, flags=TCP_FIN | TCP_SYN)])
    assert verdicts == [DROP, DROP, PASS]
    assert state[ip_to_int("10.0.0.1")] == OPEN


def test_knock_sources_are_independent():
    nf = PortKnockingFirewall()
    a, b = "10.0.0.1", "10.0.0.2"
    packets = [pkt(a, 100), pkt(b, 100), pkt(a, 101), pkt(b, 22), pkt(a, 102), pkt(b, 101)]
    verdicts, state = run_knock(nf, packets)
    assert verdicts == [DROP, DROP, DROP, DROP, PASS, DROP]
    assert nf.state_to_json(state) == {a: "OPEN", b: "CLOSED_0"}


def test_knock_custom_ports():
    nf = make_nf("knock", knocks=[7, 8, 9])
    assert nf.knocks == (7, 8, 9)
    verdicts, _ = run_knock(nf, [pkt(dport=p) for p in (100, 101, 102, 7, 8, 9)])
    assert verdicts == [DROP] * 5 + [PASS]


def test_knock_record_and_update():
    nf = PortKnockingFirewall()
    packet = pkt("10.0.0.3", 100, TCP_FIN | 0x100)
    assert nf.record_size == 7
    assert nf.unpack_record(nf.pack_record(packet, 0)) == (ip_to_int("10.0.0.3"), 100, TCP_FIN)
    state = nf.new_state()
    for port in (100, 101, 102):
        nf.update(state, nf.unpack_record(nf.pack_record(pkt("10.0.0.3", port), 0)))
    assert state == {ip_to_int("10.0.0.3"): OPEN}
    nf.update(state, (ip_to_int("10.0.0.3"), 5, TCP_FIN))
    assert state == {ip_to_int("10.0.0.3"): CLOSED_0}


def test_knock_over_trace(trace):
    """Good knockers get their service packets through (not the final FIN); bad ones none."""
    nf = PortKnockingFirewall(knocks=SPEC.knocks)
    state = nf.new_state()
    passed: dict[int, int] = {}
    for packet, ts in trace:
        if nf.process(state, packet, ts) == PASS:
            passed[packet.src] = passed.get(packet.src, 0) + 1
    # The third knock passes, and every service packet but the last, which carries FIN.
    assert passed == {KNOCK_NET + k: 1 + SPEC.service_packets - 1 for k in range(SPEC.knockers)}
    for k in range(2 * SPEC.knockers):  # the last packet of each knocker is a FIN
        assert state[KNOCK_NET + k] == CLOSED_0


@pytest.mark.parametrize(
    "knocks", [(1, 2), (1, 2, 3, 4), (0, 1, 2), (1, 2, 65536), (-5, 1, 2), ("a", "b", "c")]
)
def test_knock_bad_ports(knocks):
    with pytest.raises(ValueError):
        PortKnockingFirewall(knocks=knocks)


# --- make_nf and the base class -----------------------------------------------------------


@pytest.mark.parametrize("name", ["", "DDoS", "nat", "knocking"])
def test_make_nf_unknown_name(name):
    with pytest.raises(ValueError, match="unknown NF") as info:
        make_nf(name)
    assert "ddos" in str(info.value)
    assert "knock" in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [("ddos", {"threshold": 0}), ("ddos", {"work": -1}), ("knock", {"work": -3}),
     ("knock", {"knocks": (1, 2)})],
)
def test_make_nf_bad_params(name, params):
    with pytest.raises(ValueError):
        make_nf(name, **params)


@pytest.mark.parametrize("name", ["ddos", "knock"])
def test_make_nf_unknown_param(name):
    with pytest.raises((TypeError, ValueError)):
        make_nf(name, no_such_parameter=1)


def test_make_nf_builds_configured_instances():
    nf = make_nf("ddos", threshold=7, work=11)
    assert isinstance(nf, DDoSMitigator)
    assert (nf.threshold, nf.work) == (7, 11)
    assert nf.params() == {"work": 11, "threshold": 7}
    knock = make_nf("knock")
    assert isinstance(knock, PortKnockingFirewall)
    assert knock.params() == {"work": 0, "knocks": [100, 101, 102]}


def test_spin():
    assert spin(0) == 1
    assert spin(0, seed=9) == 9
    assert spin(1) == (1103515245 + 12345) & 0x7FFFFFFF
    assert spin(1000, 3) == spin(1000, 3)
    assert spin(1000, 3) != spin(1000, 4)
    assert 0 <= spin(5000) < 2**31


def test_verdict_names():
    assert VERDICT_NAMES == {DROP: "drop", PASS: "pass"}
    assert PASS != DROP
