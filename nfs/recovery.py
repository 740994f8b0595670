"""SCR loss recovery and rejoin: per-core record logs that the other cores can read.

SCR's history covers a core's own lost packets only as long as the gap is shorter than the
history: a core whose packet ``p`` was lost sees, in its next packet, records from ``p + 1``
on at best, and the records of ``p`` and of the history ``p`` carried are missing. The
paper's remedy, built here:

* every core keeps a bounded **log** of the records it received (:class:`RecordLog`: the
  history records of its frames and the record of its own packet), by sequence number;
* a core that sees a gap larger than its history **fetches** the missing records from the
  other cores' logs (:meth:`RecoveringReplica.fetch`) and applies them, in sequence order,
  before the records of the frame that revealed the gap;
* a record that no core has (its packet and the N-1 packets whose histories carried it
  were all lost) is **skipped and counted** (``lost_everywhere``); the replica's ``gaps``
  name it, so the oracle knows exactly which updates every replica lacks.

The cores of a trial share the NF host's network namespace, so each core serves its log
on that namespace's loopback, at ``127.0.0.1:PEER_BASE_PORT + core`` (:class:`PeerServer`,
a thread that sleeps in ``accept`` and costs the packet loop nothing until asked). One
request per TCP connection, answered and closed:

* ``L lo hi`` -> the records of ``lo .. hi`` the log holds, and the core's **horizon** (the
  highest sequence number it has received) and whether it has stopped;
* ``H`` -> horizon and stopped only;
* ``S`` -> a **snapshot**: the replica's state, the sequence number it is at and the
  records it lacks, taken between two packets (under the replica's lock).

When may a fetching core give up on a record? A peer whose horizon has passed the record
received every frame that could have carried it (histories look back no further than the
peer's previous packet): if its log lacks the record, it never will have it. The fetch
asks again, every ``POLL_S``, the peers whose horizon is still behind, so a busy peer is
waited for (the wait doubles each time, up to ``MAX_POLL_S``: a peer that is behind is
busy); a peer that has stopped or refuses the connection (nobody serves there: it died)
is not asked again in this fetch, but is in the next one (its replacement may serve by
then). A peer that is slow to answer is asked again. Waiting for
horizons cannot deadlock: a core raises its horizon and logs a frame's records *before*
it fetches what the frame revealed missing.

A **replacement core** (``--join``) starts from a peer's snapshot at a known sequence number
(:func:`join`) and then fast-forwards: its first frame reveals the gap since the snapshot,
and it fetches that like any lost record. After a STOP frame a core keeps serving its log
until every live peer has stopped too (:meth:`RecoveringReplica.finish`): a peer may still
need records from it.

Caveats: the log holds ``--log-records`` records (32768 by default, about 13 s at 2500
packets/s); a gap older than every peer's log is lost. While a core fetches, it processes
nothing: its queue fills, and a slow peer (its CPU quota, the GIL its packet loop holds)
makes the wait longer; this is the price of the loss, and it shows in the MLFFR. When the
core count changes, a peer's history may at most once reach back past its previous packet;
the horizon rule then declares a record lost that a frame still queued at that peer
carries (a replica would lack it, and the oracle would say so).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections import Counter

from nfs.base import NetworkFunction
from nfs.worker import Replica
from sequencer import header as h

PEER_HOST = "127.0.0.1"
PEER_BASE_PORT = 7100  # core i's log server: PEER_BASE_PORT + i, in the NF host namespace
DEFAULT_LOG_RECORDS = 1 << 15
FETCH_TIMEOUT_S = 2.0  # give up on a record after this long (the peers that have it died)
LINGER_TIMEOUT_S = 3.0  # after STOP, serve the log at most this long for late peers
POLL_S = 0.002  # the first wait for a peer that is behind; doubled up to MAX_POLL_S
MAX_POLL_S = 0.032
CONNECT_TIMEOUT_S = 1.0
#: A thread asking for the GIL gets it within this; Python's default (5 ms) would make
#: every answer of a busy core's log server wait for its packet loop several times.
SWITCH_INTERVAL_S = 0.0005

_RANGE = struct.Struct("!qq")  # L request: lo, hi
_STATUS = struct.Struct("!qB")  # horizon, stopped
_COUNT = struct.Struct("!I")
_SEQ = struct.Struct("!q")
_SNAPSHOT = struct.Struct("!qII")  # applied, number of gap ranges, number of state entries
_GAP = struct.Struct("!qq")


def peer_port(core: int, base: int = PEER_BASE_PORT) -> int:
    return base + core


class RecordLog:
    """The last ``capacity`` records received, by sequence number.

    Written by the packet loop, read by the log server's thread: each slot is one
    ``(seq, record)`` tuple, stored and read in one step, so a reader never sees a record
    with another packet's sequence number.
    """

    def __init__(self, capacity: int = DEFAULT_LOG_RECORDS):
        if capacity < 1:
            raise ValueError(f"the log must hold >= 1 record, got {capacity}")
        self.capacity = capacity
        self._slots: list[tuple[int, bytes] | None] = [None] * capacity

    def put(self, seq: int, record: bytes) -> None:
        self._slots[seq % self.capacity] = (seq, record)

    def get(self, seq: int) -> bytes | None:
        entry = self._slots[seq % self.capacity]
        return entry[1] if entry is not None and entry[0] == seq else None


# --- the wire protocol (one request per connection) -----------------------------------


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


def ask_records(port: int, lo: int, hi: int, record_size: int
                ) -> tuple[int, bool, dict[int, bytes]]:
    """``(horizon, stopped, {seq: record})``: what the peer on ``port`` logged of lo..hi."""
    answer = _ask(port, b"L" + _RANGE.pack(lo, hi))
    try:
        horizon, stopped = _STATUS.unpack_from(answer)
        (count,) = _COUNT.unpack_from(answer, _STATUS.size)
    except struct.error:
        raise PeerError(f"short answer from port {port}") from None
    entry = _SEQ.size + record_size
    start = _STATUS.size + _COUNT.size
    if len(answer) != start + count * entry:
        raise PeerError(f"answer from port {port} has {len(answer)} bytes, not {count} records")
    records = {}
    for offset in range(start, len(answer), entry):
        (seq,) = _SEQ.unpack_from(answer, offset)
        records[seq] = answer[offset + _SEQ.size:offset + entry]
    return horizon, bool(stopped), records


def ask_status(port: int) -> tuple[int, bool]:
    """``(horizon, stopped)`` of the peer on ``port``."""
    answer = _ask(port, b"H")
    if len(answer) != _STATUS.size:
        raise PeerError(f"short answer from port {port}")
    horizon, stopped = _STATUS.unpack(answer)
    return horizon, bool(stopped)


def encode_snapshot(nf: NetworkFunction, state: dict, applied: int,
                    gaps: list[tuple[int, int]]) -> bytes:
    parts = [_SNAPSHOT.pack(applied, len(gaps), len(state))]
    parts += [_GAP.pack(lo, hi) for lo, hi in gaps]
    parts += [nf.pack_key(k) + nf.pack_value(v) for k, v in state.items()]
    return b"".join(parts)


def decode_snapshot(nf: NetworkFunction, data: bytes
                    ) -> tuple[dict, int, list[tuple[int, int]]]:
    """``(state, applied, gaps)`` of a snapshot; ValueError if ``data`` is not one."""
    try:
        applied, n_gaps, n_items = _SNAPSHOT.unpack_from(data)
    except struct.error:
        raise ValueError("truncated snapshot") from None
    key_size, value_size = nf.key_format.size, nf.value_format.size
    offset = _SNAPSHOT.size + n_gaps * _GAP.size
    if len(data) != offset + n_items * (key_size + value_size):
        raise ValueError(f"snapshot of {len(data)} bytes does not hold {n_items} entries")
    gaps = [_GAP.unpack_from(data, _SNAPSHOT.size + i * _GAP.size) for i in range(n_gaps)]
    state = {}
    for start in range(offset, len(data), key_size + value_size):
        key = nf.unpack_key(data[start:start + key_size])
        state[key] = nf.unpack_value(data[start + key_size:start + key_size + value_size])
    return state, applied, gaps


def ask_snapshot(port: int, nf: NetworkFunction) -> tuple[dict, int, list[tuple[int, int]]]:
    try:
        return decode_snapshot(nf, _ask(port, b"S", timeout=5.0))
    except ValueError as err:
        raise PeerError(f"bad snapshot from port {port}: {err}") from None


# --- the server --------------------------------------------------------------------------


class PeerServer(threading.Thread):
    """Serves one replica's log, status and snapshots on the loopback, one thread."""

    def __init__(self, replica: RecoveringReplica, port: int):
        super().__init__(name=f"peer-server-{port}", daemon=True)
        self.replica = replica
        try:
            self.listener = socket.create_server((PEER_HOST, port), backlog=64)
        except OSError as err:
            raise OSError(err.errno, f"cannot serve the log on {PEER_HOST}:{port}: "
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
                    conn.sendall(self.answer(_read_request(conn)))
                    self.served += 1
                except (OSError, ValueError):
                    self.errors += 1  # a peer gone mid-request, or garbage: not our problem

    def answer(self, request: bytes) -> bytes:
        replica = self.replica
        op = request[:1]
        if op == b"H" and len(request) == 1:
            return _STATUS.pack(replica.horizon, replica.stopped)
        if op == b"L" and len(request) == 1 + _RANGE.size:
            lo, hi = _RANGE.unpack_from(request, 1)
            if not 0 <= hi - lo < replica.log.capacity:
                raise ValueError(f"bad range {lo}..{hi} for a log of {replica.log.capacity}")
            found = []
            for seq in range(lo, hi + 1):
                record = replica.log.get(seq)
                if record is not None:
                    found.append(_SEQ.pack(seq) + record)
            return b"".join([_STATUS.pack(replica.horizon, replica.stopped),
                             _COUNT.pack(len(found)), *found])
        if op == b"S" and len(request) == 1:
            with replica.lock:  # between two packets: state, applied and gaps agree
                return encode_snapshot(replica.nf, replica.state, replica.applied,
                                       list(replica.gaps))
        raise ValueError(f"bad request {request[:8]!r}")

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept (close alone would not, and the port
        # would stay bound); accept then fails and the thread ends.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.join(1.0)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while len(data) <= 1 + _RANGE.size:
        chunk = conn.recv(64)
        if not chunk:
            return data
        data += chunk
    raise ValueError("request too long")


# --- the replica -------------------------------------------------------------------------


class RecoveringReplica(Replica):
    """An SCR replica that logs its records and fetches missing ones from its peers."""

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int,
                 log_records: int = DEFAULT_LOG_RECORDS, base_port: int = PEER_BASE_PORT,
                 fetch_timeout_s: float = FETCH_TIMEOUT_S):
        super().__init__(nf, core, n_cores)
        self.log = RecordLog(log_records)
        self.horizon = -1  # the highest sequence number received (frames, not fetches)
        self.lock = threading.Lock()
        self.base_port = base_port
        self.peers = [c for c in range(n_cores) if c != core]
        self.refused: Counter[int] = Counter()  # per peer: fetches it could not serve
        self.fetch_timeout_s = fetch_timeout_s
        self.fetch_s = 0.0  # wall time spent waiting for peers
        self.server: PeerServer | None = None
        self.joined_at = 0  # a replacement core starts from a snapshot: updates before it

    @property
    def fast_forwarded(self) -> int:
        return super().fast_forwarded - self.joined_at

    def serve(self) -> None:
        """Start serving this core's log (call before taking traffic)."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.server = PeerServer(self, peer_port(self.core, self.base_port))
        self.server.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def handle(self, frame: bytes) -> bytes | None:
        with self.lock:
            return super().handle(frame)

    def _fast_forward(self, frame: bytes, first: int, seq: int) -> None:
        # Log the frame's records and raise the horizon first: a peer may be waiting for
        # them while this core waits for its own missing records.
        size, put = self._record_size, self.log.put
        for i, offset in enumerate(range(h.PAYLOAD_OFFSET, h.PAYLOAD_OFFSET + (seq - first)
                                         * size, size)):
            put(first + i, frame[offset:offset + size])
        self.horizon = max(self.horizon, seq)
        super()._fast_forward(frame, first, seq)

    def _process(self, pkt, ts: int) -> int:
        self.log.put(self.horizon, self.nf.pack_record(pkt, ts))
        return super()._process(pkt, ts)

    def note_gap(self, first: int) -> None:
        """Records ``applied+1 .. first-1`` did not come with the frame: fetch them from
        the peers, apply them in order, count those nobody has."""
        lo, hi = self.applied + 1, first - 1
        if hi < lo:
            return
        found = self.fetch(lo, hi)
        self.stats["recovered"] += len(found)
        update, unpack, state, put = self.nf.update, self._unpack_record, self.state, self.log.put
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
                update(state, unpack(record))
                put(seq, record)
        self.applied = hi

    def fetch(self, lo: int, hi: int) -> dict[int, bytes]:
        """The records of ``lo .. hi`` that any live peer logged (see the module's doc)."""
        started = time.monotonic()
        deadline = started + self.fetch_timeout_s
        self.stats["fetches"] += 1
        found: dict[int, bytes] = {}
        # Every fetch asks every peer: one that refused before may be a replacement by now.
        pending = list(self.peers)
        # The core after this one in the round robin received the lost packet's successor,
        # whose history holds most of what is missing: ask it first.
        pending.sort(key=lambda p: (p - self.core) % self.n_cores)
        poll = POLL_S
        while pending:
            for peer in list(pending):
                wanted = [s for s in range(lo, hi + 1) if s not in found]
                if not wanted:
                    pending = []
                    break
                try:
                    horizon, stopped, records = ask_records(
                        peer_port(peer, self.base_port), wanted[0], wanted[-1],
                        self._record_size)
                except ConnectionRefusedError:
                    self.refused[peer] += 1  # nobody serves there: dead, not replaced yet
                    pending.remove(peer)
                    continue
                except OSError:
                    self.stats["peer_errors"] += 1  # slow or cut short: ask again later
                    continue
                found.update(records)
                if horizon >= hi or stopped:
                    pending.remove(peer)  # it has all of the range it will ever have
            if not pending or len(found) == hi - lo + 1:
                break
            if time.monotonic() > deadline:
                self.stats["fetch_timeouts"] += 1
                break
            # Back off: a peer that is behind is busy, and asking it again costs it CPU.
            time.sleep(poll)
            poll = min(2 * poll, MAX_POLL_S)
        self.fetch_s += time.monotonic() - started
        return found

    def finish(self) -> None:
        """After STOP: serve the log until every live peer has stopped too (or a timeout),
        since a peer still fast-forwarding may need records only this core has."""
        deadline = time.monotonic() + LINGER_TIMEOUT_S
        pending = list(self.peers)
        while pending and time.monotonic() < deadline:
            for peer in list(pending):
                try:
                    _horizon, stopped = ask_status(peer_port(peer, self.base_port))
                except OSError:
                    stopped = True  # gone: nothing to wait for
                if stopped:
                    pending.remove(peer)
            if pending:
                time.sleep(0.01)

    def results(self) -> dict:
        results = super().results()
        results["recovery"] = {
            "horizon": self.horizon,
            "fetch_s": round(self.fetch_s, 4),
            "refused_by": {str(p): n for p, n in sorted(self.refused.items())},
            "served": self.server.served if self.server else 0,
            "serve_errors": self.server.errors if self.server else 0,
            "log_records": self.log.capacity,
            "joined_at": self.joined_at,
        }
        return results


def join(replica: RecoveringReplica, timeout_s: float = 10.0) -> int:
    """Start ``replica`` (a replacement core) from a live peer's snapshot: its state, the
    sequence number it is at and the records it lacks. Returns the donor's core id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for peer in replica.peers:
            with contextlib.suppress(OSError):
                state, applied, gaps = ask_snapshot(peer_port(peer, replica.base_port),
                                                    replica.nf)
                replica.state.update(state)
                replica.applied = replica.horizon = applied
                replica.gaps.extend(tuple(g) for g in gaps)
                replica.joined_at = applied + 1
                return peer
        time.sleep(0.05)
    raise OSError(f"core {replica.core}: no peer gave a snapshot within {timeout_s:.0f} s")
