"""SCR loss recovery and rejoin: per-core record logs in shared memory, readable by every core.

SCR's history covers a core's own lost packets only as long as the gap is shorter than the
history: a core whose packet ``p`` was lost sees, in its next packet, records from ``p + 1``
on at best, and the records of ``p`` and of the history ``p`` carried are missing. The
paper's remedy, built here:

* every core keeps a bounded **log** of the records it received (:class:`RecordLog`: the
  history records of its frames and the record of its own packet), by sequence number, in
  a ring in shared memory (one file per core, ``<prefix>.core<i>``, made by the trial in
  ``/dev/shm`` before the cores start, removed after the run);
* a core that sees a gap larger than its history **fetches** the missing records by reading
  the other cores' rings (:meth:`RecoveringReplica.fetch`) and applies them, in sequence
  order, before the records of the frame that revealed the gap. A read costs microseconds
  and no CPU of the peer: it never waits for a peer's CPU quota or its GIL;
* a record that no core has (its packet and every packet whose history carried it were
  all lost) is **skipped and counted** (``lost_everywhere``); the replica's ``gaps`` name it,
  and the oracle checks each such gap against the ground truth.

A ring file (its layout: :mod:`sequencer.wire.peer_log`) is a 64-byte header (magic,
version, record size, capacity, the owner's **horizon**: the highest sequence number it has
received, and whether it has stopped), then ``capacity`` slots of ``| seq (i64) | record |``,
slot ``seq % capacity``. The owner writes a
slot as a seqlock does (sequence number -1, the record, then its sequence number) and a
reader checks the sequence number before and after reading the record, so a reader never
takes a record of another packet. The owner holds an exclusive ``flock`` on its file for as
long as it lives; the kernel drops it when the process dies, however it dies, so a reader
tells a dead owner from a busy one without asking it (:meth:`PeerLog.alive`). A dead
core's ring stays readable: its records are not lost with it.

When may a fetching core give up on a record? A peer whose horizon has passed the record
received every frame that could have carried it: by the history rule
(``sequencer.wire.header.expected_count``) a frame carries only records newer than the previous
frame sent to the same core. If its ring lacks the record, it never will have it. The same
holds for a peer that stopped or died. The fetch reads the rings of the peers whose horizon
is still behind again, with a short back-off, until each is final or ``--fetch-timeout``
passes. Waiting for horizons cannot deadlock: a core raises its horizon and logs a frame's
records *before* it fetches what the frame revealed missing, so the core with the lowest
horizon never waits.

A **replacement core** (``--join``) starts from a peer's snapshot at a known sequence number
(:func:`join`; the snapshot, encoded by :mod:`sequencer.wire.peer_log`, still travels over a
socket on the NF host's loopback, at ``127.0.0.1:PEER_BASE_PORT + core``, served by a thread
of the donor between two packets)
and then fast-forwards: its first frame reveals the gap since the snapshot, and it fetches
that like any lost record. It takes over the dead core's ring file: the dead core's records
stay there until the ring wraps over them.

Caveats: a ring holds ``--log-records`` records (65536 by default, about 25 s at 2500
packets/s); a gap older than every ring is lost (and the oracle says so). While a core
waits for a peer that is behind, it processes nothing: its queue fills. The horizon and
the slots are written with plain stores to shared memory, which is safe on x86's ordered
stores; a weaker memory model would need fences that Python cannot issue.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import socket
import sys
import threading
import time
from array import array
from collections.abc import Iterable
from pathlib import Path

from nfs.base import NetworkFunction
from nfs.cores.replica import Replica
from sequencer.wire import header as h
from sequencer.wire.peer_log import (
    EMPTY_SLOT,
    HORIZON_OFFSET,
    RING_HEADER_SIZE,
    SLOT_SEQ,
    SNAPSHOT_REQUEST,
    STOPPED_OFFSET,
    decode_snapshot,
    empty_slot,
    encode_snapshot,
    pack_ring_header,
    slot_size,
    unpack_ring_header,
)

PEER_HOST = "127.0.0.1"
PEER_BASE_PORT = 7100  # core i's snapshot server: PEER_BASE_PORT + i, in the NF host namespace
DEFAULT_LOG_RECORDS = 1 << 16
#: Give up on a record after this long: a peer that is alive but gets no frame (stuck). The
#: oracle fails a run where that lost a record some core had, so it is long.
FETCH_TIMEOUT_S = 5.0
POLL_S = 0.0002  # the first wait for a peer that is behind; doubled up to MAX_POLL_S
MAX_POLL_S = 0.001
CONNECT_TIMEOUT_S = 1.0
OWNER_TIMEOUT_S = 2.0  # a ring's lock is free within this, or another live core owns it
#: A thread asking for the GIL gets it within this; Python's default (5 ms) would make a
#: snapshot request wait for a busy core's packet loop several times.
SWITCH_INTERVAL_S = 0.0005
MAX_FETCH_SAMPLES = 100_000


def peer_port(core: int, base: int = PEER_BASE_PORT) -> int:
    return base + core


def log_path(prefix: str | Path, core: int) -> Path:
    """Core ``core``'s ring file under ``prefix`` (``<prefix>.core<i>``)."""
    return Path(f"{prefix}.core{core}")


def create_logs(prefix: str | Path, n_cores: int, record_size: int,
                capacity: int = DEFAULT_LOG_RECORDS) -> list[Path]:
    """Make the ring files of ``n_cores`` cores (empty, horizon -1); their paths. The
    caller removes them (:func:`remove_logs`) after the run."""
    if capacity < 1:
        raise ValueError(f"a log must hold >= 1 record, got {capacity}")
    if not 0 < record_size <= h.MAX_RECORD_SIZE:
        raise ValueError(f"record size must be in 1..{h.MAX_RECORD_SIZE}, got {record_size}")
    paths: list[Path] = []
    header, empty = pack_ring_header(record_size, capacity), empty_slot(record_size)
    try:
        for core in range(n_cores):
            path = log_path(prefix, core)
            paths.append(path)
            with open(path, "wb") as f:
                f.write(header)
                f.write(empty * capacity)
    except BaseException:
        remove_logs(paths)  # nothing half made is left behind
        raise
    return paths


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Ascending ``seqs`` as inclusive ``[lo, hi]`` runs (a compact form for results)."""
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return runs


def remove_logs(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class _Ring:
    """A ring file mapped into this process (the owner's or a reader's view)."""

    def __init__(self, path: Path, record_size: int):
        try:
            self.fd = os.open(path, os.O_RDWR)
        except OSError as err:
            raise OSError(err.errno, f"cannot open the record log {path}: "
                                     f"{err.strerror}") from None
        self.mem = None
        try:
            self.mem = mmap.mmap(self.fd, 0)
            try:
                size, capacity = unpack_ring_header(self.mem)
            except ValueError:
                size = None
            if size != record_size:
                raise ValueError(f"{path} is not a record log of {record_size}-byte records")
        except (OSError, ValueError):
            if self.mem is not None:
                self.mem.close()
            os.close(self.fd)
            raise
        self.path = path
        self.capacity = capacity
        self.record_size = record_size
        self.slot_size = slot_size(record_size)

    def get(self, seq: int) -> bytes | None:
        """The record of ``seq``, if this ring holds it (read as a seqlock reader)."""
        mem, offset = self.mem, RING_HEADER_SIZE + (seq % self.capacity) * self.slot_size
        if SLOT_SEQ.unpack_from(mem, offset)[0] != seq:
            return None
        record = mem[offset + SLOT_SEQ.size:offset + self.slot_size]
        return record if SLOT_SEQ.unpack_from(mem, offset)[0] == seq else None

    def seqs(self) -> list[int]:
        """Every sequence number this ring holds, in ascending order."""
        mem, unpack = self.mem, SLOT_SEQ.unpack_from
        held = (unpack(mem, RING_HEADER_SIZE + i * self.slot_size)[0] for i in range(self.capacity))
        return sorted(s for s in held if s >= 0)

    @property
    def horizon(self) -> int:
        return SLOT_SEQ.unpack_from(self.mem, HORIZON_OFFSET)[0]

    @property
    def stopped(self) -> bool:
        return bool(self.mem[STOPPED_OFFSET])

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self.mem.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class RecordLog(_Ring):
    """This core's own ring: it writes records, its horizon and its stop mark, and holds the
    file's lock while it lives (from :meth:`own` on: until then, readers take the ring as
    its previous owner left it, final)."""

    def own(self) -> None:
        """Take the ring over: from now on readers wait for this core's horizon."""
        # A reader testing whether the previous owner died holds the lock for microseconds;
        # a live owner holds it for good (two cores on one ring: a harness bug).
        deadline = time.monotonic() + OWNER_TIMEOUT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OSError(f"the record log {self.path} belongs to a live core") \
                        from None
                time.sleep(0.001)
        self.mem[STOPPED_OFFSET] = 0

    def put(self, seq: int, record: bytes) -> None:
        mem, offset = self.mem, RING_HEADER_SIZE + (seq % self.capacity) * self.slot_size
        SLOT_SEQ.pack_into(mem, offset, EMPTY_SLOT)  # a reader now sees no record here...
        mem[offset + SLOT_SEQ.size:offset + self.slot_size] = record
        SLOT_SEQ.pack_into(mem, offset, seq)  # ...until it is whole

    def set_horizon(self, seq: int) -> None:
        SLOT_SEQ.pack_into(self.mem, HORIZON_OFFSET, seq)

    def set_stopped(self) -> None:
        self.mem[STOPPED_OFFSET] = 1


class PeerLog(_Ring):
    """A peer's ring, read only."""

    def alive(self) -> bool:
        """Whether the ring's owner is alive: it holds the file's lock while it lives."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False


# --- snapshots (a replacement core's start), over a socket -------------------------------


class PeerError(OSError):
    """A peer's answer was cut short or malformed."""


def _ask(port: int, request: bytes, timeout: float = CONNECT_TIMEOUT_S) -> bytes:
    """Send ``request`` to the core serving on ``port``; its whole answer."""
    with socket.create_connection((PEER_HOST, port), timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def ask_snapshot(port: int, nf: NetworkFunction
                 ) -> tuple[dict, int, int, list[tuple[int, int]]]:
    try:
        return decode_snapshot(nf, _ask(port, SNAPSHOT_REQUEST, timeout=5.0))
    except ValueError as err:
        raise PeerError(f"bad snapshot from port {port}: {err}") from None


class SnapshotServer(threading.Thread):
    """Serves one replica's snapshots on the loopback, one thread that sleeps in ``accept``
    and costs the packet loop nothing until asked."""

    def __init__(self, replica: RecoveringReplica, port: int):
        super().__init__(name=f"snapshot-server-{port}", daemon=True)
        self.replica = replica
        try:
            self.listener = socket.create_server((PEER_HOST, port), backlog=8)
        except OSError as err:
            raise OSError(err.errno, f"cannot serve snapshots on {PEER_HOST}:{port}: "
                                     f"{err.strerror}") from None
        self.served = 0
        self.errors = 0

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    conn.settimeout(CONNECT_TIMEOUT_S)
                    conn.sendall(self.answer(conn.recv(8)))
                    self.served += 1
                except (OSError, ValueError):
                    self.errors += 1  # a peer gone mid-request, or garbage: not our problem

    def answer(self, request: bytes) -> bytes:
        if request != SNAPSHOT_REQUEST:
            raise ValueError(f"bad request {request[:8]!r}")
        replica = self.replica
        with replica.lock:  # between two packets: state, applied, chain and gaps agree
            return encode_snapshot(replica.nf, replica.state, replica.applied, replica.chain,
                                   list(replica.gaps))

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept (close alone would not, and the port
        # would stay bound); accept then fails and the thread ends.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.join(1.0)


# --- the replica -------------------------------------------------------------------------


class RecoveringReplica(Replica):
    """An SCR replica that logs its records and fetches missing ones from its peers' logs."""

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int, log_prefix: str | Path,
                 base_port: int = PEER_BASE_PORT, fetch_timeout_s: float = FETCH_TIMEOUT_S,
                 joining: bool = False):
        super().__init__(nf, core, n_cores)
        self.server: SnapshotServer | None = None
        self.joining = joining
        self.log = RecordLog(log_path(log_prefix, core), nf.record_size)
        self.peer_logs: dict[int, PeerLog] = {}
        try:
            for c in range(n_cores):
                if c != core:
                    self.peer_logs[c] = PeerLog(log_path(log_prefix, c), nf.record_size)
            if not joining:
                self.log.own()
        except BaseException:
            self.close()
            raise
        # The highest sequence number received (frames, not fetches). A replacement leaves
        # the ring's horizon as the dead core left it until its first frame: it must not
        # claim records it has in its snapshotted state but not in its ring.
        self.horizon = -1
        self.lock = threading.Lock()
        self.base_port = base_port
        self.peers = sorted(self.peer_logs)
        self.fetch_timeout_s = fetch_timeout_s
        self.fetch_s = 0.0  # wall time spent waiting for peers
        self.fetch_us = array("d")  # every fetch's wall time, for its percentiles
        self.joined_at = 0  # a replacement core starts from a snapshot: updates before it

    @property
    def fast_forwarded(self) -> int:
        return super().fast_forwarded - self.joined_at

    def start(self) -> None:
        """Serve snapshots (a replacement may ask at any time); a replacement core first
        starts from a peer's snapshot (:func:`join`)."""
        self.serve()
        if self.joining:
            join(self)

    def serve(self) -> None:
        """Start serving snapshots (call before taking traffic)."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.server = SnapshotServer(self, peer_port(self.core, self.base_port))
        self.server.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for ring in (self.log, *self.peer_logs.values()):
            ring.close()  # the kernel drops the ring's lock with its last descriptor

    def handle(self, frame: bytes) -> bytes | None:
        with self.lock:
            return super().handle(frame)

    def _raise_horizon(self, seq: int) -> None:
        if seq > self.horizon:
            self.horizon = seq
            self.log.set_horizon(seq)

    def _received(self, frame: bytes, first: int, seq: int, pkt, ts: int) -> None:
        # Log every record the frame brings, its own packet's too, and only then raise the
        # horizon: a peer that sees the horizon past a record takes this ring's answer as
        # final, and may be waiting for these records while this core waits for its own
        # missing ones.
        size, put = self._record_size, self.log.put
        offset = h.PAYLOAD_OFFSET
        for record_seq in range(first, seq):
            put(record_seq, frame[offset:offset + size])
            offset += size
        if pkt is not None:
            put(seq, self.nf.pack_record(pkt, ts))
        self._raise_horizon(seq)

    def note_gap(self, first: int) -> None:
        """Records ``applied+1 .. first-1`` did not come with the frame: fetch them from
        the peers, apply them in order, count those nobody has."""
        lo, hi = self.applied + 1, first - 1
        if hi < lo:
            return
        if hi - lo >= self.log.capacity:
            # Older than any ring holds (or a frame from a far future): lost, unasked.
            oldest = hi - self.log.capacity + 1
            self.applied = lo - 1
            super().note_gap(oldest)
            self.stats["lost_everywhere"] += oldest - lo
            lo = oldest
        found = self.fetch(lo, hi)
        self.stats["recovered"] += len(found)
        unpack, put = self._unpack_record, self.log.put
        missing_from = None
        for seq in range(lo, hi + 2):
            record = found.get(seq) if seq <= hi else None
            if record is None and seq <= hi:
                if missing_from is None:
                    missing_from = seq
                continue
            if missing_from is not None:  # a run of records nobody has ends here
                self.applied = missing_from - 1
                super().note_gap(seq)
                self.stats["lost_everywhere"] += seq - missing_from
                missing_from = None
            if seq <= hi:
                self.apply_record(seq, unpack(record))
                put(seq, record)
        self.applied = hi

    def fetch(self, lo: int, hi: int) -> dict[int, bytes]:
        """The records of ``lo .. hi`` that any peer logged (see the module's doc)."""
        started = time.monotonic()
        deadline = started + self.fetch_timeout_s
        self.stats["fetches"] += 1
        found: dict[int, bytes] = {}
        wanted = list(range(lo, hi + 1))
        # The core after this one in the round robin received the lost packet's successor,
        # whose history holds most of what is missing: read its ring first.
        pending = sorted(self.peers, key=lambda p: (p - self.core) % self.n_cores)
        poll = POLL_S
        while True:
            for peer in list(pending):
                ring = self.peer_logs[peer]
                # Status first, then records: a peer logs a frame's records before it
                # raises its horizon, so records read after a final status are all it has.
                final = not ring.alive() or ring.stopped or ring.horizon >= hi
                for seq in wanted:
                    record = ring.get(seq)
                    if record is not None:
                        found[seq] = record
                wanted = [s for s in wanted if s not in found]
                if final:
                    pending.remove(peer)
                if not wanted:
                    break
            if not wanted or not pending:
                break
            if time.monotonic() > deadline:
                self.stats["fetch_timeouts"] += 1
                break
            time.sleep(poll)  # a peer that is behind is busy: let it run
            poll = min(2 * poll, MAX_POLL_S)
        took = time.monotonic() - started
        self.fetch_s += took
        if len(self.fetch_us) < MAX_FETCH_SAMPLES:
            self.fetch_us.append(took * 1e6)
        return found

    def finish(self) -> None:
        """After STOP: mark the ring final, so that no peer waits for this core."""
        self.log.set_stopped()

    def results(self) -> dict:
        results = super().results()
        results["recovery"] = {
            "horizon": self.horizon,
            "fetch_s": round(self.fetch_s, 4),
            "fetch_us": [round(t, 1) for t in self.fetch_us],
            "snapshots_served": self.server.served if self.server else 0,
            "log_records": self.log.capacity,
            "joined_at": self.joined_at,
        }
        return results


def join(replica: RecoveringReplica, timeout_s: float = 10.0) -> int:
    """Start ``replica`` (a replacement core, made with ``joining=True``) from a live peer's
    snapshot: its state, the sequence number it is at, its transition chain and the records
    it lacks; then it takes its ring over. Returns the donor's core id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for peer in replica.peers:
            with contextlib.suppress(OSError):
                state, applied, chain, gaps = ask_snapshot(
                    peer_port(peer, replica.base_port), replica.nf)
                replica.state.update(state)
                replica.applied = applied
                replica.chain = chain
                replica.gaps.extend(tuple(g) for g in gaps)
                replica.joined_at = applied + 1
                # Only now does its ring come alive: a peer that waited on it before would
                # have waited on the donor's snapshot, and the donor on that peer.
                replica.log.own()
                return peer
        time.sleep(0.05)
    raise OSError(f"core {replica.core}: no peer gave a snapshot within {timeout_s:.0f} s")
