"""Port-knocking firewall: a source must knock on ports k1, k2, k3, in order, to get in.

Key: the source IP. Value: ``(state,)``, as in the paper's artifact:
``CLOSED_0 -> CLOSED_1 -> CLOSED_2 -> OPEN``. A packet to the next knock port advances the
source one step; a packet to any other port while closed sends it back to ``CLOSED_0``.
Once open, a source stays open until it sends a TCP FIN, which closes it again. A packet
passes iff its source is open *after* the transition (so the third knock itself passes, and
a FIN leaving an open source is dropped). An unknown source is ``CLOSED_0``; every source
seen keeps an entry (none is ever deleted).

The NF is order-sensitive: swap two knocks and the source stays closed. Under SCR the
knocks of one source may land on different cores and it must still open. RSS for the
``shard`` strategy hashes ``ip_src``.

History record: source IP, destination port, TCP flags (7 bytes; the artifact carries SYN and
FIN bits).
"""

from __future__ import annotations

import struct

from nfs.base import DROP, PASS, NetworkFunction
from sequencer.wire.packet import TCP_FIN, Packet, int_to_ip

CLOSED_0, CLOSED_1, CLOSED_2, OPEN = range(4)
STATE_NAMES = ("CLOSED_0", "CLOSED_1", "CLOSED_2", "OPEN")
DEFAULT_KNOCKS = (100, 101, 102)
# One shared tuple per state: a transition allocates nothing.
_VALUES = tuple((s,) for s in range(4))


class PortKnockingFirewall(NetworkFunction):
    name = "knock"
    record_format = struct.Struct("!IHB")
    key_format = struct.Struct("!I")
    value_format = struct.Struct("!B")
    shard_fields = ("ip_src",)

    def __init__(self, knocks: tuple[int, int, int] = DEFAULT_KNOCKS, work: int = 0,
                 state_work: int = 0):
        super().__init__(work, state_work)
        try:
            knocks = tuple(int(k) for k in knocks)
        except (TypeError, ValueError):
            raise ValueError(f"knocks must be three ports in 1..65535, not {knocks!r}") from None
        if len(knocks) != 3 or not all(0 < k < 65536 for k in knocks):
            raise ValueError(f"knocks must be three ports in 1..65535, not {knocks!r}")
        self.knocks = knocks

    def record(self, pkt: Packet, ts: int) -> tuple:
        return (pkt.src, pkt.dport, pkt.tcp_flags & 0xFF)

    def key(self, fields: tuple) -> tuple:
        return fields[:1]

    def step(self, value: tuple | None, fields: tuple) -> tuple:
        current = CLOSED_0 if value is None else value[0]
        if current == OPEN:
            return _VALUES[CLOSED_0] if fields[2] & TCP_FIN else _VALUES[OPEN]
        return _VALUES[current + 1] if fields[1] == self.knocks[current] else _VALUES[CLOSED_0]

    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        return PASS if new[0] == OPEN else DROP

    def key_to_json(self, key: tuple) -> str:
        return int_to_ip(key[0])

    def value_to_json(self, value: tuple) -> str:
        return STATE_NAMES[value[0]]

    def params(self) -> dict:
        return {**super().params(), "knocks": list(self.knocks)}
