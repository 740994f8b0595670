"""The network functions: the per-key interface, the SCR contract, each NF's semantics.

The contract's rules are ``nfs.contract``'s checks (the same ones a teaching lab runs on a
student's NF); here they run on every NF in ``nfs.NF_CLASSES``, with several parameter sets:
``update(s, unpack_record(pack_record(p, ts)))`` must take ``s`` exactly where
``process(s, p, ts)`` does, over a generated trace and random packets (odd flags, wrapping
sequence numbers, time running backwards); keys and values must round-trip through their
fixed-size packing, extremes included; ``state_to_json`` must give canonical JSON for any
mapping (the ``lock`` strategy passes a shared table's items); runs must be deterministic;
``shard_fields`` must cover the key; ``params()`` must rebuild the NF; ``state_work`` must
be paid once per transition. Each check is also shown failing on an NF that breaks its
rule. Every NF must decide both ways on the default trace and on the emulation tests'
trace. Then each NF's documented semantics: the DDoS threshold, the heavy-hitter byte
counts, the token bucket's integer refill, the port-knocking state machine and the
one-sided TCP tracker; and ``make_nf``'s one-line errors.
"""

from __future__ import annotations

import struct
from collections import Counter

import pytest

import nfs.base
from experiments.workload.traffic import ATTACK_NET, KNOCK_NET, TraceSpec, make_trace
from nfs import NF_CLASSES, contract, make_nf
from nfs.base import DROP, PASS, VERDICT_NAMES, NetworkFunction, int_param, spin
from nfs.conntrack import ESTABLISHED, FIN_WAIT, SYN_SENT, TcpConnectionTracker
from nfs.contract import ContractError, random_packets
from nfs.ddos import DDoSMitigator
from nfs.heavy_hitter import HeavyHitterDetector
from nfs.port_knocking import CLOSED_0, CLOSED_1, CLOSED_2, OPEN, PortKnockingFirewall
from nfs.reference import run_reference
from nfs.token_bucket import MICRO, TokenBucketPolicer
from sequencer.wire.packet import (
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    Packet,
    ip_to_int,
    parse,
)

SPEC = TraceSpec(packets=800, flows=30, skew=1.0, attackers=3, attack_share=0.2, knockers=3,
                 seed=7)
# The emulation tests' trace and NF parameters (tests/emulation).
EMULATION_SPEC = TraceSpec(packets=1200, flows=40, skew=1.2, attackers=2, attack_share=0.1,
                           knockers=3, seed=7)
EMULATION_PARAMS = {"ddos": {"threshold": 30}}
# Small thresholds so that the trace crosses them and both verdicts occur; small windows and
# timeouts so that the odd paths run too.
PARAMS = {"ddos": [{}, {"threshold": 5}, {"threshold": 1}],
          "hh": [{}, {"threshold": 500}],
          "tb": [{}, {"rate": 1000, "burst": 3}, {"rate": 7, "burst": 1}],
          "knock": [{}, {"knocks": (22, 80, 100)}],
          "conntrack": [{}, {"window": 10}, {"timeout_ns": 50_000}]}
OPENFLOW_FIELDS = {"ip_src", "ip_dst", "tcp_src", "tcp_dst"}
U32 = 2**32 - 1
U64 = 2**64 - 1


@pytest.fixture(scope="module")
def trace() -> list[tuple[Packet, int]]:
    return [(parse(frame), 1_000 * i + 17) for i, frame in enumerate(make_trace(SPEC))]


def pkt(src="10.0.0.1", dport=80, flags=TCP_ACK, proto=PROTO_TCP, trace_id=0, *,
        dst="10.9.9.9", sport=40000, length=40, seq=0, ack=0) -> Packet:
    return Packet(ip_to_int(src), ip_to_int(dst), proto, sport, dport, flags, length, seq, ack,
                  trace_id)


def test_nf_classes_registry():
    assert list(NF_CLASSES) == ["ddos", "hh", "tb", "knock", "conntrack"]
    for name, cls in NF_CLASSES.items():
        contract.check_class(cls)
        assert cls.name == name
        assert set(cls.shard_fields) <= OPENFLOW_FIELDS  # the package's NFs: TCP/IP fields
    assert NF_CLASSES["ddos"].shard_fields == NF_CLASSES["knock"].shard_fields == ("ip_src",)
    for name in ("hh", "tb", "conntrack"):
        assert NF_CLASSES[name].shard_fields == ("ip_src", "ip_dst", "tcp_src", "tcp_dst")


def nf_cases():
    return [(name, params) for name in NF_CLASSES for params in PARAMS.get(name, [{}])]


def test_every_nf_has_contract_cases():
    assert {name for name, _ in nf_cases()} == set(NF_CLASSES)
    assert set(PARAMS) == set(NF_CLASSES)


# --- the SCR contract (nfs.contract) -------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_update_of_record_equals_process(name, params, trace):
    nf = make_nf(name, **params)
    contract.check_update_equals_process(nf, trace)
    state = nf.new_state()
    for packet, ts in trace:
        nf.process(state, packet, ts)
    assert nf.state_to_json(state)  # the trace touched the state


@pytest.mark.parametrize(("name", "params"), nf_cases())
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_update_equals_process_on_random_packets(name, params, seed):
    verdicts = contract.check_update_equals_process(make_nf(name, **params),
                                                    random_packets(seed))
    assert set(verdicts) == {PASS, DROP}, "the random packets should take both paths"


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_state_to_json_is_canonical_json(name, params, trace):
    data = contract.check_state_json(make_nf(name, **params), trace[:200])
    assert data  # the packets made some state


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_keys_and_values_round_trip_through_packing(name, params, trace):
    """What a shared table stores: every key and value the NF made, packed and unpacked."""
    state = contract.check_packing(make_nf(name, **params), trace + random_packets(5, 500))
    assert state


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_nf_is_deterministic(name, params, trace):
    verdicts = contract.check_deterministic(make_nf(name, **params),
                                            trace + random_packets(6, 500))
    assert set(verdicts) == {PASS, DROP}


@pytest.mark.parametrize("name", list(NF_CLASSES))
def test_shard_fields_cover_the_key(name, trace):
    """On the generator's one-directional traffic (see nfs.contract's caveat on conntrack)."""
    contract.check_shard_fields(make_nf(name), trace)


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_check_nf_passes_every_nf(name, params, trace):
    verdicts = contract.check_nf(make_nf(name, **params), trace[:300] + random_packets(4, 300),
                                 shard_packets=trace)
    assert len(verdicts) == 600


def extreme_transitions():
    """``(nf, value, fields)`` near the limits of each NF's value and record formats."""
    src, dst = U32, 0
    return [
        (DDoSMitigator(), (U64 - 1,), (src,)),
        (DDoSMitigator(), None, (0,)),
        (HeavyHitterDetector(), (U64 - 1500,), (src, dst, 65535, 0, 1500, 0)),
        (HeavyHitterDetector(), None, (src, dst, 0, 65535, 65535, TCP_SYN)),
        (TokenBucketPolicer(burst=(U64 // MICRO)), None, (src, dst, 1, 1, U64, TCP_SYN)),
        (TokenBucketPolicer(rate=10**9, burst=10**6), (0, 0), (src, dst, 1, 1, U64, 0)),
        (TokenBucketPolicer(), (0, U64), (src, dst, 1, 1, 0, 0)),
        (PortKnockingFirewall(), (CLOSED_2,), (src, 102, 0xFF)),
        (TcpConnectionTracker(), None, (src, dst, 65535, 1, PROTO_TCP, TCP_SYN, U32, U32, 65495,
                                        U64)),
        (TcpConnectionTracker(), (ESTABLISHED, U32, U64 - 1), (src, dst, 1, 2, PROTO_TCP,
                                                                 TCP_ACK | TCP_FIN, U32, 0, 9,
                                                                 U64)),
    ]


@pytest.mark.parametrize(("nf", "value", "fields"), extreme_transitions(),
                         ids=lambda x: x.name if isinstance(x, NetworkFunction) else "")
def test_extreme_values_pack_exactly(nf, value, fields):
    assert nf.unpack_record(nf.record_format.pack(*fields)) == fields
    assert contract.check_transition(nf, value, fields) is not None


def test_extreme_values_are_what_they_should_be():
    assert DDoSMitigator().step((U64 - 1,), (1,)) == (U64,)
    assert HeavyHitterDetector().step((U64 - 1500,), (1, 2, 3, 4, 1500, 0)) == (U64,)
    top = U64 // MICRO
    assert TokenBucketPolicer(burst=top).step(None, (1, 2, 3, 4, U64, TCP_SYN)) == (
        (top - 1) * MICRO, U64)
    # A huge rate and gap refill to exactly the cap.
    assert TokenBucketPolicer(rate=10**9, burst=10**6).step((0, 0), (1, 2, 3, 4, U64, 0)) == (
        (10**6 - 1) * MICRO, U64)
    # The SYN's end wraps around the sequence space.
    ct = TcpConnectionTracker()
    assert ct.step(None, (1, 2, 3, 4, PROTO_TCP, TCP_SYN, U32, 0, 10, U64)) == (SYN_SENT, 10, U64)


@pytest.mark.parametrize(("name", "params"), nf_cases())
def test_params_round_trip(name, params):
    nf = make_nf(name, **params, work=3, state_work=2)
    assert contract.check_params(nf) == nf.params()
    assert nf.params()["work"] == 3
    assert nf.params()["state_work"] == 2
    assert make_nf(name, **nf.params()).params() == nf.params()  # through the registry


def test_trace_exercises_both_verdicts(trace):
    for name, params in [("ddos", {"threshold": 5}), ("hh", {}), ("tb", {}),
                         ("knock", {}),
                         ("conntrack", {})]:
        nf = make_nf(name, **params)
        state = nf.new_state()
        verdicts = {nf.process(state, packet, ts) for packet, ts in trace}
        assert verdicts == {PASS, DROP}, name


@pytest.mark.parametrize(("spec", "params"), [(TraceSpec(), {}),
                                              (EMULATION_SPEC, EMULATION_PARAMS)],
                         ids=["default", "emulation"])
def test_every_nf_decides_both_ways_on_the_standard_traces(spec, params):
    packets = [(parse(frame), i * 500_000) for i, frame in enumerate(make_trace(spec))]
    for name in NF_CLASSES:
        run = run_reference(make_nf(name, **params.get(name, {})), packets)
        counts = Counter(run.verdicts)
        assert counts[PASS] > 0 and counts[DROP] > 0, (name, counts)


# --- each contract check fails on an NF that breaks its rule ------------------------------


class HiddenFlags(PortKnockingFirewall):
    """step reads the flags that record() left on the instance, not the record's."""

    def record(self, pkt, ts):
        self.last_flags = pkt.tcp_flags & 0xFF
        return super().record(pkt, ts)

    def step(self, value, fields):
        return super().step(value, (*fields[:2], self.last_flags))


class WideFlags(PortKnockingFirewall):
    def record(self, pkt, ts):
        return (pkt.src, pkt.dport, pkt.tcp_flags)  # 0x1FF does not fit "B"


class ListRecord(DDoSMitigator):
    def record(self, pkt, ts):
        return [pkt.src]


class FloatCount(DDoSMitigator):
    value_format = struct.Struct("!d")

    def step(self, value, fields):
        return (value[0] + 0.5,) if value else (0.5,)


class ByteCount(DDoSMitigator):
    value_format = struct.Struct("!B")  # 256 packets overflow it


class StringVerdict(DDoSMitigator):
    def verdict(self, old, new, fields):
        return "pass"


class SameJsonKey(DDoSMitigator):
    def key_to_json(self, key):
        return "source"


class Moody(DDoSMitigator):
    """Drops every seventh packet it is asked about, whichever run it is in."""

    calls = 0

    def verdict(self, old, new, fields):
        self.calls += 1
        return DROP if self.calls % 7 == 0 else super().verdict(old, new, fields)


class WrongShard(DDoSMitigator):
    shard_fields = ("tcp_dst",)  # a knocker's source knocks on three ports


class UnknownShardField(DDoSMitigator):
    shard_fields = ("eth_src",)


class EmptyRecord(DDoSMitigator):
    record_format = struct.Struct("")


class ForgetsThreshold(DDoSMitigator):
    def params(self):
        return {"work": self.work, "state_work": self.state_work}


class ApplyTwice(DDoSMitigator):
    def apply(self, value, fields):
        return self.step(super().apply(value, fields), fields)


class PaysTwice(DDoSMitigator):
    def apply(self, value, fields):
        nfs.base.spin(self.state_work)
        return super().apply(value, fields)


BROKEN = [  # (rule, the NF, the check, what the message must say)
    ("update", HiddenFlags(), contract.check_update_equals_process, "update()"),
    ("record", WideFlags(), contract.check_records, "cannot pack"),
    ("record", ListRecord(), contract.check_records, "not a tuple"),
    ("integers", FloatCount(), contract.check_packing, "integers"),
    ("packing", ByteCount(threshold=1), contract.check_packing, "does not fit value_format"),
    ("verdict", StringVerdict(), contract.check_update_equals_process, "PASS or DROP"),
    ("json", SameJsonKey(), contract.check_state_json, "one-to-one"),
    ("determinism", Moody(), contract.check_deterministic, "run again"),
    ("shard", WrongShard(), contract.check_shard_fields, "two cores"),
    ("class", UnknownShardField(), contract.check_shard_fields, "eth_src"),
    ("class", EmptyRecord(), lambda nf, _p: contract.check_class(type(nf)), "is empty"),
    ("params", ForgetsThreshold(threshold=9), lambda nf, _p: contract.check_params(nf),
     "threshold"),
    ("apply", ApplyTwice(), contract.check_apply_agrees, "apply()"),
    ("state_work", PaysTwice(), lambda nf, p: contract.check_state_work(nf, *p[0]), "paid"),
]


@pytest.mark.parametrize(("rule", "nf", "check", "says"), BROKEN,
                         ids=[f"{r}-{type(nf).__name__}" for r, nf, *_ in BROKEN])
def test_each_contract_check_fails_on_a_broken_nf(rule, nf, check, says, trace):
    packets = trace + random_packets(8, 500)
    with pytest.raises(ContractError) as info:
        check(nf, packets)
    assert info.value.rule == rule
    assert isinstance(info.value, AssertionError)  # pytest reports it as a failed assert
    assert says in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ContractError) as again:  # and check_nf finds it too
        contract.check_nf(nf, packets, shard_packets=trace)
    assert again.value.rule in contract.RULES


def test_contract_errors_name_the_packet(trace):
    with pytest.raises(ContractError) as info:
        contract.check_update_equals_process(HiddenFlags(), trace)
    assert info.value.details["index"] >= 0
    assert str(info.value).startswith(f"update: packet {info.value.details['index']} (TCP ")
    assert contract.describe(pkt(flags=TCP_SYN | TCP_ACK)) == (
        "TCP SYN+ACK 10.0.0.1:40000 -> 10.9.9.9:80")
    assert contract.describe(pkt(proto=PROTO_UDP, flags=0, dport=53)).startswith("UDP ")


def test_check_class_refuses_what_is_not_an_nf():
    with pytest.raises(ContractError, match="not a NetworkFunction"):
        contract.check_class(dict)


# --- the base class: apply, state_work, int_param ----------------------------------------


@pytest.mark.parametrize("name", list(NF_CLASSES))
def test_state_work_is_paid_once_per_transition(name, trace):
    contract.check_state_work(make_nf(name), *trace[0])
    assert nfs.base.spin(1) == spin(1) != 0  # the check put the real spin back


def test_update_and_apply_agree(trace):
    for name in NF_CLASSES:
        contract.check_apply_agrees(make_nf(name), trace)


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (5, 5), (7.0, 7), (2**70, 2**70)])
def test_int_param_accepts(value, expected):
    assert int_param("x", value) == expected


@pytest.mark.parametrize("value", [-1, 1.5, "3", None, True, [1]])
def test_int_param_rejects(value):
    with pytest.raises(ValueError, match="^x must be"):
        int_param("x", value)


def test_int_param_bounds():
    assert int_param("x", 3, minimum=3, maximum=3) == 3
    with pytest.raises(ValueError, match="in 1..2"):
        int_param("x", 3, minimum=1, maximum=2)


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
    assert state == {(ip_to_int("3.3.3.3"),): (3,)}
    assert nf.record_size == 4


def test_ddos_step_and_verdict():
    nf = DDoSMitigator(threshold=2)
    assert nf.step(None, (1,)) == (1,)
    assert nf.step((1,), (1,)) == (2,)
    assert nf.verdict((1,), (2,), (1,)) == PASS
    assert nf.verdict((2,), (3,), (1,)) == DROP
    assert nf.key_to_json((ip_to_int("9.8.7.6"),)) == "9.8.7.6"


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
    assert state == {(src,): (n,) for src, n in sent.items()}


@pytest.mark.parametrize("threshold", [0, -1])
def test_ddos_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        DDoSMitigator(threshold=threshold)


# --- heavy-hitter detector -------------------------------------------------------------------


def run_nf(nf, packets, state=None, ts=0):
    state = nf.new_state() if state is None else state
    return [nf.process(state, packet, ts) for packet in packets], state


FLOW = "10.0.0.1:40000->10.9.9.9:80"


def test_hh_counts_bytes_and_passes_below_threshold():
    nf = HeavyHitterDetector(threshold=100)
    verdicts, state = run_nf(nf, [pkt(flags=TCP_SYN), pkt(), pkt(length=19), pkt(length=1)])
    # 40, 80 pass; 99 passes; 100 is not below the threshold.
    assert verdicts == [PASS, PASS, PASS, DROP]
    assert nf.state_to_json(state) == {FLOW: 100}
    assert state == {(ip_to_int("10.0.0.1"), ip_to_int("10.9.9.9"), 40000, 80): (100,)}


def test_hh_fin_deletes_after_accounting():
    nf = HeavyHitterDetector(threshold=100)
    verdicts, state = run_nf(nf, [pkt(flags=TCP_SYN), pkt(flags=TCP_FIN | TCP_ACK)])
    assert verdicts == [PASS, PASS]
    assert state == {}
    verdicts, state = run_nf(nf, [pkt(flags=TCP_SYN, length=60),
                                  pkt(flags=TCP_FIN | TCP_ACK, length=40)])
    assert verdicts == [PASS, DROP]  # 60 + 40 = 100: the FIN itself counts
    assert state == {}


def test_hh_syn_restarts_and_unknown_flows_are_created():
    nf = HeavyHitterDetector(threshold=100)
    verdicts, state = run_nf(nf, [pkt(length=90), pkt(length=20), pkt(flags=TCP_SYN),
                                  pkt(length=50)])
    assert verdicts == [PASS, DROP, PASS, PASS]  # the SYN starts the flow afresh at 40
    assert nf.state_to_json(state) == {FLOW: 90}


def test_hh_flows_are_four_tuples():
    nf = HeavyHitterDetector(threshold=100)
    packets = [pkt(length=60), pkt(length=60, sport=40001), pkt(length=60, dport=81),
               pkt(length=60, dst="10.9.9.8"), pkt(length=60)]
    verdicts, state = run_nf(nf, packets)
    assert verdicts == [PASS, PASS, PASS, PASS, DROP]
    assert len(state) == 4
    record = nf.record(pkt(flags=TCP_SYN | TCP_FIN | TCP_ACK | 0x100, length=1500), 5)
    assert record == (ip_to_int("10.0.0.1"), ip_to_int("10.9.9.9"), 40000, 80, 1500,
                      TCP_SYN | TCP_FIN)
    assert nf.record_size == 15


def test_hh_over_trace(trace):
    """A flow's packets pass until its bytes reach the threshold; FIN'd flows are gone."""
    nf = HeavyHitterDetector(threshold=2_000)
    state = nf.new_state()
    sent: Counter = Counter()
    for packet, ts in trace:
        flow = (packet.src, packet.dst, packet.sport, packet.dport)
        if packet.tcp_flags & TCP_SYN:
            sent[flow] = 0
        sent[flow] += packet.length
        expected = PASS if sent[flow] < 2_000 else DROP
        assert nf.process(state, packet, ts) == expected
        if packet.tcp_flags & TCP_FIN:
            del sent[flow]
    assert state == {flow: (n,) for flow, n in sent.items()}


# --- token-bucket policer ---------------------------------------------------------------------


SECOND = 10**9


def tb_run(nf, timed_packets, state=None):
    state = nf.new_state() if state is None else state
    return [nf.process(state, packet, ts) for packet, ts in timed_packets], state


def test_tb_burst_then_policed():
    nf = TokenBucketPolicer(rate=1, burst=3)
    verdicts, state = tb_run(nf, [(pkt(), 0)] * 5)
    assert verdicts == [PASS, PASS, PASS, DROP, DROP]
    assert list(state.values()) == [(0, 0)]


def test_tb_refills_in_micro_tokens():
    nf = TokenBucketPolicer(rate=2, burst=1)
    verdicts, state = tb_run(nf, [(pkt(), 0), (pkt(), SECOND // 4), (pkt(), SECOND // 2),
                                  (pkt(), SECOND // 2)])
    # Half a token after 250 ms (dropped, but kept), a whole one at 500 ms.
    assert verdicts == [PASS, DROP, PASS, DROP]
    assert list(state.values()) == [(0, SECOND // 2)]
    nf.process(state, pkt(), SECOND // 2 + 1)  # 2 tokens/s for 1 ns = 0.002 micro-tokens
    assert list(state.values()) == [(0, SECOND // 2 + 1)]  # rounded down to 0


def test_tb_exact_integer_refill():
    nf = TokenBucketPolicer(rate=3, burst=5)
    key = (1, 2, 3, 4)
    # 3/s for 0.5 s = 1.5 tokens, one paid; for 1 us = 3 micro-tokens, not enough to pay.
    assert nf.step((0, 1_000), (*key, 1_000 + SECOND // 2, 0)) == (MICRO // 2, 1_000 + SECOND // 2)
    assert nf.step((0, 0), (*key, 1_000, 0)) == (3, 1_000)
    # 3/s for 333 333 334 ns = 1 000 000.002 micro-tokens: rounded down to exactly one token.
    assert nf.step((0, 0), (*key, 333_333_334, 0)) == (0, 333_333_334)
    assert nf.verdict((0, 0), None, (*key, 333_333_333, 0)) == DROP
    assert nf.verdict((0, 0), None, (*key, 333_333_334, 0)) == PASS


def test_tb_bucket_is_capped_at_burst():
    nf = TokenBucketPolicer(rate=100, burst=2)
    verdicts, _ = tb_run(nf, [(pkt(), 0), (pkt(), 0), (pkt(), 0), (pkt(), 3600 * SECOND),
                              (pkt(), 3600 * SECOND), (pkt(), 3600 * SECOND)])
    assert verdicts == [PASS, PASS, DROP, PASS, PASS, DROP]


def test_tb_syn_refills_and_fin_deletes_after_deciding():
    nf = TokenBucketPolicer(rate=1, burst=2)
    packets = [(pkt(), 0), (pkt(), 0), (pkt(), 0), (pkt(flags=TCP_SYN), 0), (pkt(), 0),
               (pkt(), 0), (pkt(flags=TCP_FIN | TCP_ACK), 0)]
    verdicts, state = tb_run(nf, packets)
    assert verdicts == [PASS, PASS, DROP, PASS, PASS, DROP, DROP]
    assert state == {}
    verdicts, state = tb_run(nf, [(pkt(flags=TCP_FIN | TCP_ACK), 0)])
    assert verdicts == [PASS] and state == {}  # unknown flow: a full bucket, then deleted


def test_tb_time_never_runs_backwards():
    nf = TokenBucketPolicer(rate=1, burst=1)
    verdicts, state = tb_run(nf, [(pkt(), 10 * SECOND), (pkt(), 5 * SECOND),
                                  (pkt(), 10 * SECOND + SECOND // 2), (pkt(), 11 * SECOND)])
    assert verdicts == [PASS, DROP, DROP, PASS]
    assert list(state.values()) == [(0, 11 * SECOND)]


def test_tb_flows_are_independent_and_json():
    nf = TokenBucketPolicer(rate=1, burst=1)
    verdicts, state = tb_run(nf, [(pkt(), 0), (pkt(sport=1), 0), (pkt(), 0)])
    assert verdicts == [PASS, PASS, DROP]
    assert nf.state_to_json(state) == {
        FLOW: {"micro_tokens": 0, "last_ns": 0},
        "10.0.0.1:1->10.9.9.9:80": {"micro_tokens": 0, "last_ns": 0},
    }
    assert nf.record_size == 21


@pytest.mark.parametrize("params", [{"rate": 0}, {"burst": 0}, {"rate": 1.5},
                                    {"burst": 2**64}, {"rate": -1}])
def test_tb_bad_params(params):
    with pytest.raises(ValueError, match="rate|burst"):
        TokenBucketPolicer(**params)


def test_tb_polices_big_flows_of_a_skewed_trace():
    spec = EMULATION_SPEC
    packets = [(parse(frame), i * 500_000) for i, frame in enumerate(make_trace(spec))]
    run = run_reference(TokenBucketPolicer(), packets)
    sent, dropped = Counter(), Counter()
    for (packet, _), verdict in zip(packets, run.verdicts, strict=True):
        sent[packet.src] += 1
        dropped[packet.src] += verdict == DROP
    biggest = [src for src, _ in sent.most_common(3)]
    assert all(dropped[src] > 0 for src in biggest)
    assert sum(1 for src in sent if dropped[src] == 0) > len(sent) // 2  # the tail passes


# --- port knocking ---------------------------------------------------------------------------


def knock_state(state, src="10.0.0.1") -> int:
    return state[(ip_to_int(src),)][0]


def test_knock_in_order_opens():
    nf = PortKnockingFirewall()
    verdicts, state = run_nf(nf, [pkt(dport=100), pkt(dport=101), pkt(dport=102),
                                  pkt(dport=22), pkt(dport=443)])
    assert verdicts == [DROP, DROP, PASS, PASS, PASS]  # the third knock itself passes
    assert nf.state_to_json(state) == {"10.0.0.1": "OPEN"}


def test_knock_steps_through_states():
    nf = PortKnockingFirewall()
    state = nf.new_state()
    seen = []
    for port in (100, 101, 102):
        nf.process(state, pkt(dport=port), 0)
        seen.append(knock_state(state))
    assert seen == [CLOSED_1, CLOSED_2, OPEN]


@pytest.mark.parametrize("order", [(101, 100, 102), (100, 102, 101), (102, 101, 100),
                                   (101, 102, 100)])
def test_knock_out_of_order_does_not_open(order):
    nf = PortKnockingFirewall()
    verdicts, state = run_nf(nf, [pkt(dport=p) for p in [*order, 22, 22]])
    assert verdicts == [DROP] * 5
    assert knock_state(state) != OPEN


@pytest.mark.parametrize("wrong_at", [1, 2])
def test_knock_wrong_port_resets(wrong_at):
    nf = PortKnockingFirewall()
    ports = [100, 101, 102]
    ports.insert(wrong_at, 22)
    verdicts, state = run_nf(nf, [pkt(dport=p) for p in ports])
    assert verdicts == [DROP] * 4
    # The wrong port sent it back to CLOSED_0: the remaining knocks cannot open it ...
    assert knock_state(state) in (CLOSED_0, CLOSED_1)
    # ... but a whole new sequence does.
    verdicts, state = run_nf(nf, [pkt(dport=p) for p in (100, 101, 102)], state)
    assert verdicts == [DROP, DROP, PASS]


def test_knock_repeated_first_knock_resets():
    nf = PortKnockingFirewall()
    verdicts, state = run_nf(nf, [pkt(dport=p) for p in (100, 100, 101, 102)])
    assert verdicts == [DROP] * 4
    assert knock_state(state) == CLOSED_0


def test_knock_fin_closes():
    nf = PortKnockingFirewall()
    opening = [pkt(dport=p) for p in (100, 101, 102)]
    verdicts, state = run_nf(nf, [*opening, pkt(dport=22, flags=TCP_FIN | TCP_ACK),
                                  pkt(dport=22)])
    assert verdicts == [DROP, DROP, PASS, DROP, DROP]  # the FIN itself is dropped
    assert nf.state_to_json(state) == {"10.0.0.1": "CLOSED_0"}
    verdicts, state = run_nf(nf, opening, state)  # and it can knock again
    assert verdicts[-1] == PASS


def test_knock_fin_while_closed_is_just_a_packet():
    nf = PortKnockingFirewall()
    verdicts, state = run_nf(nf, [pkt(dport=100, flags=TCP_FIN), pkt(dport=101),
                                  pkt(dport=102, flags=TCP_FIN | TCP_SYN)])
    assert verdicts == [DROP, DROP, PASS]
    assert knock_state(state) == OPEN


def test_knock_sources_are_independent():
    nf = PortKnockingFirewall()
    a, b = "10.0.0.1", "10.0.0.2"
    packets = [pkt(a, 100), pkt(b, 100), pkt(a, 101), pkt(b, 22), pkt(a, 102), pkt(b, 101)]
    verdicts, state = run_nf(nf, packets)
    assert verdicts == [DROP, DROP, DROP, DROP, PASS, DROP]
    assert nf.state_to_json(state) == {a: "OPEN", b: "CLOSED_0"}


def test_knock_custom_ports():
    nf = make_nf("knock", knocks=[7, 8, 9])
    assert nf.knocks == (7, 8, 9)
    verdicts, _ = run_nf(nf, [pkt(dport=p) for p in (100, 101, 102, 7, 8, 9)])
    assert verdicts == [DROP] * 5 + [PASS]


def test_knock_record_and_update():
    nf = PortKnockingFirewall()
    packet = pkt("10.0.0.3", 100, TCP_FIN | 0x100)
    assert nf.record_size == 7
    assert nf.unpack_record(nf.pack_record(packet, 0)) == (ip_to_int("10.0.0.3"), 100, TCP_FIN)
    state = nf.new_state()
    for port in (100, 101, 102):
        nf.update(state, nf.unpack_record(nf.pack_record(pkt("10.0.0.3", port), 0)))
    assert state == {(ip_to_int("10.0.0.3"),): (OPEN,)}
    nf.update(state, (ip_to_int("10.0.0.3"), 5, TCP_FIN))
    assert state == {(ip_to_int("10.0.0.3"),): (CLOSED_0,)}


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
        assert state[(KNOCK_NET + k,)] == (CLOSED_0,)


@pytest.mark.parametrize(
    "knocks", [(1, 2), (1, 2, 3, 4), (0, 1, 2), (1, 2, 65536), (-5, 1, 2), ("a", "b", "c"), 5]
)
def test_knock_bad_ports(knocks):
    with pytest.raises(ValueError, match="knocks"):
        PortKnockingFirewall(knocks=knocks)


# --- TCP connection tracker ---------------------------------------------------------------


def seg(flags=TCP_ACK, seq=0, data=0, **kw) -> Packet:
    return pkt(flags=flags, seq=seq % 2**32, length=40 + data, **kw)


def ct_run(nf, packets, state=None, ts=0):
    state = nf.new_state() if state is None else state
    verdicts = [nf.process(state, packet, ts) for packet in packets]
    return verdicts, state


def ct_value(state):
    (value,) = state.values()
    return value


def test_conntrack_lifecycle():
    nf = TcpConnectionTracker()
    state = nf.new_state()
    isn = 1_000
    steps = [
        (seg(TCP_SYN, isn, data=10), (SYN_SENT, isn + 11)),
        (seg(TCP_ACK, isn + 11, data=100), (ESTABLISHED, isn + 111)),
        (seg(TCP_ACK | TCP_PSH, isn + 111, data=5), (ESTABLISHED, isn + 116)),
        (seg(TCP_ACK, isn + 116), (ESTABLISHED, isn + 116)),  # a pure ACK
        (seg(TCP_FIN | TCP_ACK, isn + 116, data=4), (FIN_WAIT, isn + 121)),
        (seg(TCP_ACK, isn + 121), (FIN_WAIT, isn + 121)),  # ACKs the peer's FIN
        (seg(TCP_FIN | TCP_ACK, isn + 116, data=4), (FIN_WAIT, isn + 121)),  # retransmitted
    ]
    for i, (packet, (expected_state, expected_next)) in enumerate(steps):
        assert nf.process(state, packet, 10 + i) == PASS, i
        assert ct_value(state) == (expected_state, expected_next, 10 + i), i
    assert nf.state_to_json(state) == {
        "tcp 10.0.0.1:40000<->10.9.9.9:80": {"state": "FIN_WAIT", "next_seq": isn + 121,
                                             "last_ns": 16}}


def test_conntrack_drops_segments_of_unknown_connections():
    nf = TcpConnectionTracker()
    packets = [seg(TCP_ACK, 5), seg(TCP_FIN | TCP_ACK, 5), seg(TCP_RST, 5),
               seg(TCP_SYN | TCP_ACK, 5), seg(0, 5)]
    verdicts, state = ct_run(nf, packets)
    assert verdicts == [DROP] * 5
    assert state == {}


def test_conntrack_window():
    nf = TcpConnectionTracker(window=100)
    verdicts, state = ct_run(nf, [seg(TCP_SYN, 0), seg(TCP_ACK, 1, data=10)])
    assert verdicts == [PASS, PASS] and ct_value(state)[:2] == (ESTABLISHED, 11)
    verdicts, state = ct_run(nf, [seg(TCP_ACK, 11 + 101, data=1), seg(TCP_ACK, 11 - 101),
                                  seg(TCP_ACK, 2**31), seg(TCP_RST, 5_000)], state)
    assert verdicts == [DROP] * 4  # out of window, either way; state untouched
    assert ct_value(state)[:2] == (ESTABLISHED, 11)
    # In window: a retransmission behind next_seq passes and does not move it back; a
    # segment ahead (one was lost) moves it forward.
    verdicts, state = ct_run(nf, [seg(TCP_ACK, 1, data=10), seg(TCP_ACK, 111, data=5)], state)
    assert verdicts == [PASS, PASS]
    assert ct_value(state)[:2] == (ESTABLISHED, 116)


def test_conntrack_sequence_numbers_wrap():
    nf = TcpConnectionTracker(window=100)
    verdicts, state = ct_run(nf, [seg(TCP_SYN, 2**32 - 5), seg(TCP_ACK, 2**32 - 4, data=10),
                                  seg(TCP_ACK, 6, data=10), seg(TCP_ACK, 2**32 - 50)])
    assert verdicts == [PASS, PASS, PASS, PASS]
    assert ct_value(state)[:2] == (ESTABLISHED, 16)


def test_conntrack_rst_closes():
    nf = TcpConnectionTracker()
    verdicts, state = ct_run(nf, [seg(TCP_SYN, 0), seg(TCP_ACK, 1), seg(TCP_RST | TCP_ACK, 1),
                                  seg(TCP_ACK, 1)])
    assert verdicts == [PASS, PASS, PASS, DROP]  # closed: the next ACK is unknown
    assert state == {}


def test_conntrack_invalid_segments_leave_the_state():
    nf = TcpConnectionTracker()
    _, state = ct_run(nf, [seg(TCP_SYN, 0)])
    # SYN_SENT: a SYN with another ISN, a segment without ACK, a SYN+ACK.
    verdicts, state = ct_run(nf, [seg(TCP_SYN, 77), seg(0, 1), seg(TCP_SYN | TCP_ACK, 0)],
                             state)
    assert verdicts == [DROP] * 3 and ct_value(state)[:2] == (SYN_SENT, 1)
    assert ct_run(nf, [seg(TCP_SYN, 0)], state)[0] == [PASS]  # a retransmitted SYN
    _, state = ct_run(nf, [seg(TCP_ACK, 1)], state)
    verdicts, state = ct_run(nf, [seg(TCP_SYN, 1)], state)  # SYN on an open connection
    assert verdicts == [DROP] and ct_value(state)[:2] == (ESTABLISHED, 1)
    _, state = ct_run(nf, [seg(TCP_FIN | TCP_ACK, 1)], state)
    verdicts, state = ct_run(nf, [seg(TCP_ACK, 2, data=1), seg(TCP_ACK, 1, data=1),
                                  seg(TCP_ACK, 1)], state)
    assert verdicts == [DROP] * 3  # data after the FIN; an ACK not at the FIN's end
    assert ct_value(state)[:2] == (FIN_WAIT, 2)
    verdicts, state = ct_run(nf, [seg(TCP_SYN, 500)], state)  # the 4-tuple reused
    assert verdicts == [PASS] and ct_value(state)[:2] == (SYN_SENT, 501)


def test_conntrack_idle_timeout():
    nf = TcpConnectionTracker(timeout_ns=1_000)
    state = nf.new_state()
    assert nf.process(state, seg(TCP_SYN, 0), 0) == PASS
    assert nf.process(state, seg(TCP_ACK, 1), 1_000) == PASS  # idle exactly the timeout
    assert nf.process(state, seg(TCP_ACK, 1), 2_001) == DROP  # idle longer: expired
    assert state == {}
    assert nf.process(state, seg(TCP_SYN, 9), 2_002) == PASS  # a new SYN opens it again
    assert nf.process(state, seg(TCP_SYN, 30), 9_999) == PASS  # expired SYN_SENT: reopened
    assert ct_value(state) == (SYN_SENT, 31, 9_999)


def test_conntrack_key_is_canonical_and_udp_is_untracked():
    nf = TcpConnectionTracker()
    forward = nf.record(seg(TCP_SYN, 0, src="10.0.0.2", dst="10.0.0.1", sport=1, dport=2), 0)
    backward = nf.record(seg(TCP_ACK, 0, src="10.0.0.1", dst="10.0.0.2", sport=2, dport=1), 0)
    assert nf.key(forward) == nf.key(backward) == (ip_to_int("10.0.0.1"), ip_to_int("10.0.0.2"),
                                                   2, 1, PROTO_TCP)
    same_host = nf.record(seg(src="10.0.0.1", dst="10.0.0.1", sport=9, dport=3), 0)
    assert nf.key(same_host)[2:4] == (3, 9)
    assert nf.record_size == 32
    verdicts, state = ct_run(nf, [pkt(proto=PROTO_UDP, flags=0), pkt(proto=PROTO_UDP)])
    assert verdicts == [PASS, PASS] and state == {}


@pytest.mark.parametrize("params", [{"window": 0}, {"window": 2**31}, {"timeout_ns": 0}])
def test_conntrack_bad_params(params):
    with pytest.raises(ValueError, match="window|timeout_ns"):
        TcpConnectionTracker(**params)


def test_conntrack_over_trace_drops_exactly_the_bad_segments():
    spec = TraceSpec(packets=3_000, flows=30, skew=1.0, bad_seq_share=0.05, seed=4)
    parsed = [parse(frame) for frame in make_trace(spec)]
    by_conn: dict[tuple, list[int]] = {}
    for i, p in enumerate(parsed):
        by_conn.setdefault((p.src, p.dport), []).append(i)
    middle = sum(max(0, len(ids) - 2) for ids in by_conn.values())
    nf = TcpConnectionTracker()
    run = run_reference(nf, [(p, i * 500_000) for i, p in enumerate(parsed)])
    assert run.verdicts.count(DROP) == int(middle * spec.bad_seq_share) > 0
    clean = run_reference(nf, [(parse(f), i) for i, f in
                               enumerate(make_trace(TraceSpec(**{**spec.to_json(),
                                                                 "bad_seq_share": 0})))])
    assert set(clean.verdicts) == {PASS}


# --- make_nf and the base class -----------------------------------------------------------


@pytest.mark.parametrize("name", ["", "DDoS", "nat", "knocking"])
def test_make_nf_unknown_name(name):
    with pytest.raises(ValueError, match="unknown NF") as info:
        make_nf(name)
    for known in NF_CLASSES:
        assert known in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [("ddos", {"threshold": 0}), ("ddos", {"work": -1}), ("knock", {"work": -3}),
     ("knock", {"knocks": (1, 2)}), ("hh", {"threshold": 0}), ("hh", {"state_work": -1}),
     ("tb", {"rate": 0}), ("tb", {"work": "lots"}), ("conntrack", {"window": -1}),
     ("conntrack", {"state_work": 0.5})],
)
def test_make_nf_bad_params(name, params):
    with pytest.raises(ValueError) as info:
        make_nf(name, **params)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", list(NF_CLASSES))
def test_make_nf_unknown_param(name):
    with pytest.raises(ValueError, match="bad parameters"):
        make_nf(name, no_such_parameter=1)


def test_make_nf_builds_configured_instances():
    nf = make_nf("ddos", threshold=7, work=11)
    assert isinstance(nf, DDoSMitigator)
    assert (nf.threshold, nf.work, nf.state_work) == (7, 11, 0)
    assert nf.params() == {"work": 11, "state_work": 0, "threshold": 7}
    knock = make_nf("knock")
    assert isinstance(knock, PortKnockingFirewall)
    assert knock.params() == {"work": 0, "state_work": 0, "knocks": [100, 101, 102]}
    assert make_nf("hh").params() == {"work": 0, "state_work": 0, "threshold": 2_000}
    assert make_nf("tb", state_work=4).params() == {"work": 0, "state_work": 4, "rate": 100,
                                                    "burst": 20}
    assert make_nf("conntrack").params() == {"work": 0, "state_work": 0, "window": 65_535,
                                             "timeout_ns": 120 * 10**9}


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
