"""Synthetic traces: Zipf-skewed TCP flows with DDoS sources and knock sequences mixed in.

A trace is a list of Ethernet frames; ``write_pcap``/``read_pcap`` save and load it as a
classic pcap file (``parse_pcap`` reads one from bytes), so any run can be replayed and
inspected with tcpdump, Wireshark or Scapy. They live in :mod:`experiments.workload.trace_files`
(re-exported here), which also imports real captures as traces.

What a trace of ``TraceSpec`` holds, in a seeded random order:

* **background flows**: ``flows`` TCP flows, each from its own source address, whose sizes
  (packets per flow) follow a Zipf law with exponent ``skew``: flow *k* gets a share
  proportional to ``1/k**skew``. ``skew = 0`` is uniform; with 200 flows the largest
  flow carries a quarter of the packets at 1.2 and 40 % at 1.5 (``flow_shares`` tells).
  A flow's first packet carries SYN, its last FIN+ACK, the others ACK;
* **attack sources**: ``attackers`` sources that together send ``attack_share`` of the
  packets, enough to cross the DDoS mitigator's threshold;
* **knockers**: ``knockers`` sources that knock on the three knock ports in order, then
  talk to ``service_port``; and as many that knock in a wrong order and must stay locked out.
  Each knock is a lone SYN to its knock port; the service packets form one TCP connection;
* **bad segments**: ``bad_seq_share`` of the packets in the middle of a connection (neither
  its first nor its last) carry a sequence number far outside the connection's window, as
  if spoofed: a connection tracker must drop them. They do not advance the connection.

TCP connections are told apart by ``(source, destination port)`` (a source always uses the
same source port). Sequence numbers are consistent per connection: a random initial
sequence number (ISN) on the SYN, then each segment starts where the previous one ended,
counting its payload (``frame_size - 54`` bytes) and one for SYN and FIN.

Every frame's payload starts with its trace id (its index here). Addresses come from
198.18.0.0/15, the range RFC 2544 reserves for benchmarks, and the MACs are unicast
addresses that no interface owns: frames never mean anything outside the testbed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

# The pcap functions moved to trace_files; many modules still import them from here.
from experiments.workload.trace_files import (  # noqa: F401
    TraceError,
    parse_pcap,
    read_pcap,
    write_pcap,
)
from nfs.port_knocking import DEFAULT_KNOCKS
from sequencer.wire.packet import (
    PROTO_TCP,
    TCP_ACK,
    TCP_FIN,
    TCP_SYN,
    build,
    ip_to_int,
)

BACKGROUND_NET = ip_to_int("198.18.0.0")  # one source per flow
ATTACK_NET = ip_to_int("198.19.0.0")
KNOCK_NET = ip_to_int("198.19.128.0")
SERVER = ip_to_int("198.19.255.1")
SEQ_SPACE = 2**32
_TCP_FRAME_HEADERS = 14 + 20 + 20  # Ethernet, IPv4, TCP without options


@dataclass(frozen=True)
class TraceSpec:
    """Parameters of a synthetic trace (all counts are packets unless named otherwise)."""

    packets: int = 20_000
    flows: int = 200
    skew: float = 1.0
    attackers: int = 4
    attack_share: float = 0.05
    knockers: int = 4
    service_packets: int = 4  # packets each knocker sends after its knock
    knocks: tuple[int, int, int] = DEFAULT_KNOCKS
    service_port: int = 22
    frame_size: int = 64
    seed: int = 1
    bad_seq_share: float = 0.01  # mid-connection packets sent out of window


    def __post_init__(self):
        if self.packets < 1 or self.flows < 1:
            raise ValueError("packets and flows must be >= 1")
        if self.skew < 0:
            raise ValueError("skew must be >= 0")
        if not 0 <= self.attack_share < 1:
            raise ValueError("attack_share must be in [0, 1)")
        if not 0 <= self.bad_seq_share < 1:
            raise ValueError("bad_seq_share must be in [0, 1)")
        if self.frame_size < 60 or self.frame_size > 1514:
            raise ValueError("frame_size must be in 60..1514")
        if self.knock_packets + self.attack_packets >= self.packets:
            raise ValueError("attack and knock packets leave no room for background flows")

    @property
    def knock_packets(self) -> int:
        return 2 * self.knockers * (3 + self.service_packets)

    @property
    def attack_packets(self) -> int:
        return int(self.packets * self.attack_share) if self.attackers else 0

    def to_json(self) -> dict:
        return asdict(self)


def flow_shares(flows: int, skew: float) -> list[float]:
    """Zipf shares of ``flows`` flows with exponent ``skew`` (largest first, sum 1)."""
    weights = [1.0 / (k**skew) for k in range(1, flows + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def make_trace(spec: TraceSpec) -> list[bytes]:
    """The frames of ``spec``, in sending order."""
    rng = random.Random(spec.seed)
    # Each event is (source, destination port); TCP flags are filled in afterwards.
    background = spec.packets - spec.attack_packets - spec.knock_packets
    shares = flow_shares(spec.flows, spec.skew)
    events: list[tuple[int, int]] = [
        (BACKGROUND_NET + flow, 80)
        for flow in rng.choices(range(spec.flows), weights=shares, k=background)
    ]
    events += [
        (ATTACK_NET + rng.randrange(spec.attackers), 80) for _ in range(spec.attack_packets)
    ]
    rng.shuffle(events)
    # Knock sequences go in at random positions, each knocker's packets in its own order.
    for knocker in range(2 * spec.knockers):
        good = knocker < spec.knockers
        knocks = list(spec.knocks) if good else [spec.knocks[1], spec.knocks[0], spec.knocks[2]]
        ports = knocks + [spec.service_port] * spec.service_packets
        positions = sorted(rng.randrange(len(events) + 1) for _ in ports)
        for offset, (position, port) in enumerate(zip(positions, ports, strict=True)):
            events.insert(position + offset, (KNOCK_NET + knocker, port))
    # ISNs and bad segments are drawn last: the events above stay what they were for a seed.
    return _frames(events, spec.frame_size, spec.bad_seq_share, rng)


def payload_length(frame_size: int) -> int:
    """TCP payload bytes of a generated frame of ``frame_size`` bytes."""
    return frame_size - _TCP_FRAME_HEADERS


def _frames(events: list[tuple[int, int]], frame_size: int, bad_seq_share: float,
            rng: random.Random) -> list[bytes]:
    """Frames for ``(source, dport)`` events: one TCP connection per pair, whose first
    packet SYNs and last FINs, with consistent sequence numbers, and some bad segments."""
    first: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], int] = {}
    for i, conn in enumerate(events):
        first.setdefault(conn, i)
        last[conn] = i
    middle = [i for i, conn in enumerate(events) if first[conn] < i < last[conn]]
    bad = set(rng.sample(middle, int(len(middle) * bad_seq_share)))
    payload = payload_length(frame_size)
    next_seq = {conn: rng.getrandbits(32) for conn in first}  # ISNs, by first appearance
    frames = []
    for i, conn in enumerate(events):
        src, dport = conn
        seq = next_seq[conn]
        if first[conn] == i:
            flags, end = TCP_SYN, seq + 1 + payload
        elif last[conn] == i:
            flags, end = TCP_FIN | TCP_ACK, seq + payload + 1
        else:
            flags, end = TCP_ACK, seq + payload
        if i in bad:  # far outside any window; the connection's stream skips it
            seq, end = seq + rng.randrange(1 << 20, 1 << 30), seq
        next_seq[conn] = end % SEQ_SPACE
        sport = 1024 + (src & 0xFFFF) % 60000
        frames.append(
            build(src=src, dst=SERVER, proto=PROTO_TCP, sport=sport, dport=dport,
                  trace_id=i, size=frame_size, tcp_flags=flags, tcp_seq=seq % SEQ_SPACE)
        )
    return frames

