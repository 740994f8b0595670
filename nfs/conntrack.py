"""TCP connection tracker: pass a segment iff it is valid for its connection's state.

A small, deterministic, *one-sided* tracker, like the paper artifact's: it follows the
connection through the originator's segments only, since the testbed's generator sends
traffic in one direction (client -> server) and the tracker never sees the responder.

Key: the canonical 5-tuple ``(addr_a, addr_b, port_a, port_b, proto)``, endpoint ``a`` the
lower ``(address, port)``, so both directions of a connection would share one key. Value:
``(state, next_seq, last_ts)``: the state, the next sequence number expected from the
originator, and the sequencer timestamp (ns) of the connection's last valid segment.

States: ``SYN_SENT`` (a SYN seen), ``ESTABLISHED`` (the originator ACKed: its side of the
handshake is done), ``FIN_WAIT`` (it sent FIN: it has no more data). ``CLOSED`` is the
absence of an entry. Transitions (anything not listed is invalid: DROP, state unchanged):

* no entry (or expired: idle longer than ``timeout_ns``): a SYN without ACK or RST opens
  the connection in ``SYN_SENT``; any other segment is dropped (mid-stream, unknown);
* ``SYN_SENT``: the same SYN again (a retransmission) is valid; an ACK segment in window
  moves to ``ESTABLISHED`` (or ``FIN_WAIT`` if it carries FIN);
* ``ESTABLISHED``: ACK segments in window are valid; FIN moves to ``FIN_WAIT``;
* ``FIN_WAIT``: pure ACKs at ``next_seq`` (acknowledging the peer's data or FIN) and a
  retransmission of the FIN segment are valid; new data is not; a new SYN reopens the
  4-tuple (port reuse);
* RST in window closes any connection (the entry is deleted); RST of an unknown one is
  dropped; SYN+ACK (a responder's segment, never expected here) is dropped;
* every segment but the SYN must carry ACK;
* "in window": the segment's sequence number is within ``window`` bytes of ``next_seq``,
  either way, modulo 2**32 (behind: a retransmission; ahead: a lost segment).
  ``next_seq`` advances to the segment's end: its data, plus one for SYN and for FIN.
* non-TCP packets pass untracked and never touch the state.

Segment length = IPv4 total length - 40: exact for the generator's option-less headers; a
real tracker would read the IP and TCP header lengths (Packet does not carry them).

Caveats: one-sided, so it cannot check acknowledgment numbers (it never sees the
responder's sequence space) nor enforce the responder's window; a responder's packet would
be checked against the originator's sequence numbers. Expired entries are only removed
when a packet touches them (no garbage collection). RSS for the ``shard`` strategy hashes
the 4-tuple fields in packet order, which is not symmetric: with one-directional traffic
every packet of a connection still lands on one core.

History record: 5-tuple, flags, seq, ack, segment length, timestamp (u64): 32 bytes (the
paper's record plus the segment length, which advancing ``next_seq`` needs; ``ack`` is
carried as in the artifact but unused by the one-sided tracker).
"""

from __future__ import annotations

import struct

from nfs.base import DROP, FOUR_TUPLE_FIELDS, PASS, NetworkFunction, int_param
from sequencer.wire.packet import (
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Packet,
    int_to_ip,
)

CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT = range(4)
STATE_NAMES = ("CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT")
PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp"}
SEQ_MOD = 2**32
_MASK = SEQ_MOD - 1
_HALF = SEQ_MOD // 2
_HEADERS = 40  # IPv4 + TCP headers without options


class TcpConnectionTracker(NetworkFunction):
    name = "conntrack"
    record_format = struct.Struct("!IIHHBBIIHQ")
    key_format = struct.Struct("!IIHHB")
    value_format = struct.Struct("!BIQ")
    shard_fields = FOUR_TUPLE_FIELDS  # traffic is one-directional: see the module docstring

    def __init__(self, window: int = 65_535, timeout_ns: int = 120 * 10**9, work: int = 0,
                 state_work: int = 0):
        super().__init__(work, state_work)
        self.window = int_param("window", window, minimum=1, maximum=_HALF - 1)
        self.timeout_ns = int_param("timeout_ns", timeout_ns, minimum=1)

    def record(self, pkt: Packet, ts: int) -> tuple:
        seg_len = pkt.length - _HEADERS if pkt.length > _HEADERS else 0
        return (pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.proto, pkt.tcp_flags & 0xFF,
                pkt.tcp_seq, pkt.tcp_ack, seg_len, ts)

    def key(self, fields: tuple) -> tuple:
        src, dst = fields[0], fields[1]
        if src < dst or (src == dst and fields[2] <= fields[3]):
            return fields[:5]  # already canonical: the record starts with the key
        return (dst, src, fields[3], fields[2], fields[4])

    def _in_window(self, next_seq: int, seq: int) -> bool:
        d = (seq - next_seq) & _MASK
        return d <= self.window or SEQ_MOD - d <= self.window

    def transition(self, value: tuple | None, fields: tuple) -> tuple[bool, tuple | None]:
        """``(valid, new value)`` for the segment ``fields`` on a connection at ``value``."""
        if fields[4] != PROTO_TCP:
            return True, value
        flags, seq, seg_len, ts = fields[5], fields[6], fields[8], fields[9]
        if value is not None and ts - value[2] > self.timeout_ns:
            value = None  # expired: as if never seen (and deleted unless this reopens it)
        if flags & TCP_RST:
            if value is None or not self._in_window(value[1], seq):
                return False, value
            return True, None
        if flags & TCP_SYN:
            if flags & TCP_ACK:
                return False, value
            end = (seq + 1 + seg_len) & _MASK
            if value is None or value[0] == FIN_WAIT:
                return True, (SYN_SENT, end, ts)
            if value[0] == SYN_SENT and value[1] == end:  # retransmitted SYN
                return True, (SYN_SENT, end, ts)
            return False, value
        if value is None or not flags & TCP_ACK:
            return False, value
        state, next_seq, _ = value
        if not self._in_window(next_seq, seq):
            return False, value
        end = seq + seg_len + (1 if flags & TCP_FIN else 0)
        if state == FIN_WAIT:
            if (end & _MASK) != next_seq or (seg_len and not flags & TCP_FIN):
                return False, value  # not at the FIN's end, or new data after the FIN
            return True, (FIN_WAIT, next_seq, ts)
        if ((end - next_seq) & _MASK) < _HALF:  # the segment ends after next_seq: advance
            next_seq = end & _MASK
        return True, (FIN_WAIT if flags & TCP_FIN else ESTABLISHED, next_seq, ts)

    def step(self, value: tuple | None, fields: tuple) -> tuple | None:
        return self.transition(value, fields)[1]

    def verdict(self, old: tuple | None, new: tuple | None, fields: tuple) -> int:
        return PASS if self.transition(old, fields)[0] else DROP

    def key_to_json(self, key: tuple) -> str:
        a, b, port_a, port_b, proto = key
        return (f"{PROTO_NAMES.get(proto, proto)} "
                f"{int_to_ip(a)}:{port_a}<->{int_to_ip(b)}:{port_b}")

    def value_to_json(self, value: tuple) -> dict:
        return {"state": STATE_NAMES[value[0]], "next_seq": value[1], "last_ns": value[2]}

    def params(self) -> dict:
        return {**super().params(), "window": self.window, "timeout_ns": self.timeout_ns}
