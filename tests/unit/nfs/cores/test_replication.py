"""Primary-backup by access-order replay (``nfs.cores.replication``) on loopback TCP, no network
namespace and no root: the primary's log keeps the backup equal to the sequential
reference at every sequence number, output commit (nothing forwarded before the backup
acked it, nothing after the backup took over), gaps, the end of the log, a bad peer, the
heartbeat frames and the worker's command line."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

from experiments.workload.traffic import TraceSpec, make_trace
from nfs import make_nf, worker
from nfs.cores import replication as r
from nfs.reference import run_reference
from sequencer.dataplane import parse_address
from sequencer.wire import header as h
from sequencer.wire import heartbeat as hb
from sequencer.wire import pb_log as pb
from sequencer.wire.packet import parse

SPEC = TraceSpec(packets=300, flows=20, skew=1.0, attackers=2, attack_share=0.2, knockers=2,
                 seed=5)
NF_PARAMS = {"ddos": {"threshold": 20}, "knock": {}, "tb": {}, "hh": {}, "conntrack": {}}


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return make_trace(SPEC)


def ts_of(seq: int) -> int:
    return 1_000_000 + 1_500 * seq


def scr_frame(seq: int, inner: bytes) -> bytes:
    """What the shim sends a single core: no history."""
    return h.encode(h.ScrHeader(0, 0, 0, 0, 1, 1, seq, ts_of(seq)), [], inner)


def stop_frame(seq: int) -> bytes:
    return h.encode(h.ScrHeader(h.FLAG_STOP, 0, 0, 0, 1, 1, seq, ts_of(seq)), [])


class BackupThread:
    """A backup's log end served by a select loop in a thread (the worker's loop minus its
    raw socket)."""

    def __init__(self, nf):
        self.backup = r.BackupReplica(nf, 0, 1)
        self.receiver = r.LogReceiver(("127.0.0.1", 0), nf.record_size)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.receiver.address

    def _loop(self) -> None:
        while not self.done.is_set():
            readable, _, _ = select.select(self.receiver.sockets(), [], [], 0.02)
            for sock in readable:
                self.receiver.on_readable(sock, self.backup)

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.receiver.close()


@pytest.fixture
def pair():
    """A ddos primary connected to its backup."""
    nf = make_nf("ddos", threshold=20)
    backup = BackupThread(make_nf("ddos", threshold=20))
    replicator = r.Replicator(backup.address, nf.record_size)
    replicator.connect(5)
    primary = r.PrimaryReplica(nf, 0, 1, replicator)
    yield primary, backup
    replicator.close()
    backup.close()


@pytest.mark.parametrize("name", sorted(NF_PARAMS))
def test_backup_equals_the_reference_at_every_sequence_number(frames, name):
    nf = make_nf(name, **NF_PARAMS[name])
    backup = BackupThread(make_nf(name, **NF_PARAMS[name]))
    replicator = r.Replicator(backup.address, nf.record_size)
    replicator.connect(5)
    primary = r.PrimaryReplica(nf, 0, 1, replicator)
    reference_nf = make_nf(name, **NF_PARAMS[name])
    reference = reference_nf.new_state()
    try:
        for seq, frame in enumerate(frames):
            verdict = reference_nf.process(reference, parse(frame), ts_of(seq))
            out = primary.handle(scr_frame(seq, frame))
            # The ack came back: the backup holds exactly the reference's state now.
            assert backup.backup.applied == seq
            assert nf.state_to_json(backup.backup.state) == nf.state_to_json(reference)
            assert (out == frame) == (verdict == 1)
        assert primary.stats["replicated"] == len(frames)
        assert primary.handle(stop_frame(len(frames))) is None
        assert primary.replicator is None  # the log was ended and closed
        for _ in range(100):  # the END's ack came back: the backup has stopped, or will
            if backup.backup.stopped:
                break
            time.sleep(0.01)
        assert backup.backup.stopped and backup.backup.primary_ended
    finally:
        replicator.close()
        backup.close()
    results = backup.backup.results()
    assert results["role"] == "backup" and results["stats"]["log_applied"] == len(frames)
    assert results["took_over_at"] is None


def test_backup_takes_over_with_a_gap_and_fences_the_old_primary(pair, frames):
    primary, backup = pair
    for seq in range(10):
        primary.handle(scr_frame(seq, frames[seq]))
    # Packets 10..12 were in flight to the dead primary; the backup gets 13 onwards.
    out = backup.backup.handle(scr_frame(13, frames[13]))
    assert out == frames[13] and backup.backup.took_over_at == 13
    assert backup.backup.gaps == [(10, 12)]
    # A primary that was only slow sends packet 10's update now: refused, not forwarded.
    assert primary.handle(scr_frame(10, frames[10])) is None
    assert primary.stats["fenced"] == 1 and backup.backup.stats["log_refused"] == 1
    reference = run_reference(make_nf("ddos", threshold=20),
                              [(parse(frames[s]), ts_of(s)) for s in (*range(10), 13)])
    assert make_nf("ddos").state_to_json(backup.backup.state) == reference.state


def test_log_gap_when_the_primary_lost_packets(pair, frames):
    primary, backup = pair
    for seq in (0, 1, 5, 6):  # 2..4 never reached the primary (its queue was full)
        primary.handle(scr_frame(seq, frames[seq]))
    assert backup.backup.gaps == [(2, 4)] and backup.backup.stats["gap_records"] == 3
    assert primary.gaps == backup.backup.gaps and backup.backup.applied == 6


def test_stale_and_malformed_frames_are_not_replicated(pair, frames):
    primary, backup = pair
    primary.handle(scr_frame(0, frames[0]))
    assert primary.handle(scr_frame(0, frames[0])) is None  # a duplicate
    assert primary.handle(b"\x00" * 10) is None
    assert backup.backup.stats["log_applied"] == 1 and primary.stats["replicated"] == 1


def test_output_commit_primary_forwards_nothing_the_backup_may_lack(frames):
    nf = make_nf("ddos", threshold=10_000)  # every packet passes
    backup = BackupThread(make_nf("ddos", threshold=10_000))
    replicator = r.Replicator(backup.address, nf.record_size, ack_timeout_s=1.0)
    replicator.connect(5)
    primary = r.PrimaryReplica(nf, 0, 1, replicator)
    assert primary.handle(scr_frame(0, frames[0])) is not None
    backup.close()  # the backup dies
    # Its update may or may not have reached the backup: not forwarded; then alone.
    assert primary.handle(scr_frame(1, frames[1])) is None
    assert primary.solo_from == 1 and primary.stats["unreplicated"] == 1
    assert primary.handle(scr_frame(2, frames[2])) is not None
    assert primary.results()["solo_from"] == 1


def test_backup_refuses_a_primary_with_another_record_size():
    backup = BackupThread(make_nf("ddos"))
    try:
        with pytest.raises(r.ReplicationError, match="handshake failed"):
            r.Replicator(backup.address, make_nf("knock").record_size).connect(2)
        assert backup.receiver.stats["protocol_errors"] == 1
        # The backup still takes the right primary afterwards.
        good = r.Replicator(backup.address, make_nf("ddos").record_size)
        good.connect(2)
        assert good.replicate(0, b"\x01\x02\x03\x04") and backup.backup.applied == 0
        good.close()
    finally:
        backup.close()


def test_unknown_message_type_drops_the_connection():
    backup = BackupThread(make_nf("ddos"))
    try:
        with socket.create_connection(backup.address, timeout=2) as sock:
            sock.sendall(pb.HELLO.pack(pb.LOG_MAGIC, pb.LOG_VERSION, 4))
            assert pb.HELLO_REPLY.unpack(sock.recv(64))[2] == -1
            sock.sendall(pb.MESSAGE.pack(9, 0))
            assert sock.recv(64) == b""  # closed by the backup
        assert backup.backup.applied == -1
    finally:
        backup.close()


def test_messages_split_anywhere_are_reassembled():
    backup = BackupThread(make_nf("ddos"))
    stream = (pb.HELLO.pack(pb.LOG_MAGIC, pb.LOG_VERSION, 4)
              + pb.MESSAGE.pack(pb.RECORD, 0) + bytes([198, 18, 0, 1])
              + pb.MESSAGE.pack(pb.RECORD, 1) + bytes([198, 18, 0, 1])
              + pb.MESSAGE.pack(pb.END, 1))
    try:
        with socket.create_connection(backup.address, timeout=2) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in stream:  # one TCP segment per byte
                sock.sendall(bytes([byte]))
                time.sleep(0.001)
            expected = (pb.HELLO_REPLY.size + 3 * pb.ACK.size)
            replies = b""
            while len(replies) < expected:
                replies += sock.recv(64)
        acks = [pb.ACK.unpack_from(replies, pb.HELLO_REPLY.size + i * pb.ACK.size)
                for i in range(3)]
        assert acks == [(pb.APPLIED, 0), (pb.APPLIED, 1), (pb.ENDED, 1)]
        assert backup.backup.state == {(0xC6120001,): (2,)} and backup.backup.stopped
    finally:
        backup.close()


def test_connect_gives_up_with_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    with pytest.raises(r.ReplicationError, match="no backup at 127.0.0.1") as err:
        r.Replicator(("127.0.0.1", port), 4).connect(0.2)
    assert "\n" not in str(err.value)


def test_replicate_checks_the_record_size(pair):
    primary, _backup = pair
    with pytest.raises(ValueError, match="record of 3 bytes"):
        primary.replicator.replicate(0, b"abc")


def test_pb_needs_one_core():
    with pytest.raises(ValueError, match="--cores must be 1"):
        r.PrimaryReplica(make_nf("ddos"), 0, 2, None)
    with pytest.raises(ValueError, match="--cores must be 1"):
        r.BackupReplica(make_nf("ddos"), 1, 2)


# --- heartbeats --------------------------------------------------------------------------


def test_heartbeat_frames_round_trip():
    for role in (hb.PRIMARY, hb.BACKUP):
        frame = hb.heartbeat_frame(role, 41)
        assert len(frame) == hb.HEARTBEAT_FRAME_SIZE
        assert hb.parse_heartbeat(frame) == (role, 41)
        assert frame[12:14] == (0x88B6).to_bytes(2, "big")
        dst = frame[:6]
        assert dst[0] & 1 == 0 and dst[0] & 2  # unicast, locally administered
        assert dst != h.mac_bytes(h.DUMMY_DST_MAC)
        assert frame[6:12] not in {h.mac_bytes(h.slot_mac(s)) for s in range(h.MAX_CORES)}


def test_parse_heartbeat_rejects_other_frames(frames):
    assert hb.parse_heartbeat(frames[0]) is None
    assert hb.parse_heartbeat(scr_frame(0, frames[0])) is None
    assert hb.parse_heartbeat(b"\x00" * 10) is None
    with pytest.raises(ValueError, match="unknown role"):
        hb.heartbeat_frame(7, 0)


# --- command line ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:0", ":80", "h:99999", "h:x"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)


def test_parse_address():
    assert parse_address("127.0.0.1:7651") == ("127.0.0.1", 7651)


@pytest.mark.parametrize(("extra", "message"), [
    (["--replicate-to", "127.0.0.1:1", "--strategy", "scr"], "single strategy"),
    (["--replicate-to", "127.0.0.1:1", "--backup-listen", "127.0.0.1:2",
      "--strategy", "single"], "exclude each other"),
    (["--backup-listen", "nowhere", "--strategy", "single"], "HOST:PORT"),
    (["--backup-listen", "127.0.0.1:1", "--strategy", "single", "--heartbeat-ms", "-1"],
     "--heartbeat-ms"),
])
def test_worker_rejects_bad_pb_arguments(tmp_path, capsys, extra, message):
    argv = ["--iface", "lo", "--core", "0", "--cores", "1", "--nf", "ddos", "--out",
            str(tmp_path), *extra]
    assert worker.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
