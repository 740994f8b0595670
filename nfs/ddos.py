"""DDoS mitigator: count packets per source IP, block sources over a threshold.

Key: the source IP. Value: ``(count,)``, the packets seen from it. A packet passes while its
source's count, this packet included, is at most ``threshold``; later packets of that source
are dropped. History record: the source IP (4 bytes), as in the paper's artifact. RSS for
the ``shard`` strategy hashes ``ip_src``.

Caveat: counters never decay, as in the artifact; a real mitigator would use time windows.
"""

from __future__ import annotations

import struct

from nfs.base import DROP, PASS, NetworkFunction, int_param
from sequencer.wire.packet import Packet, int_to_ip


class DDoSMitigator(NetworkFunction):
    name = "ddos"
    record_format = struct.Struct("!I")
    key_format = struct.Struct("!I")
    value_format = struct.Struct("!Q")
    shard_fields = ("ip_src",)

    def __init__(self, threshold: int = 200, work: int = 0, state_work: int = 0):
        super().__init__(work, state_work)
        self.threshold = int_param("threshold", threshold, minimum=1)

    def record(self, pkt: Packet, ts: int) -> tuple:
        return (pkt.src,)

    def key(self, fields: tuple) -> tuple:
        return fields  # the record is the key: no allocation on the hot path

    def step(self, value: tuple | None, fields: tuple) -> tuple:
        return (value[0] + 1,) if value is not None else (1,)

    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        return PASS if new[0] <= self.threshold else DROP

    def key_to_json(self, key: tuple) -> str:
        return int_to_ip(key[0])

    def value_to_json(self, value: tuple) -> int:
        return value[0]

    def params(self) -> dict:
        return {**super().params(), "threshold": self.threshold}
