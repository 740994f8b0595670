"""The NF worker: one process per emulated core, for every strategy.

Each worker receives the frames of its core port (like a NIC RX queue, bounded by
``--rcvbuf``: an overloaded core drops frames, which the kernel counts) and runs the NF on
them. What a core does with a frame depends on the strategy (``--strategy``):

* ``scr`` (and ``single``, which is SCR on one core): the core keeps a private replica of
  the NF state. For each SCR frame it

  1. validates the SCR header and parses the original packet, and drops the frame, counted
     by reason, if either is malformed or not meant for this core; a dropped frame never
     touches the state;
  2. fast-forwards the replica: applies ``nf.update`` to each history record, oldest first,
     whose sequence number it has not applied yet (records cover ``seq-count .. seq-1``);
  3. runs ``nf.process`` on its own packet, then the NF's stateless compute (``spin(work)``);
  4. forwards a passing packet (the original frame, SCR header stripped) to the sink.

  If the first record is newer than the next unapplied sequence number, updates were lost
  (the packets that carried them never arrived): the worker records the missing range in
  ``gaps`` and carries on; the oracle then knows exactly which updates this replica lacks.
* ``lock``: frames arrive round-robin with an empty history; the state is one
  :class:`~nfs.shared_state.SharedTable` in shared memory shared by all cores, and each
  packet's transition runs under that key's lock. When the key's state was last written by
  another core, the core also pays ``--transfer-work`` spin rounds inside the lock: the
  cache-line transfer that real shared state costs on a multicore CPU, which separate
  Python processes on two CPUs would not show by themselves (see the README's caveats).
* ``shard``: the switch's RSS hash picks the core, so every packet of one key comes here;
  the frame is the original one with a trailer carrying the sequencer's number and clock.
  The core owns its shard of the state privately. Packets of different keys may arrive
  out of sequence order (``reordered``): OVS batches a burst per flow.

* ``service``, ``remote`` and their variants: the state is outside the core, in a state
  service or a Redis server, and the core runs on an asyncio runtime with several packets
  in flight; see :mod:`nfs.async_core` and :mod:`nfs.strategies`.

A STOP frame ends the run: an SCR core fast-forwards over its last records first, so every
replica ends at the same sequence number; then the worker writes its results and exits.

Results (in ``--out``): ``core<i>.json`` (counters, final state or shard, last applied
sequence number, missing ranges, socket drops, first/last packet time) and
``core<i>_log.csv`` (``seq,trace_id,verdict`` per packet processed).

With ``--recovery PREFIX`` an ``scr`` core logs its records in a shared-memory ring and
fetches the ones it lost from its peers' rings; with ``--join`` it is a replacement core
that starts from a peer's snapshot; with ``--health-ms`` it sends heartbeats to the
controller (see :mod:`nfs.recovery`).

With ``--replicate-to`` or ``--backup-listen`` a ``single`` core is the primary or the backup
of a primary-backup pair, kept equal by access-order replay (see :mod:`nfs.replication`).

Run: ``python -m nfs.worker --iface nf-eth0 --core 0 --cores 4 --nf ddos --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

from nfs import NF_CLASSES, make_nf
from nfs.base import CHAIN_START, PASS, NetworkFunction, SpinGovernor, chain_step, spin
from nfs.packet import parse
from nfs.shared_state import TableFull
from nfs.strategies import STORE_STRATEGIES, STRATEGIES
from sequencer import header as h
from sequencer.dataplane import (
    ETH_P_ALL,
    SOCKET_BUFFER,
    DropCounter,
    announce_ready,
    check_places,
    cpu_seconds,
    open_socket,
    run_until_stopped,
    write_json,
)

MAX_GAPS_LOGGED = 100_000


class Core:
    """What every strategy's core keeps: counters, the per-packet log, timing."""

    strategy = ""

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int):
        self.nf = nf
        self.core = core
        self.n_cores = n_cores
        self.name = f"core{core}"  # its results' file names
        self.applied = -1  # highest sequence number whose update this core has seen
        self.stats: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.log_seq = array("q")
        self.log_trace = array("q")
        self.log_verdict = array("b")
        self.log_chain = array("q")  # replicas: the transition chain at each own packet
        self.first_ns = self.last_ns = 0
        self.cpu_first_s: float | None = None  # the process's CPU time at its first frame
        self.stopped = False
        self.rx_dropped = 0
        self.governor: SpinGovernor | None = None  # keeps the work at its CPU time
        self._work = lambda seed: spin(self.nf.work, seed)

    def govern(self, ns_per_round: float) -> None:
        """Keep the NF's costs at their CPU time, from a round costing ``ns_per_round``
        (the experiment's calibration): see :class:`nfs.base.SpinGovernor`."""
        self.governor = SpinGovernor(self.nf, ns_per_round)
        self._work = self.governor.work

    def handle(self, frame: bytes) -> bytes | None:
        """Handle one frame; return the packet to forward, or None."""
        raise NotImplementedError

    def finish(self) -> None:
        """After the STOP frame, before the results are written (a hook)."""

    def _done(self, seq: int, trace_id: int, verdict: int, out: bytes) -> bytes | None:
        """Log a processed packet, pay the NF's stateless compute, return what to forward."""
        self._work(seq)
        self.log_seq.append(seq)
        self.log_trace.append(trace_id)
        self.log_verdict.append(verdict)
        self.stats["processed"] += 1
        if verdict == PASS:
            self.stats["passed"] += 1
            return out
        self.stats["dropped"] += 1
        return None

    def state_json(self):
        """The state this core holds, as canonical JSON (None when it holds none)."""
        return None

    def results(self) -> dict:
        return {
            "core": self.core,
            "n_cores": self.n_cores,
            "strategy": self.strategy,
            "applied": self.applied,
            "stopped_by_marker": self.stopped,
            "stats": dict(self.stats),
            "malformed": dict(self.malformed),
            "malformed_total": sum(self.malformed.values()),
            "rx_dropped": self.rx_dropped,
            "cpu_s": cpu_seconds(),
            # CPU spent from the first frame on: per packet, what the core's work costs
            # without the start-up (experiments.capacity reads it).
            "busy_cpu_s": round(cpu_seconds() - self.cpu_first_s, 6)
            if self.cpu_first_s is not None else 0.0,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "state": self.state_json(),
            "spin": self.governor.results() if self.governor else None,
        }

    def write_results(self, out_dir: Path) -> None:
        chains = self.log_chain or [0] * len(self.log_seq)  # 0: no replica, no chain
        with open(out_dir / f"{self.name}_log.csv", "w") as f:
            f.write("seq,trace_id,verdict,chain\n")
            f.writelines(
                f"{s},{t},{v},{c}\n"
                for s, t, v, c in zip(self.log_seq, self.log_trace, self.log_verdict, chains,
                                      strict=True)
            )
        write_json(out_dir / f"{self.name}.json", self.results())


class Replica(Core):
    """An SCR core: a private state replica, fast-forwarded over the history.

    Besides its state it keeps the **transition chain** (``nfs.base.chain_step``) of every
    record it applied, and logs the chain's value at each of its own packets: the oracle
    compares those with the sequential run's, which shows a record skipped, repeated or
    reordered even where the final state cannot (a flow later deleted by its FIN).
    """

    strategy = "scr"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int):
        super().__init__(nf, core, n_cores)
        self.state = nf.new_state()
        self.chain = CHAIN_START
        self.gaps: list[tuple[int, int]] = []  # inclusive ranges of updates never received
        self._unpack_record = nf.record_format.unpack_from
        self._record_size = nf.record_size

    def handle(self, frame: bytes) -> bytes | None:
        try:
            hdr = h.unpack_header(frame)
            if hdr.slot != self.core or hdr.n_cores != self.n_cores:
                raise h.MalformedFrame("wrong_core", f"slot {hdr.slot}/{hdr.n_cores}")
            if hdr.count and hdr.record_size != self._record_size:
                raise h.MalformedFrame("bad_header", f"record size {hdr.record_size}")
            h.check_history(hdr)
            inner = h.PAYLOAD_OFFSET + hdr.count * hdr.record_size
            stop = hdr.flags & h.FLAG_STOP
            pkt = None if stop else parse(frame, inner)
        except h.MalformedFrame as err:
            self.malformed[err.reason] += 1
            return None
        seq = hdr.seq
        if seq <= self.applied:
            # Already applied (a duplicate, or a frame replayed from the past): applying
            # it again would count it twice.
            self.malformed["stale_seq"] += 1
            return None
        self._received(frame, seq - hdr.count, seq, pkt, hdr.timestamp_ns)
        self._fast_forward(frame, seq - hdr.count, seq)
        if stop:
            self.stopped = True
            return None
        verdict = self._process(pkt, hdr.timestamp_ns, seq)
        self.applied = seq
        return self._done(seq, pkt.trace_id, verdict, frame[inner:])

    def _received(self, frame: bytes, first: int, seq: int, pkt, ts: int) -> None:
        """A valid frame arrived, with the records of ``first .. seq-1`` and, unless it is
        a STOP frame, packet ``seq`` (``pkt``): a hook, before anything is applied."""

    def _process(self, pkt, ts: int, seq: int) -> int:
        """Run the NF on this core's own packet (a subclass may also keep what it needs)."""
        verdict, key, new = self.nf.process_traced(self.state, pkt, ts)
        self.chain = chain_step(self.chain, seq, key, new)
        return verdict

    def _done(self, seq: int, trace_id: int, verdict: int, out: bytes) -> bytes | None:
        self.log_chain.append(self.chain)
        return super()._done(seq, trace_id, verdict, out)

    def apply_record(self, seq: int, fields: tuple) -> None:
        """Apply the history record of packet ``seq`` (a fast-forward step)."""
        key, new = self.nf.update(self.state, fields)
        self.chain = chain_step(self.chain, seq, key, new)

    def note_gap(self, first: int) -> None:
        """Updates ``applied+1 .. first-1`` will never come: count and log the range."""
        if first > self.applied + 1:
            self.stats["gap_records"] += first - self.applied - 1
            if len(self.gaps) < MAX_GAPS_LOGGED:
                self.gaps.append((self.applied + 1, first - 1))

    def _fast_forward(self, frame: bytes, first: int, seq: int) -> None:
        """Apply the records of ``first .. seq-1`` not yet applied, oldest first; note
        missing ones."""
        self.note_gap(first)
        apply, unpack, size = self.apply_record, self._unpack_record, self._record_size
        start = max(first, self.applied + 1)  # records before it are in the state already
        offset = h.PAYLOAD_OFFSET + (start - first) * size
        for record_seq in range(start, seq):
            apply(record_seq, unpack(frame, offset))
            offset += size
        self.applied = max(self.applied, seq - 1)

    @property
    def fast_forwarded(self) -> int:
        """History records applied. Derived, not counted in the hot loop: every sequence
        number up to ``applied`` was fast-forwarded, processed here, or lost in a gap."""
        return self.applied + 1 - self.stats["processed"] - self.stats["gap_records"]

    def state_json(self):
        return self.nf.state_to_json(self.state)

    def results(self) -> dict:
        results = super().results()
        results["stats"]["fast_forwarded"] = self.fast_forwarded
        results["gaps"] = self.gaps
        results["chain"] = self.chain
        return results


def unpack_plain_header(frame: bytes, core: int, n_cores: int) -> h.ScrHeader:
    """The SCR header of a frame for a core that expects no history (``lock`` and the store
    strategies); MalformedFrame if it is for another core or carries records."""
    hdr = h.unpack_header(frame)
    if hdr.slot != core or hdr.n_cores != n_cores:
        raise h.MalformedFrame("wrong_core", f"slot {hdr.slot}/{hdr.n_cores}")
    if hdr.count:
        raise h.MalformedFrame("bad_header", f"{hdr.count} history records")
    return hdr


class LockCore(Core):
    """A ``lock`` core: no replica; every transition runs on the shared table, locked."""

    strategy = "lock"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int, table,
                 transfer_work: int = 0):
        super().__init__(nf, core, n_cores)
        if transfer_work < 0:
            raise ValueError("transfer work must be >= 0")
        self.table = table
        self.transfer_work = transfer_work
        # The state's cache line comes over from the core that wrote it last.
        self._transfer = self._pay_transfer if transfer_work else None

    def _pay_transfer(self) -> None:
        rounds = self.transfer_work
        if self.governor is not None:  # in proportion to the governed work
            rounds = self.governor.rounds(rounds * self.governor.calibrated)
        spin(rounds)

    def handle(self, frame: bytes) -> bytes | None:
        try:
            hdr = unpack_plain_header(frame, self.core, self.n_cores)
            stop = hdr.flags & h.FLAG_STOP
            pkt = None if stop else parse(frame, h.PAYLOAD_OFFSET)
        except h.MalformedFrame as err:
            self.malformed[err.reason] += 1
            return None
        if stop:
            self.stopped = True
            return None
        seq = hdr.seq
        if seq <= self.applied:
            self.malformed["stale_seq"] += 1
            return None
        nf = self.nf
        fields = nf.record(pkt, hdr.timestamp_ns)
        try:
            old, new, moved = self.table.transact(
                nf.key(fields), lambda value: nf.apply(value, fields), self.core,
                self._transfer)
        except TableFull:
            # A flood of new keys filled the table's segment: this packet is dropped and
            # counted, as a NIC drops what it has no room for; the core goes on.
            self.malformed["table_full"] += 1
            return None
        self.stats["moved"] += moved
        self.applied = seq
        return self._done(seq, pkt.trace_id, nf.verdict(old, new, fields),
                          frame[h.PAYLOAD_OFFSET:])


class ShardCore(Core):
    """A ``shard`` core: owns the keys the switch's hash sends it, in a private dict."""

    strategy = "shard"

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
            seq, ts = h.unpack_trailer(frame)
            inner = frame[: -h.TRAILER_SIZE]
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


_ETH_P_SCR_BYTES = h.ETH_P_SCR.to_bytes(2, "big")


def run(core: Core, iface: str, rcvbuf: int = SOCKET_BUFFER) -> None:
    """Receive and handle frames until a STOP frame or a stop signal."""
    ethertype = ETH_P_ALL if core.strategy == "shard" else h.ETH_P_SCR
    sock = open_socket(iface, ethertype, rcvbuf)
    drops = DropCounter(sock)
    recv, send, handle, clock = sock.recv, sock.send, core.handle, time.monotonic_ns
    announce_ready()
    try:
        frame = recv(65535)
        core.first_ns = clock()
        core.cpu_first_s = cpu_seconds()
        while True:
            out = handle(frame)
            if out is not None:
                try:
                    send(out)
                except OSError:
                    core.stats["tx_errors"] += 1
            if core.stopped:
                break
            core.last_ns = clock()
            frame = recv(65535)
        core.finish()
    finally:
        core.rx_dropped = drops.read()
        sock.close()


def make_core(strategy: str, nf: NetworkFunction, core: int, n_cores: int,
              table_path: Path | None = None, transfer_work: int = 0,
              store: str | None = None, inflight: int = 32, store_delay_s: float = 0.0,
              log_prefix: Path | None = None, joining: bool = False) -> Core:
    """The core object of ``strategy``; ValueError for a bad combination.

    ``log_prefix`` (scr) turns loss recovery on: the replica logs its records in its ring
    ``<log_prefix>.core<i>`` and fetches lost ones from its peers' rings
    (:mod:`nfs.recovery`; the trial makes the ring files)."""
    if strategy in STORE_STRATEGIES:
        if store is None:
            raise ValueError(f"the {strategy} strategy needs --store (the store's address)")
        from nfs.async_core import StoreCore  # only store cores need asyncio and redis
        from nfs.stores import make_store

        kind = STORE_STRATEGIES[strategy]
        client = make_store(kind.store, nf, store, store_delay_s)
        return StoreCore(kind, nf, core, n_cores, client, inflight)
    if strategy in ("scr", "single"):
        if strategy == "single" and n_cores != 1:
            raise ValueError("the single strategy runs on exactly one core")
        if log_prefix is not None:
            from nfs.recovery import RecoveringReplica

            return RecoveringReplica(nf, core, n_cores, log_prefix, joining=joining)
        return Replica(nf, core, n_cores)
    if log_prefix is not None:
        raise ValueError("loss recovery (--recovery) is for the scr strategy")
    if strategy == "shard":
        return ShardCore(nf, core, n_cores)
    if strategy == "lock":
        if table_path is None:
            raise ValueError("the lock strategy needs --table (the shared state's file)")
        from nfs.shared_state import SharedTable  # only lock cores need it

        table = SharedTable(table_path, nf.key_format, nf.value_format)
        return LockCore(nf, core, n_cores, table, transfer_work)
    raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", required=True, help="this core's interface")
    parser.add_argument("--core", type=int, required=True, help="core index i (0-based)")
    parser.add_argument("--cores", type=int, required=True, help="number of cores N")
    parser.add_argument("--nf", required=True, choices=sorted(NF_CLASSES))
    parser.add_argument("--nf-params", default="{}", help="NF parameters as JSON")
    parser.add_argument("--strategy", default="scr", choices=STRATEGIES)
    parser.add_argument("--table", type=Path, help="shared state file (lock strategy)")
    parser.add_argument("--transfer-work", type=int, default=0,
                        help="lock: spin rounds when a key's state moved from another core")
    parser.add_argument("--store", help="service/remote: the store's HOST:PORT (loopback)")
    parser.add_argument("--inflight", type=int, default=32,
                        help="service/remote: packets in flight per core (async runtime)")
    parser.add_argument("--store-delay-us", type=float, default=0.0,
                        help="service/remote: latency injected before each store query")
    parser.add_argument("--spin-ns", type=float, default=0.0,
                        help="the calibrated cost of a spin round (ns): keep the NF's "
                             "costs at their CPU time as it drifts (0: fixed rounds)")
    parser.add_argument("--rcvbuf", type=int, default=SOCKET_BUFFER,
                        help="receive queue in bytes (the core's RX ring)")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--replicate-to", metavar="HOST:PORT",
                        help="primary-backup: be the primary, replicating to the backup there")
    parser.add_argument("--backup-listen", metavar="HOST:PORT",
                        help="primary-backup: be the backup, taking the primary's log there")
    parser.add_argument("--heartbeat-ms", type=float, default=20.0,
                        help="primary-backup: send a heartbeat frame this often (0: none)")
    parser.add_argument("--recovery", metavar="PREFIX", type=Path,
                        help="scr: log records in the ring <PREFIX>.core<i> (shared memory, "
                             "made by the trial) and fetch lost ones from the peers' rings")
    parser.add_argument("--join", action="store_true",
                        help="scr --recovery: a replacement core, starting from a peer's "
                             "snapshot")
    parser.add_argument("--health-ms", type=float, default=0.0,
                        help="scr: send a heartbeat frame to the controller this often "
                             "(0: none)")
    args = parser.parse_args(argv)
    if not 1 <= args.cores <= h.MAX_CORES:
        parser.error(f"--cores must be in 1..{h.MAX_CORES} (the SCR header's core field)")
    if not 0 <= args.core < args.cores:
        parser.error(f"--core must be in 0..{args.cores - 1}")
    if args.replicate_to or args.backup_listen:
        from nfs import replication  # only primary-backup workers need it

        return replication.main(args)
    if args.rcvbuf < 4096:
        parser.error("--rcvbuf must be >= 4096 bytes")
    if args.inflight < 1 or not 0 <= args.store_delay_us <= 10_000_000:
        parser.error("--inflight must be >= 1 and --store-delay-us in 0..10000000")
    if not 0 <= args.health_ms <= 60_000:
        parser.error("--health-ms must be in 0..60000")
    if args.join and not args.recovery:
        parser.error("--join needs --recovery (a joining core fetches from its peers)")
    try:
        params = json.loads(args.nf_params)
        if not isinstance(params, dict):
            raise ValueError(f"--nf-params must be a JSON object, got {args.nf_params}")
    except ValueError as err:
        parser.exit(2, f"worker: {err}\n")
    beat = None
    try:
        nf = make_nf(args.nf, **params)
        core = make_core(args.strategy, nf, args.core, args.cores, args.table,
                         args.transfer_work, args.store, args.inflight,
                         args.store_delay_us / 1e6, args.recovery, args.join)
        if args.spin_ns:
            core.govern(args.spin_ns)
        check_places(args.out, args.iface)  # after the values: a bad value says so first
        if args.recovery:
            from nfs.recovery import join

            core.serve()  # a replacement may ask for a snapshot at any time
            if args.join:
                join(core)
        if args.health_ms:
            from nfs.replication import CORE, Heartbeat

            beat = Heartbeat(args.iface, CORE, args.health_ms / 1000)
    except (ValueError, OSError) as err:
        parser.exit(2, f"worker: {err}\n")
    runtime = run
    if args.strategy in STORE_STRATEGIES:
        from nfs import async_core

        runtime = async_core.run
    if beat is not None:  # beating from now on: ready (a joining core has its snapshot)
        beat.start()

    def finish() -> None:
        if beat is not None:
            beat.stop()
        core.write_results(args.out)

    return run_until_stopped(lambda: runtime(core, args.iface, args.rcvbuf), finish)


if __name__ == "__main__":
    sys.exit(main())
