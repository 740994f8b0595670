"""Lab 2's definition and checks: RSS sharding (``sharding.py``) and its ceiling under skew.

Part (a): the student chooses the fields the switch hashes (``shard_fields``) for a
heavy-hitter detector keyed by host pair. Part (b): ``answers.toml`` predicts shard's
ceiling from the hottest key's share, and the check measures it.

Checks, in order:

1. offline: the hash fields keep every key on one core and spread keys as finely as the key
   allows. For each field the switch can hash, two packets that differ only in it tell
   whether the NF's key depends on it: a hashed field the key does not depend on splits
   keys (the message shows such a key in the lab's trace when there is one), a key field
   left out makes the hash coarser than the key;
2. live: a ``shard`` trial on 4 cores with the student's NF is strictly equivalent to one
   core in sequence; if not, the message names a pair found in several cores' shards;
3. offline: the answers from the formula (the Zipf share of the hottest key, the ceiling
   ``min(N, 1/p1)`` in units of one core's capacity);
4. live: shard's capacity on 1 and on 4 cores at skew 2 (:func:`measure_ceiling`, also run
   by ``make measure``), compared with the student's measured hot-core share, measured ratio
   and predicted ceiling.

Caveats: the live measurement uses the package's ``hh`` NF on ``make run``'s trace, not the
student's NF: the ceiling depends on the skew and the switch's hash, not on part (a), and
the hot-core share the student reads with ``counters`` in ``make run`` is then the same
number the check measures. The measurement is noisy (a core's capacity varies 10-20 %
between runs on a 2-CPU machine): a comparison that fails is measured once more, unless
the student's measured ratio is off by more than twice the tolerance (a wrong answer).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from controller.dispatch import SHARD_FIELDS
from experiments.analysis.collect import read_result
from experiments.runtime.cpu_quota import DEFAULT_CORE_SHARE
from experiments.workload.traffic import TraceSpec, flow_shares, make_trace
from labs.kit import Check, Grade, Lab, RunSpec
from labs.kit.checks import write_trace
from labs.kit.grading import first_problem
from nfs import make_nf
from sequencer.wire.packet import (
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    Packet,
    int_to_ip,
    ip_to_int,
    parse,
)

NF_NAME = "lab2-pairs"
CORES = 4

# Part (a): background flows and 8 clients that knock on 3 ports, then talk to port 22: a
# knocking client opens 4 connections to the server, i.e. one host pair, 4 port pairs.
PAIRS_TRACE = TraceSpec(packets=600, flows=40, skew=1.0, knockers=4, attackers=4, seed=2)

# Part (b): make run's trace, and the one the ceiling is measured on. One client per flow,
# no attackers nor knockers, so the hottest key's share is the Zipf share of flow 1.
FLOWS = 200
HIGH_SKEW = 2.0
SKEW_TRACE = TraceSpec(packets=3000, flows=FLOWS, skew=HIGH_SKEW, attackers=0, knockers=0)
SKEW_NF = "hh"  # the package's heavy hitter: its 4-tuple key is one key per client here
#: The ceiling trials offer this many times what one core could carry if the NF's work were
#: all it did (about 3 x its real capacity): one core, and the hot one of four, saturate.
OVERLOAD = 2.0
RUN_RATE = 600  # make run's default: the hot core of 4 gets ~400 pps, under its capacity

SHARE_TOLERANCE = 0.02  # absolute, on the answers' shares (a trace's count is within it)
CEILING_TOLERANCE = 0.05  # relative, on the ceilings from the formula
HOT_TOLERANCE = 0.01  # absolute, on the hot core's share read with `counters` (exact: the
# hash is deterministic, so make run and the check put the same packets on the same cores)
#: Relative, between a measured ratio and the student's measured ratio or prediction. The
#: check's measured ratio spread over 1.50-1.74, mean 1.61 (prediction 1.64), in 16
#: measurements on the 2-CPU development VM (see the README): a core's capacity drifts
#: between runs, more on a busy machine; 20 % leaves room for that (twice the worst
#: deviation seen) and still tells 1.64 from 1 or from 2.47 (the ceiling at skew 1.5).
RATIO_TOLERANCE = 0.20

ANSWER_HINTS = {
    "top_share_skew0": "the hottest key's share of the packets at skew 0, from "
                       f"flow_shares({FLOWS}, 0)",
    "top_share_skew2": "the hottest key's share at skew 2, from "
                       f"flow_shares({FLOWS}, 2)",
    "ceiling_skew0": f"shard's MLFFR on {CORES} cores at skew 0, as a multiple of one core's",
    "ceiling_skew2": f"shard's MLFFR on {CORES} cores at skew 2, as a multiple of one core's",
    "hot_core_share": "the busiest core's share of the packets in make run (counters)",
    "measured_ratio": "what make measure prints: shard's capacity on 4 cores / on 1 core",
}


# -- part (a): which fields the key depends on ---------------------------------------------

_BASE = Packet(src=ip_to_int("198.18.0.7"), dst=ip_to_int("198.19.255.1"), proto=PROTO_TCP,
               sport=1031, dport=80, tcp_flags=TCP_ACK, length=50, tcp_seq=1000, tcp_ack=0,
               trace_id=0)
_UDP = _BASE._replace(proto=PROTO_UDP, tcp_flags=0)

#: For each field the switch can hash, two packets that differ in it and in nothing else
#: the NF can see (the NF never sees the MAC addresses: a Packet has none).
_DIFFER_IN = {
    "eth_src": (_BASE, _BASE),
    "eth_dst": (_BASE, _BASE),
    "nw_proto": (_BASE, _UDP),
    "ip_src": (_BASE, _BASE._replace(src=_BASE.src + 1)),
    "ip_dst": (_BASE, _BASE._replace(dst=_BASE.dst + 1)),
    "tcp_src": (_BASE, _BASE._replace(sport=2047)),
    "tcp_dst": (_BASE, _BASE._replace(dport=22)),
    "udp_src": (_UDP, _UDP._replace(sport=2047)),
    "udp_dst": (_UDP, _UDP._replace(dport=53)),
}
assert set(_DIFFER_IN) == set(SHARD_FIELDS), "a hashable field has no test packets"

#: How each field reads in a parsed packet, as the switch sees it (None: not in it).
_FIELD_OF = {
    "nw_proto": lambda p: p.proto,
    "ip_src": lambda p: int_to_ip(p.src),
    "ip_dst": lambda p: int_to_ip(p.dst),
    "tcp_src": lambda p: p.sport if p.proto == PROTO_TCP else None,
    "tcp_dst": lambda p: p.dport if p.proto == PROTO_TCP else None,
    "udp_src": lambda p: p.sport if p.proto == PROTO_UDP else None,
    "udp_dst": lambda p: p.dport if p.proto == PROTO_UDP else None,
}


#: Why a field outside the key can differ between packets of one key (when the lab's trace
#: has no example of it).
_WHY_OUTSIDE = {
    "eth_src": "the NF never sees MAC addresses; a pair's packets that come through two "
               "routers differ in eth_src",
    "eth_dst": "the NF never sees MAC addresses; a pair's packets sent to two gateways "
               "differ in eth_dst",
    "nw_proto": "a TCP and a UDP packet between the same two hosts do",
    "tcp_src": "each connection of a pair has its own source port",
    "tcp_dst": "a client's connections to two services have different destination ports",
    "udp_src": "a pair's UDP packets from two sockets have different source ports",
    "udp_dst": "a pair's UDP packets to two services have different destination ports",
}


def key_fields(nf) -> list[str]:
    """The hashable fields that ``nf``'s key depends on, in the switch's order."""
    def key(pkt):
        return nf.key(nf.record(pkt, 0))
    return [f for f in SHARD_FIELDS if key(_DIFFER_IN[f][0]) != key(_DIFFER_IN[f][1])]


def split_example(nf, field: str, frames: list[bytes]) -> str | None:
    """A key of ``frames`` whose packets differ in ``field``, in words (None)."""
    read = _FIELD_OF.get(field)
    if read is None:
        return None
    values: dict[tuple, dict] = defaultdict(dict)  # key -> value -> None, in order seen
    for frame in frames:
        pkt = parse(frame)
        values[nf.key(nf.record(pkt, 0))][read(pkt)] = None
    split = [(key, list(vals)) for key, vals in values.items() if len(vals) > 1]
    if not split:
        return None
    key, vals = split[0]
    shown = ", ".join(map(str, vals[:3])) + (" ..." if len(vals) > 3 else "")
    return (f"in the lab's trace, {len(split)} pair(s) do: {nf.key_to_json(key)} sends "
            f"packets with {field} {shown}")


def where_declared(g: Grade) -> str:
    """``"sharding.py, line N: "`` where the student's file sets shard_fields ('' if not)."""
    lines = g.path().read_text().splitlines()
    found = [i for i, line in enumerate(lines, 1) if line.strip().startswith("shard_fields")]
    return f"{g.path().name}, line {found[0]}: " if found else ""


def check_fields(g: Grade) -> None:
    nf = make_nf(NF_NAME)
    chosen = nf.shard_fields
    if isinstance(chosen, tuple | list) and not chosen:
        g.fail(f"{where_declared(g)}TODO 1: shard_fields is empty: name the packet fields "
               "the switch must hash so that every packet of a host pair lands on one core")
    if isinstance(chosen, str) or not isinstance(chosen, tuple | list):
        g.fail(f"{where_declared(g)}shard_fields must be a tuple of field names, like "
               f"(\"ip_src\",), not {chosen!r}")
    for field in chosen:
        if field not in SHARD_FIELDS:
            g.fail(f"shard_fields names {field!r}, which the switch cannot hash: choose "
                   f"among {', '.join(SHARD_FIELDS)}")
    if len(set(chosen)) != len(chosen):
        g.fail(f"shard_fields {tuple(chosen)} names a field twice")
    key = key_fields(nf)
    key_words = f"({', '.join(key)})"
    outside = [f for f in chosen if f not in key]
    if outside:
        frames = make_trace(PAIRS_TRACE)
        examples = [e for e in (split_example(nf, f, frames) for f in outside) if e]
        example = examples[0] if examples else _WHY_OUTSIDE.get(outside[0], "")
        them = "it" if len(outside) == 1 else "them"
        g.fail(f"shard_fields hashes {' and '.join(outside)}, not part of the key "
               f"{key_words}: packets of one key can differ in {them} ({example}), so "
               "the switch can send one key to several cores, each counting part of its "
               "bytes. Hash only fields that every packet of a key shares")
    missing = [f for f in key if f not in chosen]
    if missing:
        pkts = [parse(frame) for frame in make_trace(PAIRS_TRACE)]
        keys = {nf.key(nf.record(p, 0)) for p in pkts}
        hashed = {tuple(_FIELD_OF[f](p) for f in chosen) for p in pkts}
        if len(hashed) < len(keys):
            seen = (f"the lab's trace has {len(keys)} pairs but only {len(hashed)} "
                    "distinct hash input(s)")
        else:  # e.g. ip_src alone, and every client of the trace talks to one server
            seen = ("harmless in the lab's trace, but a client talking to many servers "
                    "would load one core")
        g.fail(f"shard_fields {tuple(chosen)} keeps each key on one core (correct), but "
               f"leaves out {' and '.join(missing)}: pairs that differ only in "
               f"{' and '.join(missing)} always share a core, so the load spreads less "
               f"than it could ({seen}). Hash every field of the key {key_words}, and "
               "only those")
    g.info(f"shard_fields {tuple(chosen)}: exactly the key's fields")


def split_keys(folder: Path, cores: int) -> dict[str, list[int]]:
    """The keys found in more than one core's shard after a trial: key -> cores."""
    where: dict[str, list[int]] = defaultdict(list)
    for core in range(cores):
        for key in read_result(folder / f"core{core}.json")["state"]:
            where[key].append(core)
    return {key: found for key, found in where.items() if len(found) > 1}


def check_live_pairs(g: Grade) -> None:
    trace = write_trace(g, make_trace(PAIRS_TRACE), "pairs-trace")
    config = g.config(calibrated=False, nf=NF_NAME, strategy="shard", cores=CORES,
                      rate_pps=300)
    label = f"pairs-{CORES}cores"
    result = g.trial(trace, config, label)
    fields = tuple(make_nf(NF_NAME).shard_fields)
    if not result["check_equivalent"]:
        split = split_keys(g.last_trial_dir, CORES)
        if split:
            key, found = next(iter(split.items()))
            g.fail(f"live on {CORES} cores, sharding by {fields}: {len(split)} pair(s) ended "
                   f"up in several cores' shards, e.g. {key} in cores "
                   f"{', '.join(map(str, found))}: the switch's hash sent one pair's packets "
                   "to different cores, each counting part of its bytes (the oracle: "
                   f"{first_problem(result)})")
        g.fail(f"live on {CORES} cores, sharding by {fields} is not equivalent to one core "
               f"in sequence: {first_problem(result)}")
    g.info(f"live, {CORES} cores: equivalent; packets per core {result['per_core']}")


# -- part (b): the ceiling -------------------------------------------------------------------

def top_share(skew: float) -> float:
    return flow_shares(FLOWS, skew)[0]


def ceiling(skew: float, cores: int = CORES) -> float:
    """Shard's MLFFR bound on ``cores`` cores, in units of one core's capacity."""
    return min(cores, 1 / top_share(skew))


def check_formula_answers(g: Grade) -> None:
    for skew, name in ((0.0, "top_share_skew0"), (HIGH_SKEW, "top_share_skew2")):
        want, got = top_share(skew), g.answer(name, float, ANSWER_HINTS[name])
        if abs(got - want) > SHARE_TOLERANCE:
            g.fail(f"answers.toml: {name} = {got:g}, but the hottest of {FLOWS} keys at skew "
                   f"{skew:g} has {want:.4f} of the packets (flow_shares({FLOWS}, {skew:g})"
                   f"[0]; tolerance {SHARE_TOLERANCE})")
    for skew, name in ((0.0, "ceiling_skew0"), (HIGH_SKEW, "ceiling_skew2")):
        want, got = ceiling(skew), g.answer(name, float, ANSWER_HINTS[name])
        if abs(got / want - 1) <= CEILING_TOLERANCE:
            continue
        p1 = top_share(skew)
        if got > CORES * (1 + CEILING_TOLERANCE):
            why = (f"{CORES} cores carry at most {CORES} x one core, whatever the skew: "
                   "the ceiling is min(N, 1/p1)")
        elif abs(got / CORES - 1) <= CEILING_TOLERANCE:
            why = (f"that is {CORES} cores without skew, but the hottest key sends "
                   f"p1 = {p1:.3f} of the packets to one core, which carries at most one "
                   "core's capacity C1: the total is at most C1/p1")
        else:
            why = (f"the hottest key's core saturates when the offered rate reaches C1/p1, "
                   f"with p1 = {p1:.3f}; the ceiling is min(N, 1/p1) in units of C1")
        g.fail(f"answers.toml: {name} = {got:g}, not {want:.2f}: {why} (tolerance "
               f"{CEILING_TOLERANCE:.0%})")
    g.info(f"skew 0: at most {ceiling(0.0):.2f} x one core; skew {HIGH_SKEW:g}: at most "
           f"{ceiling(HIGH_SKEW):.2f} x")


@dataclass
class ConfigCapacity:
    """One overloaded trial: each core's share of the packets and its rate (pps)."""

    cores: int
    offered_pps: float
    shares: list[float]
    rates: list[float]
    dropped: list[int]

    @property
    def hot(self) -> int:
        return max(range(self.cores), key=lambda i: self.shares[i])

    @property
    def pps(self) -> float:
        """The offered rate at which the first core saturates: a core that processes
        ``rate`` pps at most and gets ``share`` of the packets saturates at rate/share."""
        return min(r / s for r, s in zip(self.rates, self.shares, strict=True) if r and s)


@dataclass
class Measurement:
    one: ConfigCapacity
    many: ConfigCapacity

    @property
    def ratio(self) -> float:
        return self.many.pps / self.one.pps

    @property
    def hot_share(self) -> float:
        return self.many.shares[self.many.hot]

    def lines(self) -> list[str]:
        many = self.many
        return [
            f"1 core: carries {self.one.pps:.0f} pps (offered {self.one.offered_pps:.0f}, "
            f"{self.one.dropped[0]} dropped)",
            f"{many.cores} cores: shares of the packets "
            f"{', '.join(f'{s:.3f}' for s in many.shares)}; the busiest, core {many.hot}, "
            f"processes {many.rates[many.hot]:.0f} pps and saturates at "
            f"{many.rates[many.hot]:.0f} / {self.hot_share:.3f} = {many.pps:.0f} pps offered",
            f"ratio: {many.pps:.0f} / {self.one.pps:.0f} = {self.ratio:.2f} x one core",
        ]


def overload_trial(g: Grade, trace: Path, cores: int, rate: float) -> ConfigCapacity:
    config = g.config(calibrated=True, nf=SKEW_NF, strategy="shard", cores=cores,
                      rate_pps=rate)
    label = f"skew-{cores}cores"
    result = g.trial(trace, config, label)
    folder = g.last_trial_dir
    stats = [read_result(folder / f"core{i}.json") for i in range(cores)]
    shares, rates, dropped = [], [], []
    for core in stats:
        processed, drops = core["stats"].get("processed", 0), core.get("rx_dropped", 0)
        span_s = (core["last_ns"] - core["first_ns"]) / 1e9 if processed > 1 else 0.0
        shares.append((processed + drops) / result["sent"])
        rates.append(processed / span_s if span_s > 0 else 0.0)
        dropped.append(drops)
    found = ConfigCapacity(cores, result["offered_pps"], shares, rates, dropped)
    if not dropped[found.hot]:
        g.fail(f"the grader's overload trial on {cores} core(s) at {rate:.0f} pps dropped "
               "nothing at the busiest core, so it did not measure its capacity: this "
               "machine's cores are faster than the lab expects; please report it")
    return found


def measure_ceiling(g: Grade) -> Measurement:
    """Shard's capacity on 1 and on CORES cores on make run's trace at skew 2: one trial
    each, offered more than one core carries (the same rate for both)."""
    trace = write_trace(g, make_trace(SKEW_TRACE), "skew-trace")
    rate = round(OVERLOAD * DEFAULT_CORE_SHARE / (g.costs().work_us * 1e-6))
    return Measurement(overload_trial(g, trace, 1, rate), overload_trial(g, trace, CORES, rate))


def check_measured(g: Grade) -> None:
    hot = g.answer("hot_core_share", float, ANSWER_HINTS["hot_core_share"])
    measured = g.answer("measured_ratio", float, ANSWER_HINTS["measured_ratio"])
    predicted = g.answer("ceiling_skew2", float, ANSWER_HINTS["ceiling_skew2"])
    for attempt in (1, 2):  # a core's capacity drifts: one more measurement before failing
        m = measure_ceiling(g)
        for line in m.lines():
            g.info(line)
        if abs(hot - m.hot_share) > HOT_TOLERANCE:
            g.fail(f"answers.toml: hot_core_share = {hot:g}, but the busiest core got "
                   f"{m.hot_share:.3f} of the packets on make run's trace (tolerance "
                   f"{HOT_TOLERANCE}): in make run, `send` at the default rate (no loss), "
                   "then `counters`: the largest 'processed' over their sum")
        off_measured = abs(measured / m.ratio - 1)
        off_predicted = abs(predicted / m.ratio - 1)
        if off_measured <= RATIO_TOLERANCE and off_predicted <= RATIO_TOLERANCE:
            g.info(f"your prediction {predicted:g} and measurement {measured:g} agree with "
                   f"the check's {m.ratio:.2f} (tolerance {RATIO_TOLERANCE:.0%}); "
                   f"1/hot share = {1 / m.hot_share:.2f}")
            return
        if off_measured > RATIO_TOLERANCE:
            problem = (f"answers.toml: measured_ratio = {measured:g}, but the check "
                       f"measured {m.ratio:.2f} (tolerance {RATIO_TOLERANCE:.0%}): run "
                       "make measure and copy the ratio on its last line")
        else:  # the prediction passed check 3: the measurement is what disagrees
            problem = (f"the check measured {m.ratio:.2f} x one core, more than "
                       f"{RATIO_TOLERANCE:.0%} from your ceiling_skew2 = {predicted:g} "
                       "(which follows the formula): the machine may be too busy to "
                       "measure; run make measure again, and tell your teacher if the two "
                       "keep disagreeing")
        # A measured_ratio far off is a wrong answer, not noise: no second measurement.
        if attempt == 2 or off_measured > 2 * RATIO_TOLERANCE:
            g.fail(problem)
        g.info(f"{problem}; measuring again (a core's capacity drifts between runs)")


LAB = Lab(
    measure=lambda g: measure_ceiling(g).lines(),
    number=2, title="Sharding under skew: RSS hash fields and the hot core's ceiling",
    files=("sharding.py",),
    checks=(
        Check("shard_fields keep every host pair on one core, spread as finely as the key "
              "(TODO 1)", check_fields),
        Check(f"live on {CORES} cores: the shards together equal one core in sequence",
              check_live_pairs, live=True),
        Check("answers: the hottest key's share and shard's ceiling, from the formula",
              check_formula_answers),
        Check(f"live at skew {HIGH_SKEW:g}: shard's capacity on {CORES} cores vs 1 core, "
              "against your answers", check_measured, live=True),
    ),
    run=RunSpec(nf=SKEW_NF, strategy="shard", cores=CORES, rate_pps=RUN_RATE,
                packets=SKEW_TRACE.packets, flows=SKEW_TRACE.flows, skew=SKEW_TRACE.skew,
                trace={"attackers": 0, "knockers": 0}, calibrated=True),
)
