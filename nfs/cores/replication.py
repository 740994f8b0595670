"""Primary-backup NF instances by access-order replay, and the heartbeats that tell the
controller which instance is alive.

The primary is a ``single`` core (one private replica, every packet through the shim). For
each packet it processes it sends the packet's history record, with its sequence number,
to the backup over TCP (loopback of the NF host) and waits for the backup's ack before it
forwards the packet: **output commit**. The backup applies the records with ``nf.update``
in exactly the order the primary applied them, so after record ``seq`` its state is the
primary's state after packet ``seq``, and nothing the outside world saw from the primary
can be missing from it. The backup also reads its own core port; the controller sends it
traffic only after a failover, and from then on it processes packets as the primary did
(a frame whose sequence number it already holds is stale and dropped; the packets lost in
flight with the primary become a gap in its state, as for any SCR replica).

The log travels on one TCP connection; its wire format (hello, records, END, acks) is
:mod:`sequencer.wire.pb_log`'s.

Heartbeats: each instance sends a heartbeat frame (:mod:`sequencer.wire.heartbeat`) out of
its core port every ``interval`` from a daemon thread, to a unicast MAC that no interface
owns; the controller's pipeline sends them to the controller, which moves the traffic to
the backup when the active instance's heartbeats stop (``controller.dispatch``, mode
``pb``).

Run: the worker does, with ``--replicate-to HOST:PORT`` (primary) or ``--backup-listen
HOST:PORT`` (backup); see :func:`main`.

Caveats: one blocking round trip per packet (no batching): fine at trial rates of a few
thousand packets per second, and it puts the backup's latency into the primary's. If the
backup's connection breaks, the primary carries on alone, unreplicated (``solo_from``),
rather than stop forwarding: there is no second backup to protect. A heartbeat proves the
process is alive, not that its packet loop is: a worker stuck in a loop keeps beating.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import time
from pathlib import Path

from nfs import make_nf, parse_nf_params
from nfs.base import NetworkFunction
from nfs.cores.base import run
from nfs.cores.heartbeat import BACKUP, PRIMARY, Heartbeat
from nfs.cores.replica import Replica
from sequencer.dataplane import (
    SOCKET_BUFFER,
    DropCounter,
    announce_ready,
    open_socket,
    parse_address,
    run_until_stopped,
)
from sequencer.wire import header as h
from sequencer.wire.pb_log import (
    ACK,
    APPLIED,
    ENDED,
    HELLO,
    HELLO_REPLY,
    MESSAGE,
    RECORD,
    REFUSED,
    ReplicationError,
    message_size,
    pack_ack,
    pack_end,
    pack_hello,
    pack_hello_reply,
    pack_record,
    unpack_ack,
    unpack_hello,
    unpack_hello_reply,
    unpack_message,
)

__all__ = ["BackupReplica", "LogReceiver", "PrimaryReplica", "ReplicationError", "Replicator",
           "main", "run_backup"]

CONNECT_RETRY_S = 0.05
CONNECT_TIMEOUT_S = 20.0  # the primary waits this long for its backup to listen
ACK_TIMEOUT_S = 2.0


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ReplicationError("the peer closed the log connection")
        data += chunk
    return bytes(data)


# --- the primary's end ----------------------------------------------------------------


class Replicator:
    """The primary's end of the log: one record out, one ack back, per packet."""

    def __init__(self, address: tuple[str, int], record_size: int,
                 ack_timeout_s: float = ACK_TIMEOUT_S):
        if not 0 < record_size < 1 << 16:
            raise ValueError(f"record size must be in 1..65535, got {record_size}")
        self.address = address
        self.record_size = record_size
        self.ack_timeout_s = ack_timeout_s
        self.sock: socket.socket | None = None
        self.backup_applied = -1  # the backup's position when it answered the hello

    def connect(self, timeout_s: float) -> None:
        """Connect (retrying while the backup is not listening yet) and say hello."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                sock = socket.create_connection(self.address, timeout=self.ack_timeout_s)
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise ReplicationError(f"no backup at {self.address[0]}:{self.address[1]}:"
                                           f" {err}") from None
                time.sleep(CONNECT_RETRY_S)
        try:
            # One small message per packet: Nagle would hold each for the previous ack.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(pack_hello(self.record_size))
            applied = unpack_hello_reply(_recv_exact(sock, HELLO_REPLY.size))
        except (OSError, ReplicationError) as err:
            sock.close()
            raise ReplicationError(f"log handshake failed: {err}") from None
        self.sock = sock
        self.backup_applied = applied

    def _exchange(self, message: bytes, seq: int) -> int:
        if self.sock is None:
            raise ReplicationError("not connected")
        try:
            self.sock.sendall(message)
            status, acked = unpack_ack(_recv_exact(self.sock, ACK.size))
        except OSError as err:  # a timeout too: a backup that does not answer is gone
            raise ReplicationError(f"log connection failed: {err}") from None
        if acked != seq:
            raise ReplicationError(f"ack {status}/{acked} for seq {seq}")
        return status

    def replicate(self, seq: int, record: bytes) -> bool:
        """Send ``record`` of packet ``seq``; True once the backup applied it, False if it
        refused it (it has taken over). ReplicationError if the connection fails."""
        if len(record) != self.record_size:
            raise ValueError(f"record of {len(record)} bytes, expected {self.record_size}")
        return self._exchange(pack_record(seq, record), seq) == APPLIED

    def end(self, seq: int) -> None:
        """Tell the backup that the primary stopped normally after ``seq``."""
        self._exchange(pack_end(seq), seq)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class PrimaryReplica(Replica):
    """A ``single`` core that forwards a packet only once the backup holds its update."""

    strategy = "single"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int,
                 replicator: Replicator | None):
        if n_cores != 1:
            raise ValueError("primary-backup runs the single strategy: --cores must be 1")
        super().__init__(nf, core, n_cores)
        self.replicator = replicator
        self.solo_from: int | None = None  # first seq not replicated, after the backup failed
        self._record = b""  # the history record of the packet processed last

    def handle(self, frame: bytes) -> bytes | None:
        processed = self.stats["processed"]
        out = super().handle(frame)
        if self.replicator is None:
            return out
        if self.stopped:
            self._end()
            return None
        if self.stats["processed"] == processed:
            return out  # malformed or stale: the state did not change
        try:
            applied = self.replicator.replicate(self.applied, self._record)
        except ReplicationError as err:
            # The backup may or may not hold this packet's update: do not forward it, and
            # carry on alone (see the module's caveats).
            self._go_solo(err)
            return None
        if not applied:
            self.stats["fenced"] += 1  # the backup serves the traffic now; stay silent
            return None
        self.stats["replicated"] += 1
        return out

    def _process(self, pkt, ts: int, seq: int) -> int:
        # Keep the packet's history record for the log (a single core's frames carry
        # none), from the packet ``handle`` already parsed.
        self._record = self.nf.pack_record(pkt, ts)
        return super()._process(pkt, ts, seq)

    def _end(self) -> None:
        try:
            self.replicator.end(self.applied)
        except ReplicationError as err:
            print(f"primary: could not end the log: {err}", file=sys.stderr)
        self.replicator.close()
        self.replicator = None

    def _go_solo(self, err: Exception) -> None:
        print(f"primary: backup lost at seq {self.applied}, going on alone: {err}",
              file=sys.stderr)
        self.stats["unreplicated"] += 1
        self.solo_from = self.applied
        self.replicator.close()
        self.replicator = None

    def results(self) -> dict:
        return {**super().results(), "role": "primary", "solo_from": self.solo_from}


# --- the backup's end -----------------------------------------------------------------


class BackupReplica(Replica):
    """A replica fed by the primary's log until it gets traffic of its own."""

    strategy = "single"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int):
        if n_cores != 1:
            raise ValueError("primary-backup runs the single strategy: --cores must be 1")
        super().__init__(nf, core, n_cores)
        self.name = "backup"
        self.log_last = -1  # last seq the log offered
        self.took_over_at: int | None = None  # seq of the first packet it processed
        self.primary_ended = False

    def apply_log(self, seq: int, record: bytes) -> bool:
        """Apply the primary's record for ``seq``; False (refused) if already past it."""
        self.log_last = max(self.log_last, seq)
        if seq <= self.applied:
            self.stats["log_refused"] += 1
            return False
        self.note_gap(seq)  # the primary never got the packets before it either
        self.apply_record(seq, self._unpack_record(record))
        self.applied = seq
        self.stats["log_applied"] += 1
        return True

    def handle(self, frame: bytes) -> bytes | None:
        processed = self.stats["processed"]
        out = super().handle(frame)
        if self.took_over_at is None and self.stats["processed"] > processed:
            self.took_over_at = self.applied
        return out

    def end_of_log(self, seq: int) -> None:
        """The primary stopped normally: so does its backup."""
        self.primary_ended = True
        self.stopped = True

    def results(self) -> dict:
        return {**super().results(), "role": "backup", "log_last": self.log_last,
                "took_over_at": self.took_over_at, "primary_ended": self.primary_ended}


class LogReceiver:
    """The backup's end of the log, for a ``select`` loop: listens, accepts one primary at
    a time, decodes its messages and acks each after applying it."""

    def __init__(self, address: tuple[str, int], record_size: int):
        self.record_size = record_size
        self.listener = socket.create_server(address, backlog=1)
        self.conn: socket.socket | None = None
        self.buffer = bytearray()
        self.greeted = False
        self.stats = {"connections": 0, "disconnects": 0, "protocol_errors": 0}

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()[:2]

    def sockets(self) -> list[socket.socket]:
        return [self.listener] + ([self.conn] if self.conn is not None else [])

    def on_readable(self, sock: socket.socket, backup: BackupReplica) -> None:
        if sock is self.listener:
            conn, _ = self.listener.accept()
            if self.conn is not None:  # one primary at a time
                conn.close()
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn, self.buffer, self.greeted = conn, bytearray(), False
            self.stats["connections"] += 1
            return
        try:
            data = sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self._drop()
            self.stats["disconnects"] += 1
            return
        self.buffer += data
        try:
            acks = self._consume(backup)
            if acks:
                sock.sendall(acks)
        except (ReplicationError, OSError) as err:
            print(f"backup: log connection dropped: {err}", file=sys.stderr)
            self.stats["protocol_errors"] += isinstance(err, ReplicationError)
            self._drop()

    def _consume(self, backup: BackupReplica) -> bytes:
        """Apply every whole message in the buffer; the acks to send back."""
        acks = bytearray()
        buf, offset = self.buffer, 0
        if not self.greeted:
            if len(buf) < HELLO.size:
                return b""
            size = unpack_hello(buf)
            if size != self.record_size:
                raise ReplicationError(f"bad hello: record size {size} (expected "
                                       f"{self.record_size})")
            acks += pack_hello_reply(backup.applied)
            offset, self.greeted = HELLO.size, True
        while len(buf) - offset >= MESSAGE.size:
            kind, seq = unpack_message(buf, offset)
            end = offset + message_size(kind, self.record_size)
            if len(buf) < end:
                break
            if kind == RECORD:
                ok = backup.apply_log(seq, bytes(buf[offset + MESSAGE.size:end]))
                acks += pack_ack(APPLIED if ok else REFUSED, seq)
            else:  # END
                backup.end_of_log(seq)
                acks += pack_ack(ENDED, seq)
            offset = end
        del buf[:offset]
        return bytes(acks)

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self._drop()
        self.listener.close()


def run_backup(backup: BackupReplica, iface: str, receiver: LogReceiver,
               rcvbuf: int = SOCKET_BUFFER) -> None:
    """The backup's loop: the primary's log and its own core port, in one thread (so the
    state has one writer), until a STOP frame, the primary's end, or a stop signal."""
    sock = open_socket(iface, h.ETH_P_SCR, rcvbuf)
    drops = DropCounter(sock)
    clock = time.monotonic_ns
    announce_ready()
    try:
        while not backup.stopped:
            # The log first: a record the primary sent before its last packet arrived here
            # must be applied (or refused) before that packet is handled.
            readable, _, _ = select.select([*receiver.sockets(), sock], [], [])
            for ready in readable:
                if ready is sock:
                    frame = sock.recv(65535)
                    now = clock()
                    backup.first_ns = backup.first_ns or now
                    out = backup.handle(frame)
                    if out is not None:
                        try:
                            sock.send(out)
                        except OSError:
                            backup.stats["tx_errors"] += 1
                    backup.last_ns = now
                else:
                    receiver.on_readable(ready, backup)
                if backup.stopped:
                    break
    finally:
        backup.rx_dropped = drops.read()
        sock.close()
        receiver.close()


# --- the worker's primary-backup roles ------------------------------------------------


def main(args: argparse.Namespace) -> int:
    """Run a worker as the primary (``args.replicate_to``) or the backup
    (``args.backup_listen``); called by ``nfs.worker.main`` with its parsed arguments."""
    try:
        if args.replicate_to and args.backup_listen:
            raise ValueError("--replicate-to and --backup-listen exclude each other")
        if args.strategy != "single":
            raise ValueError("primary-backup runs the single strategy (--strategy single)")
        if args.rcvbuf < 4096:
            raise ValueError("--rcvbuf must be >= 4096 bytes")
        if not args.heartbeat_ms >= 0:
            raise ValueError("--heartbeat-ms must be >= 0")
        nf = make_nf(args.nf, **parse_nf_params(args.nf_params))
        address = parse_address(args.replicate_to or args.backup_listen)
        if args.backup_listen:
            core: Replica = BackupReplica(nf, args.core, args.cores)
            receiver = LogReceiver(address, nf.record_size)

            def loop() -> None:
                run_backup(core, args.iface, receiver, args.rcvbuf)
        else:
            replicator = Replicator(address, nf.record_size)
            core = PrimaryReplica(nf, args.core, args.cores, replicator)
            replicator.connect(CONNECT_TIMEOUT_S)

            def loop() -> None:
                run(core, args.iface, args.rcvbuf)  # the plain loop: handle() replicates
        beat = Heartbeat(args.iface, BACKUP if args.backup_listen else PRIMARY,
                         args.heartbeat_ms / 1000) if args.heartbeat_ms else None
    except (ValueError, OSError, ReplicationError) as err:
        print(f"worker: {err}", file=sys.stderr)
        return 2
    if beat is not None:
        beat.start()

    def finish() -> None:
        if beat is not None:
            beat.stop()
        core.write_results(Path(args.out))

    return run_until_stopped(loop, finish)
