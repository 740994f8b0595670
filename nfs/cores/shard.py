"""The ``shard`` core (RSS): owns the keys the switch's hash sends it, in a private dict.

Every packet of one key comes to the same core; the frame is the original one with a
trailer carrying the sequencer's number and clock (``wire.trailer.unpack_trailer``), so that the
switch's hash can read its IPv4 and TCP fields. Only the STOP frame is an SCR frame.

Caveat: packets of different keys may arrive out of sequence order (``reordered``): OVS's
userspace datapath batches a receive burst per flow. A key's own packets stay in order,
which is all a shard's state depends on.
"""

from __future__ import annotations

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from sequencer.dataplane import ETH_P_ALL
from sequencer.wire import header as h
from sequencer.wire.packet import parse
from sequencer.wire.trailer import TRAILER_SIZE, unpack_trailer

_ETH_P_SCR_BYTES = h.ETH_P_SCR.to_bytes(2, "big")


class ShardCore(Core):
    """A ``shard`` core: owns the keys the switch's hash sends it, in a private dict."""

    strategy = "shard"
    ethertype = ETH_P_ALL  # plain frames with a trailer, and the SCR STOP frame

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int):
        super().__init__(nf, core, n_cores)
        self.state = nf.new_state()
        self._seen: set[int] = set()  # sequence numbers processed here

    def handle(self, frame: bytes) -> bytes | None:
        try:
            if frame[12:14] == _ETH_P_SCR_BYTES:
                hdr = h.unpack_header(frame)
                if not hdr.flags & h.FLAG_STOP:
                    raise h.MalformedFrame("unexpected_scr", "shard cores get no SCR frames")
                if hdr.slot != self.core or hdr.n_cores != self.n_cores:
                    raise h.MalformedFrame("wrong_core", f"slot {hdr.slot}/{hdr.n_cores}")
                self.stopped = True
                return None
            seq, ts = unpack_trailer(frame)
            inner = frame[: -TRAILER_SIZE]
            pkt = parse(inner)
        except h.MalformedFrame as err:
            self.malformed[err.reason] += 1
            return None
        # Not "seq <= applied" as in SCR: OVS's userspace datapath batches the packets of a
        # receive burst per megaflow, so two *keys* that hash to this core may swap places.
        # Each key's own packets share one megaflow and stay in order, and that is all a
        # shard's state depends on (the oracle checks it). Only a repeat is refused.
        if seq in self._seen:
            self.malformed["stale_seq"] += 1
            return None
        self._seen.add(seq)
        if seq < self.applied:
            self.stats["reordered"] += 1
        verdict = self.nf.process(self.state, pkt, ts)
        self.applied = max(self.applied, seq)
        return self._done(seq, pkt.trace_id, verdict, inner)

    def state_json(self):
        return self.nf.state_to_json(self.state)
