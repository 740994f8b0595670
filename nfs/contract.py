"""The NF contract as checks: what a :class:`~nfs.base.NetworkFunction` must satisfy so that
every strategy (SCR's replicas, the lock's shared table, the shards, the stores) runs it
unchanged and the oracle can judge it.

The package's tests run these checks on every NF of ``nfs.NF_CLASSES``
(``tests/unit/nfs/test_nfs.py``), and a teaching lab runs the very same checks on a
student's NF (``labs/03-nf-transition``). Each check takes an NF instance (``check_class``
takes its class) and, where it needs traffic, ``(packet, timestamp)`` pairs; it returns
quietly or raises :class:`ContractError`, an ``AssertionError`` whose message is one line
naming the rule broken and the first packet that breaks it. ``err.rule`` is that rule (a key
of :data:`RULES`) and ``err.details`` the evidence (packet index, key, values ...), so that a
caller can say the same in its own terms. The rules:

``class``
    the class names itself, declares three non-empty ``struct`` formats and
    ``shard_fields``: packet fields an OpenFlow select group can hash (:data:`SHARD_FIELDS`);
``record``
    ``record(pkt, ts)`` is a tuple that ``record_format`` packs and unpacks unchanged (the
    sequencer ships it in those bytes);
``integers``
    records, keys and values hold integers only (floats, strings or clocks make replicas
    diverge, and the transition chain hashes them);
``packing``
    every key and every value fits ``key_format``/``value_format`` and unpacks unchanged
    (the lock strategy's table has fixed-size slots);
``verdict``
    ``verdict`` gives ``PASS`` or ``DROP``;
``update``
    ``update(s, unpack_record(pack_record(p, ts)))`` takes ``s`` exactly where
    ``process(s, p, ts)`` does, with every record packed before any is applied, as the
    sequencer does: a replica that fast-forwards over history records computes what the
    packet's own core computed. A ``step`` that reads anything but its arguments (say, an
    attribute ``record()`` set) breaks it;
``apply``
    ``apply(value, fields)`` is ``step`` (the lock and store strategies call ``apply``);
``json``
    ``state_to_json`` is canonical: JSON data with string keys, sorted, one per key, the
    same for any mapping of the same items (replicas and shards are compared by it);
``params``
    ``params()`` is JSON with ``work`` and ``state_work``, and ``type(nf)(**params())``
    rebuilds an NF with the same parameters and the same attributes its ``__init__`` sets
    (a trial's workers build the NF from it);
``determinism``
    two runs over the same packets give the same verdicts and states: the same NF again
    from an empty state (no state hidden on the instance), and a twin built from
    ``params()``;
``shard``
    packets with one key agree on the values of ``shard_fields``, so a hash over them keeps
    each key on one core (``shard``);
``state_work``
    ``apply``, ``update`` and ``process`` pay ``state_work`` exactly once per transition.

:func:`check_nf` runs them all in that order. :func:`random_packets` makes the hostile
traffic the package's tests use (every flag mix, wrapping sequence numbers, time running
backwards).

Caveats: the checks are only as good as the packets given (a rule broken by no packet is
not found), and ``shard`` models the switch's hash by the packet's field values:
``conntrack``'s key is the same for both directions of a connection but a hash over the
4-tuple in packet order is not, so ``shard`` holds for it on one-directional traffic only
(the generator's), as its docstring says. ``state_work`` counts the rounds by replacing
``nfs.base.spin`` for the duration of the check: not thread-safe.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import nfs.base
from nfs.base import DROP, PASS, VERDICT_NAMES, NetworkFunction
from sequencer.wire.packet import (
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    Packet,
    int_to_ip,
    ip_to_int,
)

#: The rules, in the order :func:`check_nf` checks them, and what each one is for.
RULES = {
    "class": "the class declares its name, formats and shard_fields",
    "record": "record() is a tuple that record_format packs unchanged",
    "integers": "records, keys and values hold integers only",
    "packing": "keys and values fit key_format and value_format",
    "verdict": "verdict() gives PASS or DROP",
    "update": "update() of a packed record does what process() does",
    "apply": "apply() is step()",
    "json": "state_to_json() is canonical JSON",
    "params": "params() rebuilds the NF",
    "determinism": "the same packets give the same verdicts and states",
    "shard": "shard_fields cover the key",
    "state_work": "state_work is paid once per transition",
}

#: The OpenFlow fields a ``shard`` select group may hash that the checks can model, with the
#: :class:`~sequencer.wire.packet.Packet` attribute each one stands for.
SHARD_FIELDS = {"ip_src": "src", "ip_dst": "dst", "nw_proto": "proto", "tcp_src": "sport",
                "tcp_dst": "dport"}

Packets = Iterable[tuple[Packet, int]]


class ContractError(AssertionError):
    """An NF broke the rule ``rule`` (a key of :data:`RULES`); ``details`` is the evidence."""

    def __init__(self, rule: str, message: str, **details: Any):
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message
        self.details = details


# --- describing what went wrong ---------------------------------------------------------

_FLAG_NAMES = ((TCP_SYN, "SYN"), (TCP_ACK, "ACK"), (TCP_FIN, "FIN"), (TCP_RST, "RST"),
               (TCP_PSH, "PSH"))


def flag_names(flags: int) -> str:
    """``"SYN+ACK"``, or ``"no flags"``."""
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return "+".join(names) or "no flags"


def describe(pkt: Packet) -> str:
    """One packet in words: ``"TCP SYN 198.18.0.1:1024 -> 198.18.1.1:80"``."""
    if pkt.proto == PROTO_TCP:
        kind = f"TCP {flag_names(pkt.tcp_flags)}"
    else:
        kind = {PROTO_UDP: "UDP"}.get(pkt.proto, f"IP proto {pkt.proto}")
    return f"{kind} {int_to_ip(pkt.src)}:{pkt.sport} -> {int_to_ip(pkt.dst)}:{pkt.dport}"


def _at(i: int, pkt: Packet) -> str:
    return f"packet {i} ({describe(pkt)})"


def _is_ints(values) -> bool:
    return isinstance(values, tuple) and all(isinstance(v, int) for v in values)


def _key_text(nf: NetworkFunction, key: tuple) -> str:
    try:
        return f"{nf.key_to_json(key)!s}"
    except Exception:  # the key itself may be what is wrong: show it raw
        return repr(key)


# --- the rules ------------------------------------------------------------------------------


def check_format(cls: type, attr: str) -> None:
    """Part of the ``class`` rule: ``cls.<attr>`` is a non-empty ``struct.Struct``."""
    fmt = getattr(cls, attr, None)
    if not isinstance(fmt, struct.Struct):
        raise ContractError("class", f"{cls.__name__}.{attr} must be a struct.Struct, not "
                            f"{fmt!r}", attribute=attr)
    if fmt.size == 0:
        raise ContractError("class", f"{cls.__name__}.{attr} is empty ({fmt.format!r}): it "
                            "must hold at least one field", attribute=attr)


def check_class(cls: type) -> None:
    """The ``class`` rule: a named NetworkFunction subclass with non-empty ``struct`` formats
    and ``shard_fields`` naming fields of :data:`SHARD_FIELDS`."""
    if not (isinstance(cls, type) and issubclass(cls, NetworkFunction)):
        raise ContractError("class", f"{cls!r} is not a NetworkFunction subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ContractError("class", f"{cls.__name__}.name must be a non-empty string, "
                            f"not {name!r}", attribute="name")
    for attr in ("record_format", "key_format", "value_format"):
        check_format(cls, attr)
    fields = getattr(cls, "shard_fields", None)
    if not isinstance(fields, tuple) or not fields:
        raise ContractError("class", f"{cls.__name__}.shard_fields must be a non-empty tuple "
                            f"of field names, not {fields!r}", attribute="shard_fields")
    unknown = [f for f in fields if f not in SHARD_FIELDS]
    if unknown:
        raise ContractError("class", f"{cls.__name__}.shard_fields names {unknown[0]!r}, which "
                            f"is not one of {', '.join(SHARD_FIELDS)}",
                            attribute="shard_fields", field=unknown[0])


def check_records(nf: NetworkFunction, packets: Packets) -> list[tuple]:
    """The ``record`` and ``integers`` rules on every packet; the records, unpacked."""
    records = []
    if not isinstance(nf.record_format, struct.Struct):
        check_format(type(nf), "record_format")  # says what is wrong with it
    for i, (pkt, ts) in enumerate(packets):
        fields = nf.record(pkt, ts)
        if not isinstance(fields, tuple):
            raise ContractError("record", f"{_at(i, pkt)}: record() gave a "
                                f"{type(fields).__name__}, not a tuple", index=i, packet=pkt,
                                fields=fields)
        if not _is_ints(fields):
            raise ContractError("integers", f"{_at(i, pkt)}: record() gave {fields!r}: "
                                "records hold integers only", index=i, packet=pkt,
                                fields=fields, what="record")
        try:
            packed = nf.pack_record(pkt, ts)
        except struct.error as err:
            raise ContractError("record", f"{_at(i, pkt)}: record() gave {fields!r}, which "
                                f"record_format {nf.record_format.format!r} cannot pack "
                                f"({err})", index=i, packet=pkt, fields=fields,
                                error=str(err)) from None
        if len(packed) != nf.record_size:
            raise ContractError("record", f"{_at(i, pkt)}: the packed record has "
                                f"{len(packed)} bytes, record_size says {nf.record_size}",
                                index=i, packet=pkt, fields=fields)
        unpacked = nf.unpack_record(packed)
        if unpacked != fields:
            raise ContractError("record", f"{_at(i, pkt)}: record() gave {fields!r}, which "
                                f"comes back from record_format {nf.record_format.format!r}"
                                f" as {unpacked!r}", index=i, packet=pkt, fields=fields,
                                unpacked=unpacked)
        records.append(unpacked)
    return records


def _transitions(nf: NetworkFunction, packets: list[tuple[Packet, int]]
                 ) -> tuple[list[tuple[int, tuple, tuple | None]], dict]:
    """``process_traced`` over ``packets`` from an empty state: each packet's (verdict, key,
    new value), and the final state."""
    state = nf.new_state()
    return [nf.process_traced(state, pkt, ts) for pkt, ts in packets], state


def check_update_equals_process(nf: NetworkFunction, packets: Packets) -> list[int]:
    """The ``update`` and ``verdict`` rules (``record`` too): every packet's record packed
    first (as the sequencer does), then ``process`` over the packets and ``update`` over
    the records must make the same transitions and end in the same state; the verdicts."""
    packets = list(packets)
    records = check_records(nf, packets)
    traced, processed = _transitions(nf, packets)
    for i, ((pkt, _ts), (verdict, _key, _new)) in enumerate(zip(packets, traced, strict=True)):
        if verdict not in (PASS, DROP):
            raise ContractError("verdict", f"{_at(i, pkt)}: verdict() gave {verdict!r}, not "
                                "PASS or DROP", index=i, packet=pkt, verdict=verdict)
    updated = nf.new_state()
    for i, fields in enumerate(records):
        key, new = nf.update(updated, fields)
        _verdict, want_key, want = traced[i]
        if key != want_key or new != want:
            raise ContractError(
                "update", f"{_at(i, packets[i][0])}: replaying its record {fields!r} with "
                f"update() gave key {_key_text(nf, key)} the value {new!r}, but process() gave "
                f"key {_key_text(nf, want_key)} the value {want!r}: step() must depend on its "
                "value and the record's fields only", index=i, packet=packets[i][0], fields=fields,
                key=key, got=new, expected=want)
    if updated != processed:
        raise ContractError("update", "the state that update() built differs from "
                            "process()'s", got=updated, expected=processed)
    if nf.state_to_json(updated) != nf.state_to_json(processed):
        raise ContractError("json", "equal states give different state_to_json()")
    return [verdict for verdict, _key, _new in traced]


def check_apply_agrees(nf: NetworkFunction, packets: Packets) -> None:
    """The ``apply`` rule: a state built with ``apply`` (what the lock and the stores run)
    equals one built with ``update``."""
    state: dict = nf.new_state()
    by_apply: dict = {}
    for i, (pkt, ts) in enumerate(packets):
        fields = nf.record(pkt, ts)
        nf.update(state, fields)
        key = nf.key(fields)
        new = nf.apply(by_apply.get(key), fields)
        if new is None:
            by_apply.pop(key, None)
        else:
            by_apply[key] = new
        if by_apply.get(key) != state.get(key):
            raise ContractError("apply", f"{_at(i, pkt)}: apply() made {by_apply.get(key)!r},"
                                f" update() {state.get(key)!r}", index=i, packet=pkt)
    if by_apply != state:
        raise ContractError("apply", "the state built with apply() differs from update()'s")


def check_transition(nf: NetworkFunction, value: tuple | None, fields: tuple,
                     where: str = "a transition", **details: Any) -> tuple | None:
    """The ``packing`` and ``integers`` rules on one transition ``step(value, fields)``:
    its key and new value fit their formats exactly, and its verdict is PASS or DROP; the
    new value."""
    for attr in ("key_format", "value_format"):
        check_format(type(nf), attr)
    key = nf.key(fields)
    if not _is_ints(key):
        raise ContractError("integers", f"{where}: key() gave {key!r}: keys are tuples of "
                            "integers", key=key, what="key", **details)
    try:
        packed = nf.pack_key(key)
    except struct.error as err:
        raise ContractError("packing", f"{where}: key {key!r} does not fit key_format "
                            f"{nf.key_format.format!r} ({err})", key=key, what="key",
                            **details) from None
    if len(packed) != nf.key_format.size or nf.unpack_key(packed) != key:
        raise ContractError("packing", f"{where}: key {key!r} comes back from key_format "
                            f"{nf.key_format.format!r} as {nf.unpack_key(packed)!r}", key=key,
                            what="key", **details)
    new = nf.step(value, fields)
    if new is not None:
        if not _is_ints(new):
            raise ContractError("integers", f"{where}: step() gave {new!r} for key "
                                f"{_key_text(nf, key)}: values are tuples of integers (or "
                                "None: absent)", key=key, value=new, what="value", **details)
        try:
            packed = nf.pack_value(new)
        except struct.error as err:
            raise ContractError("packing", f"{where}: value {new!r} of key "
                                f"{_key_text(nf, key)} does not fit value_format "
                                f"{nf.value_format.format!r} ({err})", key=key, value=new,
                                what="value", **details) from None
        if len(packed) != nf.value_format.size or nf.unpack_value(packed) != new:
            raise ContractError("packing", f"{where}: value {new!r} comes back from "
                                f"value_format {nf.value_format.format!r} as "
                                f"{nf.unpack_value(packed)!r}", key=key, value=new,
                                what="value", **details)
    verdict = nf.verdict(value, new, fields)
    if verdict not in (PASS, DROP):
        raise ContractError("verdict", f"{where}: verdict() gave {verdict!r}, not PASS or "
                            "DROP", verdict=verdict, **details)
    return new


def check_packing(nf: NetworkFunction, packets: Packets) -> dict:
    """The ``packing`` rule on every transition of the packets, then on the final state as a
    shared table holds it (packed keys -> packed values, unpacked again); that state."""
    state = nf.new_state()
    for i, (pkt, ts) in enumerate(packets):
        fields = nf.record(pkt, ts)
        key = nf.key(fields)
        check_transition(nf, state.get(key), fields, _at(i, pkt), index=i, packet=pkt)
        nf.process(state, pkt, ts)
    table = {nf.pack_key(key): nf.pack_value(value) for key, value in state.items()}
    unpacked = {nf.unpack_key(k): nf.unpack_value(v) for k, v in table.items()}
    if unpacked != state:
        raise ContractError("packing", "the state does not survive a round trip through a "
                            "table of packed keys and values")
    if nf.state_to_json(unpacked) != nf.state_to_json(state):
        raise ContractError("json", "a state unpacked from a table gives a different "
                            "state_to_json()")
    return state


def check_state_json(nf: NetworkFunction, packets: Packets) -> dict:
    """The ``json`` rule on the state the packets build (and on the empty state); the JSON."""
    empty = nf.state_to_json(nf.new_state())
    if empty != {}:
        raise ContractError("json", f"the empty state gives {empty!r}, not {{}}")
    state = nf.new_state()
    for pkt, ts in packets:
        nf.process(state, pkt, ts)
    data = nf.state_to_json(state)
    if not all(isinstance(k, str) for k in data):
        bad = next(k for k in data if not isinstance(k, str))
        raise ContractError("json", f"key_to_json() gave {bad!r}, not a string", got=bad)
    try:
        again = json.loads(json.dumps(data))
    except (TypeError, ValueError) as err:
        raise ContractError("json", f"state_to_json() is not JSON data: {err}") from None
    if again != data:
        raise ContractError("json", "state_to_json() does not survive a JSON round trip "
                            "(tuples? non-string keys?)")
    if list(data) != sorted(data):
        raise ContractError("json", "state_to_json()'s keys are not sorted")
    if len(data) != len(state):
        seen: dict[str, tuple] = {}
        for key in state:
            text = nf.key_to_json(key)
            if text in seen:
                raise ContractError("json", f"key_to_json() gives {text!r} for two keys, "
                                    f"{seen[text]!r} and {key!r}: it must be one-to-one",
                                    got=text, keys=(seen[text], key))
            seen[text] = key
    items = list(state.items())
    for other in (MappingProxyType(state), dict(reversed(items))):
        converted = nf.state_to_json(other)
        if converted != data or list(converted) != list(data):
            raise ContractError("json", "state_to_json() depends on the mapping's type or "
                                "order (the lock strategy passes its table's items)")
    return data


def _run(nf: NetworkFunction, packets: list[tuple[Packet, int]]) -> tuple[list[int], dict]:
    state = nf.new_state()
    verdicts = [nf.process(state, pkt, ts) for pkt, ts in packets]
    return verdicts, nf.state_to_json(state)


def _first_difference(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))


def check_deterministic(nf: NetworkFunction, packets: Packets) -> list[int]:
    """The ``determinism`` rule: ``nf`` run twice from an empty state, and a twin built from
    ``params()``, give the same verdicts and final states; the verdicts."""
    packets = list(packets)
    verdicts, state = _run(nf, packets)
    runs = [("the same NF, run again from an empty state,", nf,
             "the NF keeps state outside the state dict, or uses clocks or randomness"),
            ("a twin built from params()", type(nf)(**nf.params()),
             "params() leaves a parameter out, or the NF uses clocks or randomness")]
    for what, other, why in runs:
        again, again_state = _run(other, packets)
        if again != verdicts:
            i = _first_difference(verdicts, again)
            raise ContractError(
                "determinism", f"{what} decided {_at(i, packets[i][0])} "
                f"{VERDICT_NAMES.get(again[i], again[i])}, the first run "
                f"{VERDICT_NAMES.get(verdicts[i], verdicts[i])}: {why}", index=i,
                packet=packets[i][0], first=verdicts[i], again=again[i], run=what)
        if again_state != state:
            raise ContractError("determinism", f"{what} ended in another state: {why}",
                                run=what)
    return verdicts


def shard_values(nf: NetworkFunction, pkt: Packet) -> tuple:
    """The values of ``nf.shard_fields`` in ``pkt``: what the switch's hash reads."""
    return tuple(getattr(pkt, SHARD_FIELDS[f]) for f in nf.shard_fields)


def check_shard_fields(nf: NetworkFunction, packets: Packets) -> None:
    """The ``shard`` rule: packets with the same key agree on the values of
    ``shard_fields`` (the ``class`` rule is checked first)."""
    check_class(type(nf))
    seen: dict[tuple, tuple[int, Packet, tuple]] = {}
    for i, (pkt, ts) in enumerate(packets):
        key = nf.key(nf.record(pkt, ts))
        values = shard_values(nf, pkt)
        first = seen.setdefault(key, (i, pkt, values))
        if first[2] != values:
            j, other, _ = first
            names = ", ".join(nf.shard_fields)
            raise ContractError(
                "shard", f"{_at(j, other)} and {_at(i, pkt)} have the same key "
                f"{_key_text(nf, key)} but different values of shard_fields ({names}): a "
                "hash over them can send one key to two cores", index=i, packet=pkt,
                other_index=j, other=other, key=key)


def check_params(nf: NetworkFunction) -> dict:
    """The ``params`` rule; the parameters."""
    params = nf.params()
    if not isinstance(params, dict):
        raise ContractError("params", f"params() gave a {type(params).__name__}, not a dict")
    for name in ("work", "state_work"):
        if params.get(name) != getattr(nf, name):
            raise ContractError("params", f"params()[{name!r}] is {params.get(name)!r}, the "
                                f"NF's {name} is {getattr(nf, name)!r}", param=name)
    try:
        as_json = json.loads(json.dumps(params))
    except (TypeError, ValueError) as err:
        raise ContractError("params", f"params() is not JSON data: {err}") from None
    if as_json != params:
        raise ContractError("params", f"params() {params!r} does not survive a JSON round "
                            f"trip (it comes back as {as_json!r})")
    try:
        twin = type(nf)(**params)
    except (TypeError, ValueError) as err:
        raise ContractError("params", f"{type(nf).__name__}(**params()) fails: {err}") from None
    for attr, value in vars(twin).items():  # what __init__ set: the parameters, derived
        if getattr(nf, attr, value) != value:
            raise ContractError("params", f"params() {params!r} leaves something out: the "
                                f"NF's {attr} is {getattr(nf, attr)!r}, but "
                                f"{type(nf).__name__}(**params()).{attr} is {value!r}",
                                param=attr, got=value, expected=getattr(nf, attr))
    if twin.params() != params:
        raise ContractError("params", f"{type(nf).__name__}(**params()) has params "
                            f"{twin.params()!r}, not {params!r}", got=twin.params(),
                            expected=params)
    return params


def check_state_work(nf: NetworkFunction, pkt: Packet, ts: int, rounds: int = 7) -> None:
    """The ``state_work`` rule: a twin of ``nf`` with ``state_work = rounds`` pays it once in
    each of ``apply``, ``process`` and ``update`` for ``pkt``; with 0, nothing."""
    paid: list[int] = []
    real_spin = nfs.base.spin
    nfs.base.spin = lambda n, seed=1: paid.append(n)
    try:
        costly = type(nf)(**{**nf.params(), "state_work": rounds})
        fields = costly.record(pkt, ts)
        if costly.apply(None, fields) != costly.step(None, fields):
            raise ContractError("apply", "apply(None, fields) differs from step(None, fields)")
        state = costly.new_state()
        costly.process(state, pkt, ts)
        costly.update(state, fields)
        if paid != [rounds] * 3:
            raise ContractError("state_work", f"apply, process and update with state_work "
                                f"{rounds} paid {paid}, not {[rounds] * 3}", paid=list(paid))
        paid.clear()
        type(nf)(**{**nf.params(), "state_work": 0}).process(state, pkt, ts)
        if paid:
            raise ContractError("state_work", f"state_work 0 paid {paid}", paid=list(paid))
    finally:
        nfs.base.spin = real_spin


def check_nf(nf: NetworkFunction, packets: Packets, shard_packets: Packets | None = None
             ) -> list[int]:
    """Every rule, in the order of :data:`RULES`, on ``packets`` (``shard`` on
    ``shard_packets`` if given: see the module's caveat); the verdicts."""
    packets = list(packets)
    check_class(type(nf))
    check_records(nf, packets)
    check_packing(nf, packets)
    verdicts = check_update_equals_process(nf, packets)
    check_apply_agrees(nf, packets)
    check_state_json(nf, packets)
    check_params(nf)
    check_deterministic(nf, packets)
    check_shard_fields(nf, packets if shard_packets is None else shard_packets)
    if packets:
        check_state_work(nf, *packets[0])
    return verdicts


# --- traffic ----------------------------------------------------------------------------------


def random_packets(seed: int, n: int = 2000) -> list[tuple[Packet, int]]:
    """Packets of Zipf-skewed flows over a few hosts and ports with every flag mix (mostly
    ACKs), sequence numbers near and far from each flow's cursor (wrapping at 2**32), lengths
    up to GSO size, UDP now and then, and time that sometimes stands still, runs backwards or
    jumps past the NFs' timeouts. Flows go both ways between the hosts."""
    rng = random.Random(seed)
    hosts = [ip_to_int(f"10.0.0.{k}") for k in (1, 2)]
    flows = [(src, dst, sport, dport) for src in hosts for dst in hosts for sport in (80, 40000)
             for dport in (22, 80, 100, 101, 102)]
    rng.shuffle(flows)
    flow_weights = [1 / k for k in range(1, len(flows) + 1)]
    flag_mixes = {TCP_ACK: 60, TCP_ACK | TCP_PSH: 5, TCP_SYN: 2, TCP_FIN | TCP_ACK: 2, TCP_RST: 1,
                  TCP_RST | TCP_ACK: 1, TCP_SYN | TCP_ACK: 1, 0: 1, TCP_SYN | TCP_FIN: 1,
                  0x1FF: 1}
    cursors: dict[tuple, int] = {}
    packets, ts = [], 0
    for i in range(n):
        flow = rng.choices(flows, weights=flow_weights)[0]
        proto = PROTO_UDP if rng.random() < 0.05 else PROTO_TCP
        flags = rng.choices(list(flag_mixes), weights=list(flag_mixes.values()))[0]
        flags = flags if proto == PROTO_TCP else 0
        length = rng.choice([20, 40, 50, 1500, 60_000])  # 60 000: a GSO-sized segment
        cursor = cursors.get(flow, rng.getrandbits(32))
        seq = (cursor + rng.choice([0, 0, 0, 0, -1, 5, 70_000, 2**31])) % 2**32
        cursors[flow] = (seq + max(0, length - 40) + bool(flags & (TCP_SYN | TCP_FIN))) % 2**32
        gap = rng.choice([0, 0, 700, 20_000, 10**6, -5_000]) if rng.random() > 0.01 else 10**12
        ts = max(0, ts + gap)
        packets.append((Packet(*flow[:2], proto, *flow[2:], flags, length, seq,
                               rng.getrandbits(32), i), ts))
    return packets

