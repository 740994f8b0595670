"""The dispatch app: installs the sequencer node's pipeline on the switch, per mode.

Every mode sends the generator's traffic through the shim; they differ in how the shim's
output reaches the cores. With the ports of ``topologies.scr_topo.PortPlan``:

=========  ============================================  ==========================
priority   match                                         action
=========  ============================================  ==========================
100        in_port=gen                                   output:shim ingress
100        ``scr``, ``lock``, ``single``, ``rsspp``:     output:core i
           in_port=shim egress, eth_type=SCR,
           eth_src=slot MAC of i (one per core)
100        ``shard``: in_port=shim egress,               group:1 (select, one
           eth_type=IPv4                                 bucket per core)
100        in_port=core i, eth_type=IPv4 (one per core)  output:sink
100        ``pb``, ``scr`` with ``watch_cores``:          CONTROLLER (heartbeats)
           in_port=core i, eth_type=0x88B6
0          anything else                                 drop (counted)
=========  ============================================  ==========================

* ``scr``, ``lock``, ``single`` and ``rsspp`` share one pipeline. OVS has no per-packet
  round-robin (select groups hash), so the shim writes the slot into the dummy Ethernet
  source MAC and one exact-match rule per slot does the spraying, as the paper's artifact
  steers NIC queues by that MAC. ``lock`` is the same spray with an empty history,
  ``single`` the same with one core, ``rsspp`` the shim's RSS++ indirection table (the
  shim hashes and rebalances, as a NIC's table and its driver do: ``sequencer.rss``).
* ``shard`` is RSS: the shim sends the original IPv4 frame (a trailer after the IP packet
  keeps Ethernet/IPv4/TCP parseable) and a select group hashes the plan's
  ``shard_fields`` to pick the core. The hash fields are set with OVS's extension
  property ``selection_method=hash,fields(...)`` (Netronome experimenter 0x154d, see
  OVS's ``Documentation/group-selection-method-property.txt``), which exists only in
  OpenFlow 1.5 group mods; os-ken has no class for it, so :func:`selection_method_property`
  builds its bytes. The switch must offer OpenFlow 1.5 for this mode; the app logs an
  error and installs nothing if it only speaks 1.3.
* ``pb`` is primary-backup (``nfs.cores.replication``): the ``single`` pipeline, its one slot
  rule sending everything to the first core port (the primary); the other core ports are
  backups in order, which get no traffic. Every core port's heartbeats (ethertype 0x88B6,
  ``sequencer.wire.heartbeat``; a core sends nothing else of that type) go to the
  controller. A watchdog (:class:`Watchdog`, every ``WATCHDOG_PERIOD_S``) moves the slot
  rule to the first backup whose heartbeats are fresh once the active port's have stopped
  for ``failover_timeout_ms`` (plan field, default 200), with one OFPFC_MODIFY_STRICT, and
  records each failover (monotonic and wall time, from and to port) in
  ``controller_events.json`` next to the plan file (the trial's folder), with each port's
  heartbeat count, refreshed every second.

* ``scr`` with ``watch_cores`` (plan field, true) is SCR with core failover: every core
  port's heartbeats go to the controller too, and :class:`CoreWatch` follows which cores
  are alive. When a core falls silent for ``failover_timeout_ms``, or a silent one beats
  again (its replacement has joined), the controller sends the shim a spray command
  (``sequencer.wire.spray``, by packet-out into the shim's ingress port) naming
  the cores to spray over from now on; the shim then sprays round-robin over them with a
  history one record shorter or longer. OVS cannot round-robin by itself, so the spray is
  the shim's choice of slot, and the controller decides it; the per-slot rules stay. Each
  change is recorded (epoch, dead and joined ports, cores) in ``controller_events.json``.

Everything from the generator goes to the shim, malformed frames too: the shim counts them.
Every rule carries ``COOKIE`` so tests and the trial runner can find them with
``ovs-ofctl dump-flows s1 cookie=0x5c5/-1`` (any OpenFlow version); the group is not a
flow, ``ovs-ofctl -O OpenFlow15 dump-groups s1`` shows it (:func:`expected_groups`).
The pipeline (ports, number of cores, mode, shard fields) comes from the JSON file named
by ``--scr-pipeline``; :func:`check_plan` rejects a bad one with a one-line ValueError
when the app starts (``shard_fields`` is ignored by the other modes).

Caveats: OVS computes ``hash`` selection in its slow path and un-wildcards the hashed
fields in the datapath flow, so every new source costs an upcall; fine at testbed rates.
A hash field whose prerequisites a packet lacks (a TCP port of a UDP packet) is skipped
for that packet, as OVS does.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.compat import (
    CONFIG_DISPATCHER,
    MAIN_DISPATCHER,
    BaseApp,
    cfg,
    hub,
    ofp_event,
    ofproto_v1_3,
    ofproto_v1_5,
    ofproto_v1_5_parser,
    set_ev_cls,
)
from sequencer.dataplane import write_json
from sequencer.wire.header import ETH_P_IP, ETH_P_SCR, slot_mac
from sequencer.wire.heartbeat import ETH_P_HEARTBEAT, parse_heartbeat
from sequencer.wire.spray import spray_frame

COOKIE = 0x5C5
PRIORITY_PIPELINE = 100
PRIORITY_DROP = 0
MODES = ("scr", "lock", "shard", "single", "pb", "rsspp")
SLOT_MODES = ("scr", "lock", "single", "pb", "rsspp")  # the modes that spray by slot MAC
SHARD_GROUP_ID = 1
OFPP_CONTROLLER = 0xFFFFFFFD  # the same in OpenFlow 1.3 and 1.5
DEFAULT_FAILOVER_TIMEOUT_MS = 200.0
WATCHDOG_PERIOD_S = 0.02
EVENTS_FILE = "controller_events.json"
EVENTS_REFRESH_S = 1.0  # heartbeat counts in the events file are at most this old

# OVS's selection-method group property (openflow/netronome-ext.h).
OFPGPT15_EXPERIMENTER = 0xFFFF
NTR_VENDOR_ID = 0x0000154D
NTRT_SELECTION_METHOD = 1
NTR_MAX_SELECTION_METHOD_LEN = 16
SELECTION_METHODS = ("hash", "dp_hash")
_NTR_PROP = struct.Struct("!HHIII16sQ")  # type, length, experimenter, exp_type, pad, method, param
OFPXMC_OPENFLOW_BASIC = 0x8000

# Hash fields a plan may name, by the name ``ovs-ofctl dump-groups`` prints, with their
# OpenFlow-basic OXM field number and width in bytes (OpenFlow 1.5 spec, table 12).
SHARD_FIELDS: dict[str, tuple[int, int]] = {
    "eth_dst": (3, 6),
    "eth_src": (4, 6),
    "nw_proto": (10, 1),
    "ip_src": (11, 4),
    "ip_dst": (12, 4),
    "tcp_src": (13, 2),
    "tcp_dst": (14, 2),
    "udp_src": (15, 2),
    "udp_dst": (16, 2),
}

cfg.CONF.register_cli_opts(
    [cfg.StrOpt("scr-pipeline", default=None, help="JSON file describing the SCR pipeline")]
)


# --- the pipeline as data (no switch needed) --------------------------------------------


@dataclass
class Rule:
    """One flow rule: ``match`` (OFPMatch keyword arguments) -> output port, group or drop."""

    priority: int
    match: dict = field(default_factory=dict)
    out_port: int | None = None
    group_id: int | None = None


@dataclass(frozen=True)
class SelectGroup:
    """A select group: one bucket per port, buckets picked by ``method`` over ``fields``."""

    group_id: int
    ports: tuple[int, ...]
    method: str = "hash"
    fields: tuple[str, ...] = ()


def plan_mode(plan: dict) -> str:
    return plan.get("mode", "scr")


def check_plan(plan: dict) -> None:
    """Raise a one-line ValueError if ``plan`` cannot be installed."""
    mode = plan_mode(plan)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    missing = [k for k in ("gen_port", "shim_in_port", "shim_out_port", "sink_port",
                           "core_ports") if k not in plan]
    if missing:
        raise ValueError(f"pipeline plan lacks {', '.join(missing)}")
    if not plan["core_ports"]:
        raise ValueError("pipeline plan has no core ports")
    if mode == "shard":
        fields = plan.get("shard_fields")
        if not isinstance(fields, list) or not fields:
            raise ValueError("mode 'shard' needs a non-empty list 'shard_fields'")
        unknown = [f for f in fields if f not in SHARD_FIELDS]
        if unknown:
            raise ValueError(f"unknown shard field(s) {', '.join(map(repr, unknown))}; "
                             f"expected some of {', '.join(SHARD_FIELDS)}")
        if len(set(fields)) != len(fields):
            raise ValueError(f"repeated shard field in {fields}")
    if plan.get("watch_cores") and mode != "scr":
        raise ValueError(f"watch_cores is for mode 'scr', not {mode!r}")
    if mode == "pb" or plan.get("watch_cores"):
        ports = plan["core_ports"]
        if len(ports) < 2 or len(set(ports)) != len(ports):
            raise ValueError(f"mode {mode!r} with failover needs 2 or more distinct core "
                             "ports")
        timeout = plan.get("failover_timeout_ms", DEFAULT_FAILOVER_TIMEOUT_MS)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"failover_timeout_ms must be a number > 0, got {timeout!r}")


def select_group(plan: dict) -> SelectGroup | None:
    """The select group of ``plan`` (shard mode), or None."""
    check_plan(plan)
    if plan_mode(plan) != "shard":
        return None
    return SelectGroup(SHARD_GROUP_ID, tuple(plan["core_ports"]), "hash",
                       tuple(plan["shard_fields"]))


def pipeline_rules(plan: dict) -> list[Rule]:
    """The flow rules of ``plan``, in the order they are installed."""
    check_plan(plan)
    shim_out = plan["shim_out_port"]
    rules = [Rule(PRIORITY_PIPELINE, {"in_port": plan["gen_port"]}, plan["shim_in_port"])]
    # One rule per slot in every mode: in shard mode only the end-of-run STOP frames use
    # them (the shim sends one to each core), data frames go through the select group.
    # pb has one slot, to the primary: the other ports are its backups.
    slot_ports = plan["core_ports"][:1] if plan_mode(plan) == "pb" else plan["core_ports"]
    rules += [
        Rule(PRIORITY_PIPELINE,
             {"in_port": shim_out, "eth_type": ETH_P_SCR, "eth_src": slot_mac(core)}, port)
        for core, port in enumerate(slot_ports)
    ]
    if plan_mode(plan) not in SLOT_MODES:
        rules.append(Rule(PRIORITY_PIPELINE, {"in_port": shim_out, "eth_type": ETH_P_IP},
                          group_id=SHARD_GROUP_ID))
    rules += [Rule(PRIORITY_PIPELINE, {"in_port": port, "eth_type": ETH_P_IP}, plan["sink_port"])
              for port in plan["core_ports"]]
    if watches_heartbeats(plan):
        rules += [Rule(PRIORITY_PIPELINE, {"in_port": port, "eth_type": ETH_P_HEARTBEAT},
                       OFPP_CONTROLLER) for port in plan["core_ports"]]
    rules.append(Rule(PRIORITY_DROP))
    return rules


def watches_heartbeats(plan: dict) -> bool:
    """Whether the cores' heartbeats go to the controller (pb, scr with watch_cores)."""
    return plan_mode(plan) == "pb" or bool(plan.get("watch_cores"))


def failover_rule(plan: dict, port: int) -> Rule:
    """pb: the slot rule of ``plan`` sending the shim's output to ``port`` instead."""
    check_plan(plan)
    if plan_mode(plan) != "pb" or port not in plan["core_ports"]:
        raise ValueError(f"no failover to port {port} in mode {plan_mode(plan)!r}")
    rule = pipeline_rules(plan)[1]
    return Rule(rule.priority, rule.match, port)


def failover_timeout_s(plan: dict) -> float:
    return plan.get("failover_timeout_ms", DEFAULT_FAILOVER_TIMEOUT_MS) / 1000


class Watchdog:
    """pb's failover decision, from heartbeat arrival times (pure: the caller gives ``now``).

    The first port is active. When its last heartbeat is more than ``timeout_s`` old, the
    traffic moves to the first other port whose last heartbeat is not; the port left
    behind never becomes active again (its state stopped where it died). A port is only
    judged once it has beaten at least once: a primary still starting up is not dead.
    """

    def __init__(self, ports: list[int], timeout_s: float):
        if len(ports) < 2 or not timeout_s > 0:
            raise ValueError("a watchdog needs 2 or more ports and a timeout > 0")
        self.active = ports[0]
        self.candidates = list(ports[1:])
        self.timeout_s = timeout_s
        self.last: dict[int, float] = {}
        self.counts: dict[int, int] = {port: 0 for port in ports}
        self.events: list[dict] = []

    def heartbeat(self, port: int, now: float) -> None:
        if port in self.counts:
            self.counts[port] += 1
            self.last[port] = now

    def fresh(self, port: int, now: float) -> bool:
        return port in self.last and now - self.last[port] <= self.timeout_s

    def check(self, now: float) -> dict | None:
        """The failover due at ``now`` (and make it), or None."""
        if self.active not in self.last or self.fresh(self.active, now):
            return None
        target = next((p for p in self.candidates if self.fresh(p, now)), None)
        if target is None:
            return None  # nobody to take over: keep the rule, the primary may come back
        event = {"from_port": self.active, "to_port": target,
                 "silent_s": round(now - self.last[self.active], 4)}
        self.candidates.remove(target)
        self.active = target
        self.events.append(event)
        return event


class CoreWatch:
    """scr's core failover: which cores are alive, from heartbeat arrival times (pure).

    All cores are alive at first. A core whose last heartbeat is more than ``timeout_s``
    old is dead; a dead core that beats again (a replacement on its port) is alive again.
    ``check`` returns the change due at ``now`` as an event with the cores (indices of
    ``ports``) the shim must spray over from then on; the last live core is never removed
    (with no core at all there is nowhere to send the traffic). Like :class:`Watchdog`, a
    port is only judged once it has beaten.
    """

    def __init__(self, ports: list[int], timeout_s: float):
        if len(ports) < 2 or not timeout_s > 0:
            raise ValueError("a core watch needs 2 or more ports and a timeout > 0")
        self.ports = list(ports)
        self.alive = set(ports)
        self.timeout_s = timeout_s
        self.epoch = 0
        self.last: dict[int, float] = {}
        self.counts: dict[int, int] = {port: 0 for port in ports}
        self.events: list[dict] = []

    heartbeat = Watchdog.heartbeat
    fresh = Watchdog.fresh

    def check(self, now: float) -> dict | None:
        dead = {p for p in self.alive if p in self.last and not self.fresh(p, now)}
        back = {p for p in self.ports if p not in self.alive and self.fresh(p, now)}
        if dead >= self.alive:
            dead = set()  # keep spraying at the last cores: they may come back
        if not dead and not back:
            return None
        self.alive = (self.alive - dead) | back
        self.epoch += 1
        event = {"epoch": self.epoch, "dead_ports": sorted(dead), "joined_ports": sorted(back),
                 "cores": self.cores}
        self.events.append(event)
        return event

    @property
    def cores(self) -> list[int]:
        """The live cores, as indices of ``ports`` (the shim's core ids)."""
        return [i for i, port in enumerate(self.ports) if port in self.alive]

    def to_json(self) -> dict:
        return {"mode": "scr", "timeout_s": self.timeout_s, "cores": self.cores,
                "events": self.events,
                "heartbeats": {str(p): n for p, n in self.counts.items()}}


def expected_flow_count(plan: dict) -> int:
    """How many rules (with ``COOKIE``) ``install_pipeline`` puts on the switch for ``plan``."""
    return len(pipeline_rules(plan))


def expected_groups(plan: dict) -> int:
    """How many groups ``install_pipeline`` puts on the switch for ``plan`` (0 or 1)."""
    return 0 if select_group(plan) is None else 1


def oxm_field_array(fields) -> bytes:
    """OXM TLVs naming ``fields`` for the selection-method property.

    As OVS's ``oxm_put_field_array`` writes them: has_mask is 0 and the value is the mask
    applied to the packet field before hashing, here all ones (the whole field).
    """
    out = bytearray()
    for name in fields:
        try:
            number, width = SHARD_FIELDS[name]
        except KeyError:
            raise ValueError(f"unknown shard field {name!r}") from None
        out += struct.pack("!HBB", OFPXMC_OPENFLOW_BASIC, number << 1, width)
        out += b"\xff" * width
    return bytes(out)


def selection_method_property(method: str, fields=(), param: int = 0) -> bytes:
    """The bytes of OVS's ``ntr_group_prop_selection_method`` group property.

    Layout (big endian): type 0xffff, length (without padding), experimenter 0x154d,
    exp_type 1, 4 pad bytes, the method as a NUL-padded 16-byte string, a 64-bit
    parameter, the OXM field array, zero padding to a multiple of 8.
    """
    if method not in SELECTION_METHODS:
        raise ValueError(f"unknown selection method {method!r}")
    if fields and method != "hash":
        raise ValueError(f"selection method {method!r} takes no fields")
    if not 0 <= param < 1 << 64:
        raise ValueError("selection method parameter must fit in 64 bits")
    oxm = oxm_field_array(fields)
    length = _NTR_PROP.size + len(oxm)
    body = _NTR_PROP.pack(OFPGPT15_EXPERIMENTER, length, NTR_VENDOR_ID, NTRT_SELECTION_METHOD,
                          0, method.encode(), param) + oxm
    return body + bytes(-length % 8)


class SelectionMethodProp(ofproto_v1_5_parser.OFPGroupPropExperimenter):
    """os-ken's experimenter group property carrying OVS's selection method.

    os-ken's own class packs its data as 32-bit words after ``exp_type``; the NTR property
    has OXM TLVs of any length there, so ``serialize`` writes the bytes itself.
    """

    def __init__(self, method: str, fields=(), param: int = 0):
        super().__init__(type_=OFPGPT15_EXPERIMENTER, experimenter=NTR_VENDOR_ID,
                         exp_type=NTRT_SELECTION_METHOD)
        self.method = method
        self.fields = tuple(fields)
        self.param = param

    def serialize(self) -> bytearray:
        data = selection_method_property(self.method, self.fields, self.param)
        self.length = struct.unpack_from("!H", data, 2)[0]
        return bytearray(data)


# --- OpenFlow messages ------------------------------------------------------------------


def flow_mod(datapath, rule: Rule, modify: bool = False):
    """The OFPFlowMod adding ``rule`` (or, with ``modify``, changing the actions of the rule
    with exactly its match and priority), in the datapath's OpenFlow version."""
    ofproto, parser = datapath.ofproto, datapath.ofproto_parser
    if rule.group_id is not None:
        actions = [parser.OFPActionGroup(rule.group_id)]
    elif rule.out_port is not None:
        actions = [parser.OFPActionOutput(rule.out_port)]
    else:
        actions = []  # drop
    instructions = [parser.OFPInstructionActions(ofproto.OFPIT_APPLY_ACTIONS, actions)]
    command = ofproto.OFPFC_MODIFY_STRICT if modify else ofproto.OFPFC_ADD
    return parser.OFPFlowMod(datapath=datapath, cookie=COOKIE, command=command,
                             priority=rule.priority, match=parser.OFPMatch(**rule.match),
                             instructions=instructions)


def packet_out(datapath, port: int, data: bytes):
    """An OFPPacketOut sending ``data`` out of ``port``, as if from the controller.

    OpenFlow 1.5 names the packet's input port in a match; 1.3 has an ``in_port`` field."""
    ofproto, parser = datapath.ofproto, datapath.ofproto_parser
    actions = [parser.OFPActionOutput(port)]
    if ofproto.OFP_VERSION >= ofproto_v1_5.OFP_VERSION:
        return parser.OFPPacketOut(datapath, ofproto.OFP_NO_BUFFER,
                                   match=parser.OFPMatch(in_port=ofproto.OFPP_CONTROLLER),
                                   actions=actions, data=data)
    return parser.OFPPacketOut(datapath, ofproto.OFP_NO_BUFFER,
                               in_port=ofproto.OFPP_CONTROLLER, actions=actions, data=data)


def group_mods(datapath, group: SelectGroup) -> list:
    """Delete-then-add OFPGroupMods for ``group`` (OpenFlow 1.5 datapaths only).

    The delete makes a reconnecting switch, which still has the group, accept the add;
    OVS also removes the flows that point at a deleted group, and they are re-added next.
    """
    ofproto, parser = datapath.ofproto, datapath.ofproto_parser
    if ofproto.OFP_VERSION < ofproto_v1_5.OFP_VERSION:
        raise ValueError("a select group with a selection method needs OpenFlow 1.5")
    buckets = [
        parser.OFPBucket(bucket_id=i, actions=[parser.OFPActionOutput(port)],
                         properties=[parser.OFPGroupBucketPropWeight(
                             type_=ofproto.OFPGBPT_WEIGHT, weight=1)])
        for i, port in enumerate(group.ports)
    ]
    return [
        parser.OFPGroupMod(datapath, ofproto.OFPGC_DELETE, ofproto.OFPGT_SELECT, group.group_id),
        parser.OFPGroupMod(datapath, ofproto.OFPGC_ADD, ofproto.OFPGT_SELECT, group.group_id,
                           buckets=buckets,
                           properties=[SelectionMethodProp(group.method, group.fields)]),
    ]


class DispatchApp(BaseApp):
    """Installs the dispatch pipeline when the switch connects."""

    # The switch picks the highest version both offer: 1.5 on ScrTopo's switch.
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION, ofproto_v1_5.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = cfg.CONF.scr_pipeline
        if not path:
            raise ValueError("the dispatch app needs --scr-pipeline FILE")
        with open(path) as f:
            self.pipeline = json.load(f)
        check_plan(self.pipeline)
        self.datapath = None
        self.watchdog: Watchdog | CoreWatch | None = None
        self.events_path = Path(path).resolve().parent / EVENTS_FILE
        if watches_heartbeats(self.pipeline):
            kind = Watchdog if plan_mode(self.pipeline) == "pb" else CoreWatch
            self.watchdog = kind(self.pipeline["core_ports"], failover_timeout_s(self.pipeline))
            self._write_events()
            hub.spawn(self._watch)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features_handler(self, ev):
        datapath = ev.msg.datapath
        try:
            self.install_pipeline(datapath)
        except ValueError as err:
            self.logger.error("cannot install the %s pipeline on datapath %016x: %s",
                              plan_mode(self.pipeline), datapath.id, err)
            return
        self.logger.info("installed %d rules and %d groups on datapath %016x (OpenFlow 0x%x)",
                         expected_flow_count(self.pipeline), expected_groups(self.pipeline),
                         datapath.id, datapath.ofproto.OFP_VERSION)
        self.datapath = datapath
        if isinstance(self.watchdog, Watchdog) and \
                self.watchdog.active != self.pipeline["core_ports"][0]:
            # A switch that reconnects after a failover gets the traffic where it went.
            datapath.send_msg(flow_mod(datapath, failover_rule(self.pipeline,
                                                               self.watchdog.active), True))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in_handler(self, ev):
        """A heartbeat from a core port (nothing else is sent to the controller)."""
        if self.watchdog is None:
            return
        msg = ev.msg
        if parse_heartbeat(bytes(msg.data)) is not None:
            self.watchdog.heartbeat(msg.match["in_port"], time.monotonic())

    def _watch(self) -> None:
        """The watchdog loop: act when a watched port falls silent (or beats again)."""
        refreshed = time.monotonic()
        while True:
            hub.sleep(WATCHDOG_PERIOD_S)
            now = time.monotonic()
            event = self.watchdog.check(now) if self.datapath is not None else None
            if event is not None:
                event.update(t_monotonic=now, t_wall=time.time())
                self._act(event)
            if event is not None or now - refreshed > EVENTS_REFRESH_S:
                try:
                    self._write_events()
                except OSError as err:  # keep watching: the failover matters more
                    self.logger.error("cannot write %s: %s", self.events_path, err)
                refreshed = now

    def _act(self, event: dict) -> None:
        datapath = self.datapath
        if isinstance(self.watchdog, Watchdog):  # pb: move the slot rule to the backup
            datapath.send_msg(flow_mod(datapath, failover_rule(
                self.pipeline, event["to_port"]), True))
            self.logger.warning("failover: port %d silent for %.3f s, traffic to port %d",
                                event["from_port"], event["silent_s"], event["to_port"])
            return
        # scr: tell the shim which cores to spray over from now on.
        datapath.send_msg(packet_out(datapath, self.pipeline["shim_in_port"],
                                     spray_frame(event["epoch"], event["cores"])))
        self.logger.warning("cores: ports %s dead, %s back; spraying over cores %s (epoch %d)",
                            event["dead_ports"], event["joined_ports"], event["cores"],
                            event["epoch"])

    def _write_events(self) -> None:
        dog = self.watchdog
        if isinstance(dog, Watchdog):
            write_json(self.events_path, {
                "mode": "pb", "timeout_s": dog.timeout_s, "active_port": dog.active,
                "events": dog.events,
                "heartbeats": {str(p): n for p, n in dog.counts.items()},
            })
        else:
            write_json(self.events_path, dog.to_json())

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error_handler(self, ev):
        msg = ev.msg
        self.logger.error("switch error: type=%d code=%d", msg.type, msg.code)

    def install_pipeline(self, datapath) -> None:
        """Send the group (if any) and then the rules: a rule may only name an existing group.

        Every message is built before the first is sent, so a ValueError leaves the switch
        untouched.
        """
        group = select_group(self.pipeline)
        messages = group_mods(datapath, group) if group else []
        messages += [flow_mod(datapath, rule) for rule in pipeline_rules(self.pipeline)]
        for msg in messages:
            datapath.send_msg(msg)
