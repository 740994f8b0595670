"""The sequencer shim: the userspace half of the sequencer node.

It runs in the sequencer host, receives every packet the switch steers to it (ingress
port), and for each one:

1. parses it and packs the NF's history record (``nf.pack_record``);
2. gives it the next sequence number and the sequencer's timestamp;
3. emits ``| dummy Ethernet (slot = seq mod N) | SCR header | history records | packet |``
   on the egress port, where the controller's one-rule-per-slot table sends it to core
   ``seq mod N``: exact round-robin. The history holds every record since the previous
   frame sent to that core, N-1 in a steady round robin (``header.expected_count``);
4. appends its record to the ring of the last N-1 records.

The cores sprayed over are all N at first. The controller may change them with a spray
command (``sequencer.wire.spray``, sent by packet-out into the shim's ingress port) when a
core dies or comes back: from the next packet on, the shim sprays round-robin over the
cores named, going on from where the round robin was, so every core's history stays
continuous (``reconfigs`` in ``shim.json`` says at which sequence number each command took
effect).

``--loss P --loss-seed S`` (flags of :mod:`experiments.hosts.shim`, ``loss_rate`` and
``loss_seed`` here) inject loss at this dispatch stage: a seeded draw drops
a fraction P of the packets after they were stamped and their records entered the history,
as if the link to their core had lost them (``lost_seqs`` in ``shim.json``).

Anything that is not a well-formed IPv4 frame is counted by reason and dropped: it gets no
sequence number. An SCR frame with the STOP flag arriving at ingress (the generator's
end-of-trace marker) makes the shim send one STOP frame to every core, carrying the last
N-1 records, so each replica fast-forwards to the final sequence number before it exits.

On exit it writes the **ground truth** every run is checked against:

* ``sequenced.pcap``: every frame it sequenced, as it arrived, in sequence order, each
  stamped with the sequencer's timestamp (a nanosecond pcap: open it in Wireshark). The
  oracle replays these frames, so it never needs to know which trace packet was which;
* ``sequenced.csv`` (``seq,trace_id,ts_ns,core,history,fate``): per packet, the trace id
  its payload carries (the testbed's own traces number their packets there; any other
  capture has garbage there, used only to map results back), the core it was sprayed to,
  the history records its frame carried, and its fate (``FATES``: sent, dropped by the
  injected loss, refused by the kernel on send);
* ``shim.json``: counters, the spray commands applied, every STOP frame sent.

``--withhold SEQ ...`` is fault injection for testing the oracle: those frames leave with
their oldest history record withheld, a sequencer bug the checks must catch.

Every strategy's packets go through the shim, so that all strategies pay the same
infrastructure cost and all get the sequencer's order and clock. A strategy's ``spray``
(:mod:`nfs.strategies`) is the shim's mode:

* ``scr`` (and ``single``, one core): as above;
* ``lock``: round-robin spray with an empty history (the cores share one state instead);
* ``shard``: no spray and no history: the original frame leaves with a 14-byte trailer
  (sequence number, timestamp) so that the switch's RSS hash can still read its IPv4 and
  TCP fields. STOP frames are SCR frames, one per core slot, in every mode;
* ``rsspp`` (RSS++, :mod:`sequencer.rss`): by an indirection table of hash buckets of the
  NF's state key, with an empty history like ``lock``. Every ``rebalance_ms`` (the shim's
  clock, checked as packets arrive) it moves buckets from the busiest to the idlest core
  by the packets each bucket had since the last round; each move is written to the plan
  file the cores read before the next packet is stamped, and every core that lost a bucket
  gets a MIGRATE frame, after its last packet of that bucket, so that it hands the state
  over even if no other packet comes (``migrations`` in ``shim.json``).

The NF's record packing is handed in (:class:`RecordPacker`): this package depends on nothing
above it. The process that runs the shim in the sequencer host is
:mod:`experiments.hosts.shim`.

Caveat: one Python process, so it is a bottleneck candidate; ``tx_errors`` counts sends the
kernel refused (full socket buffer) and the fidelity check must watch it.
"""

from __future__ import annotations

import inspect
import itertools
import random
import time
from array import array
from collections import Counter, deque
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Protocol

from sequencer import rss
from sequencer.dataplane import (
    ETH_P_ALL,
    DropCounter,
    announce_ready,
    cpu_seconds,
    open_socket,
    write_json,
)
from sequencer.wire import header as h
from sequencer.wire.packet import Packet, parse
from sequencer.wire.pcap import write_pcap_ns
from sequencer.wire.spray import ETH_P_SPRAY, unpack_spray
from sequencer.wire.trailer import SCR_TRAILER, TRAILER_MAGIC

MALFORMED_SAMPLES = 5
SEQUENCED_PCAP = "sequenced.pcap"
SEQUENCED_CSV = "sequenced.csv"
#: How the shim sprays (a strategy's ``spray``): ``scr`` and ``single`` with the history,
#: ``lock`` round-robin with none, ``shard`` not at all (the switch hashes; a trailer).
SPRAY_MODES = ("scr", "lock", "shard", "single", "rsspp")
#: How often RSS++ rebalances its indirection table by default (RSS++ works at this scale).
DEFAULT_REBALANCE_MS = 100.0


class RecordPacker(Protocol):
    """What the shim needs of the NF (an ``nfs.base.NetworkFunction`` is one): its history
    record, packed. Handed in, so that the sequencer depends on nothing above it."""

    name: str
    record_size: int

    def pack_record(self, pkt: Packet, ts: int) -> bytes: ...

    # rsspp only: the packed state key of a packet, which its bucket hashes.
    def key_bytes(self, pkt: Packet) -> bytes: ...
#: What became of each sequenced packet (``sequenced.csv``'s ``fate``).
FATE_SENT, FATE_INJECTED, FATE_TX_ERROR = 0, 1, 2
FATES = {FATE_SENT: "sent", FATE_INJECTED: "injected", FATE_TX_ERROR: "tx_error"}


class Sequencer:
    """The shim's logic without sockets: frames in, SCR frames out (unit-testable).

    It also keeps the ground truth the oracle checks every run against: every frame it
    sequenced (``frames``, the original bytes), its timestamp, the core it was sprayed to,
    the number of history records it carried and its fate (sent, dropped by the injected
    loss, refused by the kernel on send), and every STOP frame it sent.
    """

    def __init__(self, nf: RecordPacker, n_cores: int, mode: str = "scr",
                 loss_rate: float = 0.0, loss_seed: int = 1, withhold: Iterable[int] = (),
                 *, plan: Path | None = None, rebalance_ms: float = DEFAULT_REBALANCE_MS):
        h.check_fits(n_cores, nf.record_size, nf.name)
        if mode not in SPRAY_MODES:
            raise ValueError(f"unknown spray mode {mode!r}; choose from {', '.join(SPRAY_MODES)}")
        if not 0 <= loss_rate < 1:
            raise ValueError(f"loss rate must be in [0, 1), got {loss_rate}")
        self.nf = nf
        self.n_cores = n_cores
        self.mode = mode
        self.next_seq = 0
        # The newest n-1 records, whatever the spray: a core that comes back, or a survivor
        # after a respray, may need more than spray-1 of them (see header.expected_count).
        history = n_cores - 1 if mode in ("scr", "single") else 0
        self.ring: deque[bytes] = deque(maxlen=history)
        self.last_sent = [-1] * n_cores  # per core: the last sequence number sprayed to it
        self.active: tuple[int, ...] = tuple(range(n_cores))
        self._turn = 0
        self.epoch = -1
        self.reconfigs: list[dict] = []  # every spray command applied: at which seq, to what
        # Control events (spray commands, STOP rounds) in the order they happened: several
        # may share a sequence number, and the history rule depends on their order.
        self._events = itertools.count()
        if mode == "shard":
            self.sequence = self._stamp  # type: ignore[method-assign]
        # RSS++ (mode rsspp): the indirection table, each bucket's packets since the last
        # rebalancing, and every migration (also written to the plan the cores read).
        self.table = rss.initial_table(n_cores)
        self.bucket_load = [0] * rss.RETA_SIZE
        self.migrations: list[dict] = []
        self.rebalance_ns = round(rebalance_ms * 1e6)
        self._next_rebalance: int | None = None
        self._plan = None
        if mode == "rsspp":
            if plan is None:
                raise ValueError("mode rsspp needs a plan file (the cores read it)")
            if not rebalance_ms > 0:
                raise ValueError(f"rebalance interval must be > 0 ms, got {rebalance_ms}")
            self._plan = rss.PlanWriter(plan)
            self.sequence = self._by_table  # type: ignore[method-assign]
        self._prefixes = [h.dummy_ethernet(slot) for slot in range(n_cores)]
        self._record_size = nf.record_size
        # Ground truth, by sequence number.
        self.frames: list[bytes] = []
        self.trace_ids = array("q")
        self.timestamps = array("q")
        self.cores = array("h")  # the core each packet was sprayed to (-1: shard's hash)
        self.history = array("B")  # history records its frame carried
        self.fates = bytearray()  # FATE_*
        self.stops_sent: list[dict] = []  # every STOP frame: core, seq, history records
        self.malformed: Counter[str] = Counter()
        self.malformed_samples: list[str] = []  # the first few, as hex, for debugging
        self.stops = 0
        self.rx_dropped = 0  # frames the kernel dropped at ingress (a full socket queue)
        # Injected loss: a seeded draw per sequenced packet, so a seed and a trace always
        # lose the same sequence numbers, whatever the timing.
        self.loss_rate = loss_rate
        self._loss_draw = random.Random(loss_seed).random
        self.lost = array("q")  # sequence numbers dropped on purpose after stamping
        # Fault injection for testing the oracle: these frames leave with their oldest
        # history record withheld (a sequencer bug the checks must catch).
        self.withhold = frozenset(withhold)

    def _history(self, core: int, seq: int) -> tuple[bytes, ...]:
        """The records frame ``seq`` to ``core`` carries (the history rule), oldest first."""
        ring = self.ring
        count = min(len(ring), max(len(self.active) - 1, seq - self.last_sent[core] - 1))
        if seq in self.withhold and count:
            count -= 1
        if count == len(ring):
            return tuple(ring)
        return tuple(islice(ring, len(ring) - count, None))

    def sequence(self, frame: bytes, ts: int) -> tuple[int, bytes | None]:
        """Sequence one ingress frame: ``(slot, SCR frame)``, the frame None when the
        injected loss drops it; MalformedFrame if it is bad."""
        pkt = parse(frame)
        seq = self.next_seq
        active = self.active
        slot = active[self._turn]
        self._turn = (self._turn + 1) % len(active)
        records = self._history(slot, seq) if self.ring.maxlen else ()
        out = b"".join(
            (
                self._prefixes[slot],
                h.SCR_HEADER.pack(
                    h.SCR_MAGIC, h.SCR_VERSION, 0, len(records), self._record_size,
                    slot, self.n_cores, len(active), seq % h.SEQ_MODULUS, ts,
                ),
                *records,
                frame,
            )
        )
        if self.ring.maxlen:  # lock keeps no history: its records would never be sent
            self.ring.append(self.nf.pack_record(pkt, ts))
        self.last_sent[slot] = seq
        self._record(frame, pkt.trace_id, ts, slot, len(records))
        return slot, self._lose(seq, out)

    def _record(self, frame: bytes, trace_id: int, ts: int, core: int, history: int) -> None:
        self.next_seq += 1
        self.frames.append(frame)
        self.trace_ids.append(trace_id)
        self.timestamps.append(ts)
        self.cores.append(core)
        self.history.append(history)
        self.fates.append(FATE_SENT)

    def _lose(self, seq: int, out: bytes) -> bytes | None:
        """``out``, or None if the injected loss drops packet ``seq`` (stamped, recorded in
        the history, never sent: a packet lost between the sequencer and its core)."""
        if self.loss_rate and self._loss_draw() < self.loss_rate:
            self.lost.append(seq)
            self.fates[seq] = FATE_INJECTED
            return None
        return out

    def send_failed(self, seq: int) -> None:
        """The kernel refused to send packet ``seq``: ground truth, like an injected drop."""
        self.fates[seq] = FATE_TX_ERROR

    def _by_table(self, frame: bytes, ts: int) -> tuple[int, bytes | None]:
        """The rsspp form of ``sequence``: to the core the bucket's table entry names, with
        an empty history."""
        pkt = parse(frame)
        seq = self.next_seq
        bucket = rss.bucket_of(self.nf.key_bytes(pkt))
        self.bucket_load[bucket] += 1
        slot = self.table[bucket]
        out = b"".join((
            self._prefixes[slot],
            h.SCR_HEADER.pack(h.SCR_MAGIC, h.SCR_VERSION, 0, 0, self._record_size, slot,
                              self.n_cores, self.n_cores, seq % h.SEQ_MODULUS, ts),
            frame,
        ))
        self.last_sent[slot] = seq
        self._record(frame, pkt.trace_id, ts, slot, 0)
        return slot, self._lose(seq, out)

    def tick(self, ts: int) -> list[bytes]:
        """Before stamping the next packet: rebalance the table when the interval is up
        (rsspp); the MIGRATE frames to send first, one per core that lost buckets."""
        if self._plan is None:
            return []
        if self._next_rebalance is None:
            self._next_rebalance = ts + self.rebalance_ns
        if ts < self._next_rebalance:
            return []
        self._next_rebalance = ts + self.rebalance_ns
        moves = rss.rebalance(self.table, self.bucket_load, self.n_cores)
        self.bucket_load = [0] * rss.RETA_SIZE
        losers = set()
        for bucket, src, dst in moves:
            move = rss.Migration(self.next_seq, bucket, src, dst)
            self._plan.add(move)
            self.migrations.append({"seq": move.seq, "bucket": bucket, "from": src,
                                    "to": dst, "t_ns": ts})
            losers.add(src)
        return [h.encode(h.ScrHeader(h.FLAG_MIGRATE, 0, self._record_size, core,
                                     self.n_cores, self.n_cores,
                                     self.next_seq % h.SEQ_MODULUS, ts), [])
                for core in sorted(losers)]

    def close(self) -> None:
        """Close the plan (rsspp)."""
        if self._plan is not None:
            self._plan.close()

    def _stamp(self, frame: bytes, ts: int) -> tuple[int, bytes | None]:
        """The shard form of ``sequence``: the frame plus a trailer, no slot (-1)."""
        pkt = parse(frame)
        seq = self.next_seq
        self._record(frame, pkt.trace_id, ts, -1, 0)
        return -1, self._lose(
            seq, frame + SCR_TRAILER.pack(seq % h.SEQ_MODULUS, ts, TRAILER_MAGIC))

    def stop_frames(self, ts: int) -> list[bytes]:
        """One STOP frame per core sprayed over, carrying the records since its last frame
        (no packet): every replica fast-forwards to the last sequence number."""
        self.stops += 1
        event = next(self._events)
        frames = []
        for slot in self.active:
            records = self._history(slot, self.next_seq) if self.ring.maxlen else ()
            self.stops_sent.append({"core": slot, "seq": self.next_seq,
                                    "history": len(records), "event": event, "sent": True})
            frames.append(h.encode(
                h.ScrHeader(h.FLAG_STOP, len(records), self.nf.record_size, slot,
                            self.n_cores, len(self.active), self.next_seq % h.SEQ_MODULUS,
                            ts),
                list(records)))
        return frames

    def respray(self, epoch: int, cores: tuple[int, ...], ts: int) -> bool:
        """Apply the controller's spray command; False (ignored) if it is stale or names
        a core this shim does not have.

        The round robin goes on where it was: the next packet goes to the first core named
        after the last one sprayed to. Each core's history then stays continuous (it carries
        every record since that core's previous frame), so a respray costs a healthy core
        no gap, only a few longer histories.
        """
        if epoch <= self.epoch or any(c >= self.n_cores for c in cores):
            self.malformed["stale_spray" if epoch <= self.epoch else "bad_spray"] += 1
            return False
        self.epoch = epoch
        last = self.cores[-1] if self.next_seq and self.mode != "shard" else -1
        self.active = tuple(sorted(cores))
        self._turn = next((i for i, c in enumerate(self.active) if c > last), 0)
        self.reconfigs.append({"seq": self.next_seq, "epoch": epoch, "cores": list(cores),
                               "t_ns": ts, "event": next(self._events)})
        return True

    def control(self, frame: bytes, ts: int) -> list[bytes] | None:
        """Handle a frame that is not a packet to sequence: the end-of-trace marker (the
        STOP frames to send) or a spray command ([]); None if it is neither."""
        ethertype = frame[12:14]
        if ethertype == _SPRAY_TYPE:
            try:
                epoch, cores = unpack_spray(frame)
            except h.MalformedFrame:
                return None
            self.respray(epoch, cores, ts)
            return []
        if ethertype == _SCR_TYPE and self.is_stop_marker(frame):
            return self.stop_frames(ts)
        return None

    def count_malformed(self, reason: str, frame: bytes) -> None:
        self.malformed[reason] += 1
        if len(self.malformed_samples) < MALFORMED_SAMPLES:
            self.malformed_samples.append(f"{reason}: {frame[:64].hex()}")

    def is_stop_marker(self, frame: bytes) -> bool:
        try:
            return bool(h.unpack_header(frame).flags & h.FLAG_STOP)
        except h.MalformedFrame:
            return False


_SPRAY_TYPE = ETH_P_SPRAY.to_bytes(2, "big")
_SCR_TYPE = h.ETH_P_SCR.to_bytes(2, "big")


def run(seq: Sequencer, in_iface: str, out_iface: str, stats: Counter) -> None:
    """The hot loop: receive on ``in_iface``, send on ``out_iface`` until stopped."""
    rx = open_socket(in_iface, ETH_P_ALL)
    tx = open_socket(out_iface, None)
    drops = DropCounter(rx)
    recv, send, sequence, clock = rx.recv, tx.send, seq.sequence, time.monotonic_ns
    tick = getattr(seq, "tick", None) if seq.mode == "rsspp" else None
    announce_ready()
    try:
        while True:
            frame = recv(65535)
            if tick is not None:
                for migrate in tick(clock()):  # after each loser's last packet of a bucket
                    try:
                        send(migrate)
                    except OSError:  # the loser's next packet or STOP hands over anyway
                        stats["tx_errors"] += 1
            try:
                _slot, out = sequence(frame, clock())
            except h.MalformedFrame as err:
                control = seq.control(frame, clock())
                if control is None:
                    seq.count_malformed(err.reason, frame)
                first = len(seq.stops_sent) - len(control or ())
                for i, stop in enumerate(control or ()):
                    try:
                        send(stop)
                    except OSError:  # ground truth: never sent (a later end marker may be)
                        stats["tx_errors"] += 1
                        seq.stops_sent[first + i]["sent"] = False
                continue
            if out is None:  # lost on purpose
                continue
            try:
                send(out)
            except OSError:
                stats["tx_errors"] += 1
                seq.send_failed(seq.next_seq - 1)
    finally:
        seq.rx_dropped = drops.read()
        rx.close()
        tx.close()
        if hasattr(seq, "close"):
            seq.close()


def write_results(seq: Sequencer, stats: Counter, out_dir: Path, strategy: str) -> None:
    """The ground truth (``sequenced.pcap``, ``sequenced.csv``) and ``shim.json``."""
    write_pcap_ns(out_dir / SEQUENCED_PCAP, seq.frames, seq.timestamps)
    with open(out_dir / SEQUENCED_CSV, "w") as f:
        f.write("seq,trace_id,ts_ns,core,history,fate\n")
        rows = zip(seq.trace_ids, seq.timestamps, seq.cores, seq.history, seq.fates,
                   strict=True)
        f.writelines(f"{i},{tid},{ts},{core},{count},{fate}\n"
                     for i, (tid, ts, core, count, fate) in enumerate(rows))
    write_json(
        out_dir / "shim.json",
        {
            "sequenced": seq.next_seq,
            "malformed": dict(seq.malformed),
            "malformed_total": sum(seq.malformed.values()),
            "malformed_samples": seq.malformed_samples,
            "stop_markers": seq.stops,
            "tx_errors": stats["tx_errors"],
            "rx_dropped": seq.rx_dropped,
            "strategy": strategy,
            # Which class sequenced, and from which file: a plugin's (a lab's) or this one.
            "sequencer": {"class": type(seq).__qualname__,
                          "file": inspect.getfile(type(seq))},
            "mode": seq.mode,
            "loss_rate": seq.loss_rate,
            "injected_loss": len(seq.lost),
            "lost_seqs": list(seq.lost),
            "tx_error_seqs": [i for i, fate in enumerate(seq.fates) if fate == FATE_TX_ERROR],
            "withheld": sorted(seq.withhold),
            "n_cores": seq.n_cores,
            "reconfigs": seq.reconfigs,
            "migrations": getattr(seq, "migrations", []),
            "stops_sent": seq.stops_sent,
            "cpu_s": cpu_seconds(),
        },
    )
