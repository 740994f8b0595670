"""Lab 3: a SYN-flood detector as a per-key transition (the solution).

A SYN flood sends a victim many connection attempts (SYNs, often from spoofed sources)
that never complete, so the victim's table of half-open connections fills up. This NF
counts, per destination (the victim), the connections that were opened and not yet
settled, and drops new SYNs to a destination while that count is above ``threshold``.

The NF is written once as a pure per-key transition (``nfs.base``): ``record`` picks the
fields the transition needs, ``key`` names the victim, ``step`` computes the victim's new
count, ``verdict`` decides the packet. Every strategy runs it unchanged: SCR's replicas
replay ``step`` over other cores' history records, the lock strategy keeps the counts in a
fixed-size shared table (``key_format``/``value_format``), ``shard`` hashes
``shard_fields`` to keep a victim on one core.

The rules, exactly (TCP flags of the packet):

* a packet **opens** a connection if it carries SYN without ACK and without RST: the
  victim's count goes up by one (dropped SYNs count too: they are attempts);
* a packet **settles** one if it carries ACK, FIN or RST, and not SYN (the client's ACK
  completes a handshake; FIN and RST end or abort a connection): the count goes down by
  one, never below 0;
* any other packet (UDP, SYN+ACK, SYN+RST, no flags) leaves the count as it is;
* a victim whose count is 0 is absent from the state (``step`` returns None): the lock's
  table must not fill with every destination ever seen;
* an opening packet is dropped if the count *after* it is above ``threshold``; every other
  packet passes.

Caveats: the count is an estimate from one direction of traffic: every ACK settles one
connection, so a victim with busy legitimate connections absorbs more SYNs before it
trips (and an attacker who adds ACKs can hide a flood); counts never decay with time.
"""

from __future__ import annotations

import struct

from nfs.base import DROP, PASS, NetworkFunction, int_param
from sequencer.wire.packet import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Packet, int_to_ip


class SynFloodDetector(NetworkFunction):
    """Counts half-open connections per destination; drops SYNs to a flooded one."""

    name = "synflood"
    record_format = struct.Struct("!IB")  # destination IP, TCP flags (the low 8 bits)
    record_names = ("dst:ip", "flags:hex")  # for `dissect` in make run (optional)
    key_format = struct.Struct("!I")  # the destination IP
    value_format = struct.Struct("!I")  # its half-open connections (absent: 0)
    shard_fields = ("ip_dst",)  # the key is the destination: hash it

    def __init__(self, threshold: int = 8, work: int = 0, state_work: int = 0):
        super().__init__(work, state_work)
        self.threshold = int_param("threshold", threshold, minimum=1)

    def record(self, pkt: Packet, ts: int) -> tuple:
        return (pkt.dst, pkt.tcp_flags & 0xFF)

    def key(self, fields: tuple) -> tuple:
        return fields[:1]

    def step(self, value: tuple | None, fields: tuple) -> tuple | None:
        count = 0 if value is None else value[0]
        flags = fields[1]
        if flags & TCP_SYN:
            if not flags & (TCP_ACK | TCP_RST):
                count += 1  # opens a connection
        elif flags & (TCP_ACK | TCP_FIN | TCP_RST) and count:
            count -= 1  # settles one
        return (count,) if count else None

    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        flags = fields[1]
        opens = flags & TCP_SYN and not flags & (TCP_ACK | TCP_RST)
        return DROP if opens and new[0] > self.threshold else PASS

    def key_to_json(self, key: tuple) -> str:
        return int_to_ip(key[0])

    def value_to_json(self, value: tuple) -> int:
        return value[0]

    # -- plumbing (given): the parameters a trial's workers rebuild the NF with --
    def params(self) -> dict:
        return {**super().params(), "threshold": self.threshold}


# -- plumbing (leave it as it is): register the NF as "synflood" in every process --
NF_CLASSES = {"synflood": SynFloodDetector}
