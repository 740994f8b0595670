"""Lab 2: choose the RSS hash fields of a host-pair heavy-hitter detector (starter: TODO 1).

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

    # TODO 1: the packet fields the switch hashes to choose a packet's core (RSS), a tuple
    # of names that controller/dispatch.py's SHARD_FIELDS knows (ip_src, ip_dst, tcp_src,
    # tcp_dst, nw_proto, ...), e.g. ("ip_src",). The testbed programs the switch's select
    # group with them. Rule 1: every packet of one key must hash the same, or one key's
    # bytes are counted on several cores: hash no field that can differ between two
    # packets of one key. Rule 2: keys should spread over the cores as evenly as they
    # can: leave out no field of the key. Look at key() above.
    shard_fields: tuple[str, ...] = ()

    def step(self, value: tuple | None, fields: tuple) -> tuple:
        return ((value[0] if value is not None else 0) + fields[4],)

    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        return PASS if new[0] < self.threshold else DROP

    def key_to_json(self, key: tuple) -> str:
        return f"{int_to_ip(key[0])}->{int_to_ip(key[1])}"


# -- the lab's plumbing (leave it as it is): the NF's name in the testbed -----------------
NF_CLASSES = {"lab2-pairs": PairHeavyHitter}
