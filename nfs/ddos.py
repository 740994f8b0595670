"""DDoS mitigator: count packets per source IP, block sources over a threshold.

State: ``{src_ip: packets seen}``. A packet passes while its source's count, this packet
included, is at most ``threshold``; later packets of that source are dropped. History
record: the source IP (4 bytes), as in the paper's artifact.

Caveat: counters never decay, as in the artifact; a real mitigator would use time windows.
"""

from __future__ import annotations

import struct

from nfs.base import DROP, PASS, NetworkFunction
from nfs.packet import Packet, int_to_ip


class DDoSMitigator(NetworkFunction):
    name = "ddos"
    record_format = struct.Struct("!I")

    def __init__(self, threshold: int = 200, work: int = 0):
        super().__init__(work)
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold

    def new_state(self) -> dict[int, int]:
        return {}

    def record(self, pkt: Packet, ts: int) -> tuple:
        return (pkt.src,)

    def update(self, state: dict[int, int], fields: tuple) -> None:
        src = fields[0]
        state[src] = state.get(src, 0) + 1

    def process(self, state: dict[int, int], pkt: Packet, ts: int) -> int:
        count = state.get(pkt.src, 0) + 1
        state[pkt.src] = count
        return PASS if count <= self.threshold else DROP

    def state_to_json(self, state: dict[int, int]) -> dict[str, int]:
        return {int_to_ip(ip): n for ip, n in sorted(state.items())}

    def params(self) -> dict:
        return {**super().params(), "threshold": self.threshold}
