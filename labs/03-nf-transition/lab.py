"""Lab 3's definition and checks: a SYN-flood detector written as a per-key transition
(``syn_flood.py``).

Checks, in order:

1. the NF contract, by the very checks the package's own NFs get (``nfs.contract``, which
   ``tests/unit/nfs/test_nfs.py`` runs on every NF): on this lab's flood trace and on
   hostile random packets; each ``ContractError`` is said again in the student's terms
   (which TODO, which rule, why the testbed needs it). The checks run in the order the
   TODOs are numbered, so the first failure is the first unfinished TODO;
2. the detector's semantics on hand-built packet sequences (``sequencer.wire.packet.build``
   with TCP flags), each packet with its expected verdict and the victim's expected count;
   a failure is one sentence about one packet;
3. live, ``scr`` on 4 cores with the flood trace: every replica must equal one core that
   processed the packets in sequence (the testbed's oracle, strict);
4. live, ``shard`` on 4 cores: the switch hashes the student's ``shard_fields``, and the
   union of the shards must equal the sequential run.

The flood trace (:func:`flood_frames`, 502 packets, addresses in 198.18.0.0/15): 60
legitimate connections from 198.18.0.0/24 to five servers (a SYN, 1-4 ACKs, a FIN+ACK or now
and then a RST), ten UDP packets, and three SYN floods from spoofed sources in 198.19.0.0/16
towards the victims 198.18.1.1-3, each in its own window of the trace.
``make run`` replays the same flood trace (``RunSpec.frames``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.analysis.offline import ts_of
from labs.kit import Check, Grade, Lab, LabFailure, RunSpec
from labs.kit.checks import check_live_equivalent
from nfs import contract, make_nf
from nfs.base import DROP, PASS, VERDICT_NAMES
from nfs.contract import ContractError
from sequencer.wire.packet import (
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    build,
    ip_to_int,
    parse,
)

NF_NAME = "synflood"
THRESHOLD = 8  # the live trials' threshold: the three victims trip it, the quiet servers not
RATE_PPS = 300

# --- the flood trace ----------------------------------------------------------------------

VICTIMS = tuple(ip_to_int(f"198.18.1.{k}") for k in (1, 2, 3))
QUIET = tuple(ip_to_int(f"198.18.1.{k}") for k in (10, 11))
CLIENT_NET = ip_to_int("198.18.0.0")
SPOOF_NET = ip_to_int("198.19.0.0")
FLOODS = (100, 70, 40)  # spoofed SYNs towards each victim


def flood_frames(seed: int = 3, connections: int = 60, floods=FLOODS, udp: int = 10
                 ) -> list[bytes]:
    """The lab's trace: legitimate connections, a few UDP packets and SYN floods (see the
    module docstring), in a seeded order that keeps each connection's packets in order."""
    rng = random.Random(seed)
    servers = VICTIMS + QUIET
    streams = []  # one per connection: (src, dst, sport, flags, seq), in order
    for c in range(connections):
        src, dst, sport = CLIENT_NET + 1 + c, rng.choice(servers), 1024 + c
        isn = rng.getrandbits(32)
        conn = [(src, dst, sport, TCP_SYN, isn)]
        seq = isn + 1
        for _ in range(rng.randint(1, 4)):
            conn.append((src, dst, sport, TCP_ACK, seq))
            seq += 10
        conn.append((src, dst, sport, TCP_RST if rng.random() < 0.15 else TCP_FIN | TCP_ACK,
                     seq))
        streams.append(conn)
    events = []
    while streams:  # interleave the connections, each in its own order
        i = rng.choices(range(len(streams)), weights=[len(s) for s in streams])[0]
        events.append(streams[i].pop(0))
        if not streams[i]:
            streams.pop(i)
    for k in range(udp):  # flags None: UDP
        events.insert(rng.randrange(len(events) + 1),
                      (CLIENT_NET + 200 + k, rng.choice(servers), 5353, None, 0))
    for victim, count in zip(VICTIMS, floods, strict=True):  # each flood in its own window
        start = rng.randrange(0, len(events) // 2)
        end = min(len(events), start + len(events) // 2 + count)
        positions = sorted(rng.randrange(start, end + 1) for _ in range(count))
        for offset, position in enumerate(positions):
            events.insert(position + offset, (SPOOF_NET + rng.getrandbits(16), victim,
                                              rng.randrange(1024, 65536), TCP_SYN,
                                              rng.getrandbits(32)))
    frames = []
    for i, (src, dst, sport, flags, seq) in enumerate(events):
        if flags is None:
            frames.append(build(src=src, dst=dst, proto=PROTO_UDP, sport=sport, dport=53,
                                trace_id=i))
        else:
            frames.append(build(src=src, dst=dst, proto=PROTO_TCP, sport=sport, dport=80,
                                trace_id=i, size=64, tcp_flags=flags, tcp_seq=seq % 2**32))
    return frames


def flood_packets() -> list[tuple]:
    """The flood trace as ``(packet, timestamp)`` pairs, stamped as the sequencer would."""
    return [(parse(frame), ts_of(i)) for i, frame in enumerate(flood_frames())]


# --- 1. the NF contract, in the student's terms --------------------------------------------

#: Per rule of ``nfs.contract.RULES``: which TODO it concerns and why the testbed needs it.
HINTS = {
    "record": "record() (TODO 1) must return a tuple of integers that record_format packs "
              "unchanged: the sequencer ships it to the other cores in those bytes",
    "integers": "the NF computes with integers only (TODOs 1-3): four replicas must compute "
                "the same bits",
    "update": "step() (TODO 3) must use nothing but its `value` and `fields`: a replica "
              "replays it with the record of a packet another core processed",
    "verdict": "verdict() (TODO 4) returns PASS or DROP",
    "apply": "apply() must be step() (do not override it)",
    "packing": "the lock strategy keeps keys and values in fixed-size slots: key() (TODO 2) "
               "gives (destination IP,), step() (TODO 3) (count,) with 0 <= count < 2**32, "
               "or None",
    "json": "key_to_json()/value_to_json() (TODO 5) give one string per key and JSON data: "
            "replicas are compared by them",
    "determinism": "keep every count in the state dict, never on self, and use no clocks or "
                   "randomness: replicas on other cores must decide the same",
    "shard": "shard_fields (TODO 6) must cover the key: with `shard` the switch hashes them "
             "to pick a core, and each victim's packets must all reach one core",
    "class": "the class must declare name, three non-empty struct formats and shard_fields",
    "params": "a trial's workers rebuild your NF from params(): it must hold every "
              "constructor argument",
    "state_work": "apply(), process() and update() pay state_work once per transition (do "
                  "not override them)",
}


def student_terms(err: ContractError, nf) -> str:
    """One line: the contract's finding, with the TODO and the reason in front."""
    if err.rule == "class" and err.details.get("attribute") == "record_format":
        return (f"TODO 1: record_format must be a struct.Struct of the fields record() "
                f"returns ({err.message})")
    if err.rule == "record" and nf.record_format.size == 0:
        return ("TODO 1: record_format is still empty: declare the layout of the tuple "
                f"record() returns, one letter per field (your record: "
                f"{err.details.get('fields')!r})")
    if err.rule == "class" and err.details.get("attribute") == "shard_fields":
        return (f"TODO 6: shard_fields is {type(nf).shard_fields!r}: {HINTS['shard']}; name "
                f"the fields among {', '.join(contract.SHARD_FIELDS)} ({err.message})")
    return f"NF contract, rule '{err.rule}': {HINTS.get(err.rule, '')}. {err.message}"


def check_contract(g: Grade) -> None:
    nf = make_nf(NF_NAME, threshold=3)  # low: the random packets cross it too
    packets = flood_packets() + contract.random_packets(11, 600)
    try:  # nfs.contract's checks (check_nf's order), the first ones TODO by TODO
        contract.check_records(nf, packets)  # TODO 1
        contract.check_packing(nf, packets)  # TODOs 2-4: key, step, verdict
        verdicts = contract.check_update_equals_process(nf, packets)
        contract.check_apply_agrees(nf, packets)
        contract.check_state_json(nf, packets)  # TODO 5
        contract.check_params(nf)
        contract.check_deterministic(nf, packets)
        contract.check_shard_fields(nf, flood_packets())  # TODO 6 (and the whole class)
        contract.check_state_work(nf, *packets[0])
    except ContractError as err:
        g.fail(student_terms(err, nf))
    g.info(f"{len(packets)} packets: update(record) = process, keys and values pack, JSON "
           f"canonical, deterministic, shard_fields {type(nf).shard_fields} cover the key "
           f"({verdicts.count(DROP)} dropped)")


# --- 2. the semantics, on hand-built sequences ------------------------------------------------

V, W = "198.18.0.9", "198.18.0.10"  # two victims


@dataclass(frozen=True)
class Step:
    """A packet to ``dst`` and what must happen: its verdict, then ``dst``'s count."""

    flags: int | None  # TCP flags; None: a UDP packet
    dst: str
    verdict: int
    count: int
    src: str = ""  # default: a new client each time


SCENARIOS = [  # (what it shows, threshold, steps)
    ("SYNs count up and trip the threshold", 3, [
        Step(TCP_SYN, V, PASS, 1), Step(TCP_SYN, V, PASS, 2), Step(TCP_SYN, V, PASS, 3),
        Step(TCP_SYN, V, DROP, 4), Step(TCP_SYN, V, DROP, 5)]),
    ("an ACK completes a handshake; non-SYNs always pass", 3, [
        Step(TCP_SYN, V, PASS, 1), Step(TCP_SYN, V, PASS, 2), Step(TCP_ACK, V, PASS, 1),
        Step(TCP_SYN, V, PASS, 2), Step(TCP_SYN, V, PASS, 3), Step(TCP_SYN, V, DROP, 4),
        Step(TCP_ACK | TCP_PSH, V, PASS, 3), Step(TCP_ACK, V, PASS, 2),
        Step(TCP_SYN, V, PASS, 3)]),
    ("FIN and RST settle too; SYN+ACK and UDP change nothing", 2, [
        Step(TCP_SYN, V, PASS, 1), Step(TCP_SYN, V, PASS, 2), Step(TCP_SYN | TCP_ACK, V, PASS, 2),
        Step(None, V, PASS, 2), Step(TCP_FIN | TCP_ACK, V, PASS, 1), Step(TCP_SYN, V, PASS, 2),
        Step(TCP_FIN, V, PASS, 1), Step(TCP_RST, V, PASS, 0)]),
    ("a count never goes below 0, and a victim at 0 is absent", 2, [
        Step(TCP_ACK, V, PASS, 0), Step(TCP_FIN | TCP_ACK, V, PASS, 0), Step(TCP_SYN, V, PASS, 1),
        Step(TCP_ACK, V, PASS, 0), Step(TCP_RST, V, PASS, 0), Step(TCP_SYN, V, PASS, 1),
        Step(TCP_SYN, V, PASS, 2), Step(TCP_SYN, V, DROP, 3)]),
    ("a dropped SYN still counts", 2, [
        Step(TCP_SYN, V, PASS, 1), Step(TCP_SYN, V, PASS, 2), Step(TCP_SYN, V, DROP, 3),
        Step(TCP_SYN, V, DROP, 4), Step(TCP_ACK, V, PASS, 3), Step(TCP_SYN, V, DROP, 4),
        Step(TCP_ACK, V, PASS, 3), Step(TCP_ACK, V, PASS, 2), Step(TCP_ACK, V, PASS, 1),
        Step(TCP_SYN, V, PASS, 2)]),
    ("victims are counted apart, whoever the source", 2, [
        Step(TCP_SYN, V, PASS, 1, "198.19.0.1"), Step(TCP_SYN, V, PASS, 2, "198.19.0.1"),
        Step(TCP_SYN, W, PASS, 1, "198.19.0.1"), Step(TCP_SYN, V, DROP, 3, "198.19.0.2"),
        Step(TCP_SYN, W, PASS, 2, "198.19.0.2"), Step(TCP_ACK, W, PASS, 1, "198.19.0.1"),
        Step(TCP_SYN, W, PASS, 2, "198.19.0.3"), Step(TCP_SYN, V, DROP, 4, "198.19.0.3")]),
    ("a SYN opens only without ACK and RST; PSH alone or no flags change nothing", 1, [
        Step(TCP_SYN | TCP_RST, V, PASS, 0), Step(0, V, PASS, 0),
        Step(TCP_SYN | TCP_FIN, V, PASS, 1), Step(TCP_SYN | TCP_PSH, V, DROP, 2),
        Step(TCP_SYN | TCP_ACK | TCP_FIN, V, PASS, 2), Step(TCP_PSH, V, PASS, 2),
        Step(TCP_RST | TCP_ACK, V, PASS, 1)]),
]

_FLAG_WORDS = ((TCP_SYN, "SYN"), (TCP_ACK, "ACK"), (TCP_FIN, "FIN"), (TCP_RST, "RST"),
               (TCP_PSH, "PSH"))


def words(step: Step) -> str:
    """``"a SYN to 198.18.0.9"``, ``"an ACK+PSH to ..."``, ``"a UDP packet to ..."``."""
    if step.flags is None:
        return f"a UDP packet to {step.dst}"
    name = "+".join(n for bit, n in _FLAG_WORDS if step.flags & bit) or "TCP packet with no flags"
    return f"{'an' if name[0] == 'A' else 'a'} {name} to {step.dst}"


def opens(flags: int | None) -> bool:
    return flags is not None and bool(flags & TCP_SYN) and not flags & (TCP_ACK | TCP_RST)


def rule_of(step: Step, before: int) -> str:
    """The rule that decides ``step``, for the failure message."""
    if opens(step.flags):
        return "a SYN without ACK and RST opens a connection (+1), dropped or not"
    if step.flags is not None and not step.flags & TCP_SYN and step.flags & (
            TCP_ACK | TCP_FIN | TCP_RST):
        return ("ACK, FIN or RST without SYN settles one (-1), never below 0"
                if before else "a count of 0 stays 0: it never goes below 0")
    return "UDP, SYN+ACK, SYN+RST and packets with no flags leave the count as it is"


def packet_of(step: Step, i: int):
    src = ip_to_int(step.src) if step.src else ip_to_int("198.18.0.100") + i
    proto = PROTO_UDP if step.flags is None else PROTO_TCP
    return parse(build(src=src, dst=ip_to_int(step.dst), proto=proto, sport=40000 + i,
                       dport=53 if step.flags is None else 80, trace_id=i,
                       tcp_flags=step.flags or 0))


def check_semantics(g: Grade) -> None:
    for title, threshold, steps in SCENARIOS:
        nf = make_nf(NF_NAME, threshold=threshold)
        state = nf.new_state()
        counts: dict[str, int] = {}
        for i, step in enumerate(steps):
            before = counts.get(step.dst, 0)
            verdict = nf.process(state, packet_of(step, i), ts_of(i) * (i % 3))
            where = (f"{words(step)} after {before} half-open connection"
                     f"{'' if before == 1 else 's'} with threshold {threshold}")
            if verdict != step.verdict:
                why = ("an opening SYN is dropped iff the count after it is above the "
                       "threshold" if opens(step.flags) else "only an opening SYN is ever "
                       "dropped")
                g.fail(f"{where} must be {'passed' if step.verdict == PASS else 'dropped'}; "
                       f"your verdict: {VERDICT_NAMES.get(verdict, repr(verdict))} ({why}; "
                       f"scenario: {title}, packet {i + 1})")
            counts[step.dst] = step.count
            got = state.get((ip_to_int(step.dst),))
            want = (step.count,) if step.count else None
            if got != want:
                if step.count == 0 and got == (0,):
                    g.fail(f"{where} leaves a count of 0: the entry must be gone (step() "
                           f"returns None), your state holds (0,) (scenario: {title}, packet "
                           f"{i + 1})")
                have = (f"no entry for it (it holds {nf.state_to_json(state)})"
                        if got is None else repr(got))
                g.fail(f"{where} must leave {step.dst}'s count at {step.count} (its key: "
                       f"(the IP as an int,), its value: ({step.count},)"
                       f"{', or absent' if not step.count else ''}); your state has {have} "
                       f"({rule_of(step, before)}; scenario: {title}, packet {i + 1})")
        want_json = {dst: n for dst, n in sorted(counts.items()) if n}
        if nf.state_to_json(state) != want_json:
            g.fail(f"after the scenario '{title}', state_to_json() gave "
                   f"{nf.state_to_json(state)}, not {want_json}: key_to_json gives the "
                   "destination IP as a string, value_to_json the count (TODO 5)")
    g.info(f"{len(SCENARIOS)} scenarios, {sum(len(s) for _t, _n, s in SCENARIOS)} packets: "
           "every verdict and every count as the rules say")


# --- 3-4. live -----------------------------------------------------------------------------


def passed_info(g: Grade, rows: list[dict]) -> None:
    for row in rows:
        g.info(f"your NF dropped {row['processed'] - row['passed']} of the "
               f"{row['processed']} packets (the floods' SYNs), as one core in sequence does")


def check_live_scr(g: Grade) -> None:
    passed_info(g, check_live_equivalent(g, "scr", NF_NAME, (4,), frames=flood_frames(),
                                         rate_pps=RATE_PPS, nf_params={"threshold": THRESHOLD}))


def check_live_shard(g: Grade) -> None:
    fields = make_nf(NF_NAME).shard_fields
    try:
        rows = check_live_equivalent(g, "shard", NF_NAME, (4,), frames=flood_frames(),
                                     rate_pps=RATE_PPS, nf_params={"threshold": THRESHOLD})
    except LabFailure as err:
        g.fail(f"shard, the switch hashing your shard_fields {fields}: {err} (TODO 6: each "
               "victim's packets must all reach one core)")
    passed_info(g, rows)


LAB = Lab(
    number=3, title="An NF as a per-key transition: a SYN-flood detector",
    files=("syn_flood.py",),
    checks=(
        Check("the NF contract (nfs.contract, as for the package's NFs): TODOs 1-6",
              check_contract),
        Check("the detector's rules on hand-built packet sequences", check_semantics),
        Check("live, scr on 4 cores: every replica equals one core in sequence",
              check_live_scr, live=True),
        Check("live, shard on 4 cores: your shard_fields keep each victim on one core",
              check_live_shard, live=True),
    ),
    run=RunSpec(nf=NF_NAME, strategy="scr", cores=4, rate_pps=RATE_PPS,
                packets=len(flood_frames()), calibrated=False, frames=flood_frames,
                config={"nf_params": {"threshold": THRESHOLD}}),
)
