"""Port-knocking firewall: a source must knock on ports k1, k2, k3, in order, to get in.

State per source IP, as in the paper's artifact: ``CLOSED_0 -> CLOSED_1 -> CLOSED_2 -> OPEN``.
A packet to the next knock port advances the source one step; a packet to any other port
while closed sends it back to ``CLOSED_0``. Once open, a source stays open until it sends a
TCP FIN, which closes it again. A packet passes iff its source is open *after* the
transition (so the third knock itself passes, and a FIN leaving an open source is dropped).

The NF is order-sensitive: swap two knocks and the source stays closed. Under SCR the
knocks of one source may land on different cores and it must still open.

History record: source IP, destination port, TCP flags (7 bytes; the artifact carries SYN and
FIN bits).
"""

from __future__ import annotations

import struct

from nfs.base import DROP, PASS, NetworkFunction
from nfs.packet import TCP_FIN, Packet, int_to_ip

CLOSED_0, CLOSED_1, CLOSED_2, OPEN = range(4)
STATE_NAMES = ("CLOSED_0", "CLOSED_1", "CLOSED_2", "OPEN")
DEFAULT_KNOCKS = (100, 101, 102)


class PortKnockingFirewall(NetworkFunction):
    name = "knock"
    record_format = struct.Struct("!IHB")

    def __init__(self, knocks: tuple[int, int, int] = DEFAULT_KNOCKS, work: int = 0):
        super().__init__(work)
        knocks = tuple(int(k) for k in knocks)
        if len(knocks) != 3 or not all(0 < k < 65536 for k in knocks):
            raise ValueError("knocks must be three ports in 1..65535")
        self.knocks = knocks

    def new_state(self) -> dict[int, int]:
        return {}

    def record(self, pkt: Packet, ts: int) -> tuple:
        return (pkt.src, pkt.dport, pkt.tcp_flags & 0xFF)

    def _next(self, current: int, dport: int, tcp_flags: int) -> int:
        if current == OPEN:
            return CLOSED_0 if tcp_flags & TCP_FIN else OPEN
        return current + 1 if dport == self.knocks[current] else CLOSED_0

    def update(self, state: dict[int, int], fields: tuple) -> None:
        src, dport, flags = fields
        state[src] = self._next(state.get(src, CLOSED_0), dport, flags)

    def process(self, state: dict[int, int], pkt: Packet, ts: int) -> int:
        new = self._next(state.get(pkt.src, CLOSED_0), pkt.dport, pkt.tcp_flags)
        state[pkt.src] = new
        return PASS if new == OPEN else DROP

    def state_to_json(self, state: dict[int, int]) -> dict[str, str]:
        return {int_to_ip(ip): STATE_NAMES[s] for ip, s in sorted(state.items())}

    def params(self) -> dict:
        return {**super().params(), "knocks": list(self.knocks)}
