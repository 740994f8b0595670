"""Lab 3: a SYN-flood detector as a per-key transition (the starter: complete TODOs 1-6).

A SYN flood sends a victim many connection attempts (SYNs, often from spoofed sources)
that never complete, so the victim's table of half-open connections fills up. This NF
counts, per destination (the victim), the connections that were opened and not yet
settled, and drops new SYNs to a destination while that count is above ``threshold``.

You write it the way every NF of the testbed is written (read ``nfs/base.py``, then
``nfs/ddos.py``: the same shape, 49 lines): as a pure per-key transition. ``record`` picks
the fields the transition needs, ``key`` names the victim, ``step`` computes the victim's
new count from its old one and the record, ``verdict`` decides the packet. Every strategy
runs your code unchanged: SCR's replicas replay ``step`` over other cores' history records
(so ``step`` may use nothing but its arguments), the lock strategy keeps the counts in a
fixed-size shared table (``key_format``/``value_format``), ``shard`` hashes
``shard_fields`` to keep a victim on one core.

The rules, exactly (TCP flags of the packet; the constants are imported below):

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

The key is ``(destination IP,)`` and the value ``(count,)``, both tuples of integers.
Integers only, no clocks, no randomness, nothing kept on ``self``: four replicas on four
cores must compute exactly the same thing.
"""

from __future__ import annotations

import struct

from nfs.base import DROP, PASS, NetworkFunction, int_param  # noqa: F401 (for your TODOs)
from sequencer.wire.packet import (  # noqa: F401 (for your TODOs)
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Packet,
    int_to_ip,
)


class SynFloodDetector(NetworkFunction):
    """Counts half-open connections per destination; drops SYNs to a flooded one."""

    name = "synflood"
    # TODO 1 (a): the layout of your history record: a struct.Struct of the fields record()
    # returns, in that order ("!" for network byte order; "I" is 4 bytes, "H" 2, "B" 1).
    # The sequencer ships every packet's record to the other cores in these bytes.
    record_format = struct.Struct("")
    # Optional: name your record's fields for `dissect` in make run, one per field, in
    # order; "name:ip" prints an IPv4 address, "name:hex" a hex number. E.g.
    # record_names = ("dst:ip", "flags:hex")
    key_format = struct.Struct("!I")  # the destination IP
    value_format = struct.Struct("!I")  # its half-open connections (absent: 0)
    # TODO 6: the packet fields the switch's hash must cover so that every packet of one
    # key lands on one core (``shard``): a tuple of names among "ip_src", "ip_dst",
    # "nw_proto", "tcp_src", "tcp_dst".
    shard_fields: tuple[str, ...] = ()

    def __init__(self, threshold: int = 8, work: int = 0, state_work: int = 0):
        super().__init__(work, state_work)
        self.threshold = int_param("threshold", threshold, minimum=1)

    def record(self, pkt: Packet, ts: int) -> tuple:
        """The fields of ``pkt`` that ``key`` and ``step`` need, in ``record_format``
        order (``pkt.dst``, ``pkt.tcp_flags``, ... : see sequencer/wire/packet.py)."""
        # TODO 1 (b): return a tuple of integers that fits record_format. Everything step()
        # and verdict() will need must be in it: a replica sees only the record.
        raise NotImplementedError("TODO 1: record() must return the packet's history record")

    def key(self, fields: tuple) -> tuple:
        """The state key the record ``fields`` touches: ``(destination IP,)``."""
        # TODO 2: return the key, a tuple in key_format order.
        raise NotImplementedError("TODO 2: key() must return (destination IP,)")

    def step(self, value: tuple | None, fields: tuple) -> tuple | None:
        """The victim's new value ``(count,)`` after the packet whose record is ``fields``,
        from its old ``value`` (None: absent, a count of 0); None if the count is 0."""
        # TODO 3: apply the rules of the module docstring: open (+1), settle (-1, never
        # below 0), or leave the count; return (count,) or None for 0. Use only `value`
        # and `fields`: a replica calls step() with another core's record.
        raise NotImplementedError("TODO 3: step() must compute the victim's new count")

    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        """``DROP`` for an opening packet whose victim's count is now above ``threshold``,
        else ``PASS`` (``old``/``new``: the value before and after the packet)."""
        # TODO 4: return PASS or DROP (new may be None: absent).
        raise NotImplementedError("TODO 4: verdict() must return PASS or DROP")

    def key_to_json(self, key: tuple) -> str:
        """The key as a string, one per key (replicas are compared by it): the IP."""
        # TODO 5 (a): e.g. "198.18.1.1" (int_to_ip does it).
        raise NotImplementedError("TODO 5: key_to_json() must give the IP as a string")

    def value_to_json(self, value: tuple) -> int:
        """The value as JSON data: the count."""
        # TODO 5 (b): the count, an int.
        raise NotImplementedError("TODO 5: value_to_json() must give the count")

    # -- plumbing (given): the parameters a trial's workers rebuild the NF with --
    def params(self) -> dict:
        return {**super().params(), "threshold": self.threshold}


# -- plumbing (leave it as it is): register the NF as "synflood" in every process --
NF_CLASSES = {"synflood": SynFloodDetector}
