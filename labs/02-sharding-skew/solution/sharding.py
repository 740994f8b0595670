"""Lab 2: choose the RSS hash fields of a host-pair heavy-hitter detector (the solution).

With the ``shard`` strategy the switch hashes some header fields of each packet and sends
it to the core the hash picks (RSS). Each core keeps its own part of the NF's state: the
keys the hash sends it. That is only right if every packet of one key lands on the same
core, whatever else differs between those packets; the fields an NF declares in
``shard_fields`` are the ones the switch hashes.

``PairHeavyHitter`` is the package's heavy-hitter detector (``nfs/heavy_hitter.py``) with a
coarser key: it counts the bytes each *pair of hosts* exchanges, all their connections
together, so that a client cannot hide a heavy transfer by spreading it over many
connections. Its key is the pair ``(src, dst)``.

Caveat: the pair's count is never reset (a connection's SYN or FIN says nothing about the
pair's other connections), so unlike ``hh`` a pair that crossed the threshold stays heavy.
"""

from __future__ import annotations

import struct

from nfs.base import DROP, PASS
from nfs.heavy_hitter import HeavyHitterDetector
from sequencer.wire.packet import int_to_ip


class PairHeavyHitter(HeavyHitterDetector):
    """Bytes per host pair ``(src, dst)``; a packet passes while its pair is under
    ``threshold`` bytes (2000 by default), this packet included."""

    name = "lab2-pairs"
    key_format = struct.Struct("!II")

    # The record is the heavy hitter's: (src, dst, sport, dport, length, flags).
    def key(self, fields: tuple) -> tuple:
        return fields[0], fields[1]

    # The packet fields the switch hashes to choose a packet's core (RSS); the testbed
    # programs the switch's select group with them (controller/dispatch.py). Exactly the
    # key's fields: every packet of a pair has the same ip_src and ip_dst, so it hashes
    # the same (no key splits), and two pairs differ in one of them, so pairs spread over
    # the cores as finely as the key allows. The ports vary between a pair's connections:
    # hashing them, as the parent class does for its 4-tuple key, would split a pair.
    shard_fields = ("ip_src", "ip_dst")

    def step(self, value: tuple | None, fields: tuple) -> tuple:
        return ((value[0] if value is not None else 0) + fields[4],)

    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        return PASS if new[0] < self.threshold else DROP

    def key_to_json(self, key: tuple) -> str:
        return f"{int_to_ip(key[0])}->{int_to_ip(key[1])}"


# -- the lab's plumbing (leave it as it is): the NF's name in the testbed -----------------
NF_CLASSES = {"lab2-pairs": PairHeavyHitter}
