"""The SCR testbed topology: generator, sequencer node, NF host with N core ports, sink.

::

    gen --1--+                 +--10-- nf-eth0   (core 0)
             |                 +--11-- nf-eth1   (core 1)
             s1 (OVS, userspace)      ...
    seq-eth0 --2-- (ingress)   +--10+i-- nf-eth<i> (core i)
    seq-eth1 --3-- (egress)    |
    sink --4-----------------+

* ``s1`` is the sequencer node's switch: an Open vSwitch bridge on the userspace datapath
  (these machines have no OVS kernel module), secure fail mode (no flows, no forwarding
  until the controller says so), OpenFlow 1.3 and 1.5: the controller speaks 1.5 (the
  ``shard`` mode's select group needs it), ``ovs-ofctl -O OpenFlow13`` still works.
* ``seq`` is the sequencer node's userspace half: the shim reads on ``seq-eth0`` and writes
  on ``seq-eth1``, two links so that OVS never has to send a frame back out of the port it
  came in on.
* ``nf`` has one interface per emulated core, as a NIC has one RX queue per core; a worker
  process per core reads its own interface and sends passing packets back out of it.

``PortPlan`` fixes every OpenFlow port number; the controller reads the same plan (as JSON)
to install the pipeline, so the two can never disagree.

Caveats: every hop is served by the same ovs-vswitchd thread, so a packet's three hops
(generator -> shim, shim -> core, core -> sink) share one CPU's worth of switching. With
the userspace datapath the switch-side veth ends stay visible to the root namespace's
kernel; the testbed's frames use unicast MACs no interface owns, so that kernel drops
them as "other host" rather than routing them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mininet.node import Host, OVSSwitch
from mininet.topo import Topo

SWITCH = "s1"
GEN, SEQ, NF, SINK = "gen", "seq", "nf", "sink"
MAX_CORES = 64
PROTOCOLS = "OpenFlow13,OpenFlow15"


@dataclass(frozen=True)
class PortPlan:
    """OpenFlow port numbers of ``s1`` and interface names of the hosts."""

    n_cores: int
    gen_port: int = 1
    shim_in_port: int = 2
    shim_out_port: int = 3
    sink_port: int = 4
    core_base: int = 10

    def __post_init__(self):
        if not 1 <= self.n_cores <= MAX_CORES:
            raise ValueError(f"cores must be in 1..{MAX_CORES}, got {self.n_cores}")

    def core_port(self, core: int) -> int:
        return self.core_base + core

    @property
    def core_ports(self) -> list[int]:
        return [self.core_port(i) for i in range(self.n_cores)]

    # Host-side interface names (Mininet names them <host>-eth<port1>).
    gen_iface = f"{GEN}-eth0"
    shim_in_iface = f"{SEQ}-eth0"
    shim_out_iface = f"{SEQ}-eth1"
    sink_iface = f"{SINK}-eth0"

    @staticmethod
    def core_iface(core: int) -> str:
        return f"{NF}-eth{core}"

    def switch_iface(self, port: int) -> str:
        """The switch-side interface of OpenFlow port ``port`` (in the root namespace)."""
        return f"{SWITCH}-eth{port}"

    def to_json(self) -> dict:
        return {**asdict(self), "core_ports": self.core_ports}


class QuietHost(Host):
    """A host whose interfaces never speak IPv6.

    Left on, each interface sends router solicitations and MLD reports when it comes up,
    and the generator's would enter the pipeline as (malformed) traffic. The sysctls are
    set when the namespace is created, before Mininet moves any interface into it, so
    the interfaces are born with IPv6 off.
    """

    def __init__(self, name, **params):
        super().__init__(name, **params)
        self.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                 "net.ipv6.conf.default.disable_ipv6=1")


class ScrTopo(Topo):
    """Generator, sequencer node (switch + shim host), NF host with N core ports, sink."""

    def build(self, plan: PortPlan):  # noqa: D401 - Mininet's hook name
        switch = self.addSwitch(
            SWITCH, cls=OVSSwitch, datapath="user", protocols=PROTOCOLS, failMode="secure"
        )
        gen, seq, nf, sink = (self.addHost(name, cls=QuietHost) for name in (GEN, SEQ, NF, SINK))
        self.addLink(gen, switch, port1=0, port2=plan.gen_port)
        self.addLink(seq, switch, port1=0, port2=plan.shim_in_port)
        self.addLink(seq, switch, port1=1, port2=plan.shim_out_port)
        self.addLink(sink, switch, port1=0, port2=plan.sink_port)
        for core in range(plan.n_cores):
            self.addLink(nf, switch, port1=core, port2=plan.core_port(core))
