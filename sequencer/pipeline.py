"""A parallel software sequencer: one stage stamps, K builders make the SCR frames, in order.

The shim (:mod:`sequencer.shim`) does everything for a packet in one Python process:
parse it, pack its record, build its frame (the dummy header, the SCR header, the last
N-1 records) and send it. ``experiments/bench_sequencer.py`` measures that at ~10 µs of
CPU per packet, most of it parsing and building, which is work that does not need the
packets' order. So this sequencer splits it:

1. **the stamper** (the calling process) receives frames, keeps the well-formed ones
   (:func:`well_formed`, a check at fixed offsets; anything it does not vouch for goes
   through :func:`~sequencer.wire.packet.parse`, and a malformed frame is counted and
   dropped, as in the shim), gives each the next sequence number and the sequencer's
   clock, and hands what it has received (at most ``batch`` frames: whatever queued while
   it was busy, so a lightly loaded pipeline hands frames on one by one) to the builders in
   turn, each batch with the N-1 frames before it (its *tail*);
2. **builder b** (a process of its own) parses its tail and its batch, packs their records
   and builds every frame (:class:`FrameBuilder`: byte for byte what
   :meth:`Sequencer.sequence <sequencer.shim.Sequencer.sequence>` sends); then it waits for
   its turn, a token passed around the builders' ring through pipes, sends its frames on a
   socket of its own and passes the token on. Frames leave in sequence order: a core never
   sees a later packet of its slot before an earlier one.

The end-of-trace marker (an SCR frame with the STOP flag) goes to the next builder in turn
as a batch of its own, which sends one STOP frame per core (:meth:`FrameBuilder.stops`).

The serial work is the stamper's (receive, check, hand over) and the sending (one ``send``
each, taken in turns); everything else spreads over the builders. Its ceiling with K
builders is about ``min(1 / stamper, 1 / send, K / (builder + send))`` packets per second,
each the CPU time of that stage per packet (``experiments/bench_sequencer.py`` measures
them).

A builder that fails a batch counts it (``build_errors``) and still takes its turn; one
that dies breaks the pipeline: the stamper's next hand-over raises :class:`PipelineBroken`.
Builders die with the stamper (``PR_SET_PDEATHSIG``) and :meth:`Pipeline.close` ends them
within 3 s, by handle.

Caveats: only SCR's spray (``scr``, ``single``): no spray commands from the controller, no
injected loss, no RSS++. It writes no ground truth (``sequenced.pcap``): the testbed's trials
use the shim; this sequencer is measured by the benchmark and proven equal to the shim's
frames by ``tests/unit/sequencer/test_pipeline.py``. Each builder re-parses its tail, N-1
frames per batch: at full load batches are long and this is a few per cent; at a light load
(batches of one) a builder parses N frames per packet, which costs CPU but not throughput.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from sequencer.dataplane import ETH_P_ALL, DropCounter, cpu_seconds, open_socket
from sequencer.wire import header as h
from sequencer.wire.packet import parse

#: At most this many frames go to a builder at once (what queued while the stamper worked).
DEFAULT_BATCH = 64
_IPV4 = b"\x08\x00"
_TCP, _UDP = 6, 17
_STOP = "stop"
_END = None
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
CLOSE_TIMEOUT_S = 3.0


def well_formed(frame: bytes) -> bool:
    """True only if :func:`~sequencer.wire.packet.parse` accepts ``frame``: an IPv4 frame
    with no options, carrying a whole UDP header or a TCP header of 20 bytes or more.

    Checked at fixed offsets, without making a packet. False is "not sure", not "malformed":
    the caller asks ``parse`` then (frames with IP options, other protocols, bad ones).
    """
    return (len(frame) >= 42 and frame[12:14] == _IPV4 and frame[14] == 0x45
            and (frame[16] << 8 | frame[17]) >= 20
            and (frame[23] == _UDP
                 or (frame[23] == _TCP and len(frame) >= 54 and frame[46] >= 0x50)))


class FrameBuilder:
    """A builder's work for one NF and core count: SCR frames from stamped packets.

    :meth:`build` and :meth:`stops` send, byte for byte, what
    :class:`~sequencer.shim.Sequencer` sends in a steady round robin over all the cores.
    Made once per builder process (its slot prefixes are precomputed)."""

    def __init__(self, nf, n_cores: int):
        h.check_fits(n_cores, nf.record_size, nf.name)
        self.nf = nf
        self.n = n_cores
        self.size = nf.record_size
        self.prefixes = [h.dummy_ethernet(slot) for slot in range(n_cores)]

    def records(self, frames) -> deque[bytes]:
        """The last n-1 records of ``frames`` ((frame, ts) pairs, oldest first)."""
        pack = self.nf.pack_record
        return deque((pack(parse(f), ts) for f, ts in frames), maxlen=max(self.n - 1, 0))

    def build(self, base_seq: int, tail, batch) -> list[bytes]:
        """The SCR frames of ``batch`` ((frame, ts) pairs: packets ``base_seq ..``), given
        ``tail``, the (frame, ts) pairs of the packets just before them (the last n-1 at
        least, or all since 0)."""
        n, size, prefixes = self.n, self.size, self.prefixes
        pack_header, pack_record = h.SCR_HEADER.pack, self.nf.pack_record
        ring = self.records(tail)
        history = ring.maxlen
        out = []
        for seq, (frame, ts) in enumerate(batch, base_seq):
            slot = seq % n
            records = tuple(ring)  # min(seq, n-1) of them: the history rule's steady state
            out.append(b"".join((
                prefixes[slot],
                pack_header(h.SCR_MAGIC, h.SCR_VERSION, 0, len(records), size, slot, n, n,
                            seq % h.SEQ_MODULUS, ts),
                *records, frame)))
            if history:
                ring.append(pack_record(parse(frame), ts))
        return out

    def stops(self, next_seq: int, tail, ts: int) -> list[bytes]:
        """One STOP frame per core after packet ``next_seq - 1``, each with the records
        since that core's last frame (:meth:`Sequencer.stop_frames
        <sequencer.shim.Sequencer.stop_frames>`)."""
        # In a steady round robin every core's last frame is at most n-1 packets back, so
        # each STOP frame carries the whole ring (the history rule's count is min(ring, n-1)).
        records = list(self.records(tail))
        return [h.encode(h.ScrHeader(h.FLAG_STOP, len(records), self.size, slot, self.n,
                                     self.n, next_seq % h.SEQ_MODULUS, ts), records)
                for slot in range(self.n)]


# --- the processes ---------------------------------------------------------------------


@dataclass
class PipelineStats:
    """What the stamper counted, and each builder's report when it ended."""

    sequenced: int = 0
    stop_markers: int = 0
    rx_dropped: int = 0
    malformed: Counter = field(default_factory=Counter)
    builders: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        sent = sum(b.get("sent", 0) for b in self.builders)
        return {"sequenced": self.sequenced, "stop_markers": self.stop_markers,
                "rx_dropped": self.rx_dropped, "malformed": dict(self.malformed),
                "malformed_total": sum(self.malformed.values()), "forwarded": sent,
                "tx_errors": sum(b.get("tx_errors", 0) for b in self.builders),
                "builders": self.builders, "stamper_cpu_s": cpu_seconds(),
                "cpu_s": round(cpu_seconds() + sum(b.get("cpu_s", 0.0)
                                                   for b in self.builders), 3)}


def _die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent (the stamper) dies, however
    it dies: a builder must never outlive its pipeline (Linux's PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the stamper's close() still ends its builders


def _builder(index: int, nf, n_cores: int, out_iface: str, batches, token_in: int,
             token_out: int, report) -> None:
    """Builder ``index``: build each batch, send it in turn, until the end marker.

    A job is ``(kind, first sequence number, tail, payload)``: the batch's (frame, ts)
    pairs, or for a STOP job the sequencer's timestamp. Whatever happens to a batch, the
    builder takes its turn and passes the token on, so one bad batch (counted as
    ``build_errors``) never stops the others."""
    _die_with_parent()
    # Ctrl-C in a terminal reaches the whole process group: the stamper ends the builders
    # (an end marker, then a report), so that a batch is never cut in half.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    counts = Counter()
    tx = None
    try:
        frames = FrameBuilder(nf, n_cores)
        tx = open_socket(out_iface, None)
        send = tx.send
        while (job := batches.recv()) is not _END:
            kind, seq, tail, payload = job
            try:
                out = (frames.stops(seq, tail, payload) if kind == _STOP
                       else frames.build(seq, tail, payload))
            except Exception:  # noqa: BLE001 - counted; the ring must go on
                out = []
                counts["build_errors"] += 1
            if not os.read(token_in, 1):  # the ring is broken: the stamper is gone
                break
            try:
                for frame in out:
                    try:
                        send(frame)
                        counts["sent"] += 1
                    except OSError:
                        counts["tx_errors"] += 1
            finally:
                os.write(token_out, b"t")
            counts["batches"] += 1
    except (EOFError, OSError) as err:  # the stamper went away, or the socket failed
        counts["error"] = f"{type(err).__name__}: {err}"
    finally:
        if tx is not None:
            tx.close()
        report.send({"builder": index, **counts, "cpu_s": cpu_seconds()})


class PipelineBroken(RuntimeError):
    """A builder died: the pipeline cannot go on (its frames would stop or reorder)."""


class Pipeline:
    """The stamper and its K builder processes (started on :meth:`start`, ended on
    :meth:`close`, which collects their reports)."""

    def __init__(self, nf, n_cores: int, builders: int, out_iface: str,
                 batch: int = DEFAULT_BATCH):
        if builders < 1:
            raise ValueError(f"builders must be >= 1, not {builders}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, not {batch}")
        h.check_fits(n_cores, nf.record_size, nf.name)  # here, not in every builder
        self.nf, self.n, self.k, self.batch = nf, n_cores, builders, batch
        self.out_iface = out_iface
        self.stats = PipelineStats()
        self.tail: deque = deque(maxlen=max(n_cores - 1, 0))
        self.stop_pending = False  # the end marker came in the batch being taken
        self._turn = 0
        self._conns = []
        self._reports = []
        self._procs = []

    def start(self) -> None:
        """Fork the builders and give builder 0 the token."""
        ctx = multiprocessing.get_context("fork")
        tokens = [os.pipe() for _ in range(self.k)]
        children_ends = []
        for i in range(self.k):
            receive, send = ctx.Pipe(duplex=False)
            report_in, report_out = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_builder, daemon=True, name=f"builder{i}", args=(
                i, self.nf, self.n, self.out_iface, receive, tokens[i][0],
                tokens[(i + 1) % self.k][1], report_out))
            proc.start()
            self._procs.append(proc)
            self._conns.append(send)
            self._reports.append(report_in)
            children_ends += [receive, report_out]
        os.write(tokens[0][1], b"t")  # builder 0 sends first
        # The builders hold their own copies: closed here, a builder that dies leaves its
        # job pipe with no reader, and the stamper's next hand-over fails (EPIPE) instead
        # of blocking forever.
        for end in children_ends:
            end.close()
        for a, b in tokens:
            os.close(a)
            os.close(b)

    def hand_over(self, kind: str, base_seq: int, payload) -> None:
        """The next builder in turn gets the job; PipelineBroken if it is gone."""
        turn = self._turn
        try:
            self._conns[turn].send((kind, base_seq, list(self.tail), payload))
        except OSError as err:
            raise PipelineBroken(f"builder {turn} is gone ({err.strerror or err}): "
                                 f"its report says why") from None
        self._turn = (turn + 1) % self.k

    def accept(self, frame: bytes) -> bool:
        """Whether ``frame`` gets a sequence number (else it was counted as malformed, or
        it is the end marker: ``self.stop_pending`` then)."""
        if well_formed(frame):
            return True
        try:
            parse(frame)
            return True
        except h.MalformedFrame as err:
            if frame[12:14] == _SCR_TYPE and _is_stop(frame):
                self.stop_pending = True
            else:
                self.stats.malformed[err.reason] += 1
            return False

    def run(self, in_iface: str, on_ready=None) -> None:
        """The stamper's loop, until stopped (``StopRequested`` from a signal);
        ``on_ready()`` once its socket is bound."""
        rx = open_socket(in_iface, ETH_P_ALL)
        drops = DropCounter(rx)
        if on_ready is not None:
            on_ready()
        recv, clock, accept = rx.recv, time.monotonic_ns, self.accept
        limit = self.batch
        try:
            while True:
                batch = []
                frame = recv(65535)  # wait for one, then take whatever else queued
                while True:
                    if accept(frame):
                        batch.append((frame, clock()))
                    if self.stop_pending or len(batch) >= limit:
                        break
                    try:
                        frame = recv(65535, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                # A stop signal must not land inside a hand-over: half a message would
                # leave its builder reading garbage. Held off, it comes right after.
                with _signals_held():
                    if batch:
                        self.hand_over("batch", self.stats.sequenced, batch)
                        self.stats.sequenced += len(batch)
                        self.tail.extend(batch)
                    if self.stop_pending:
                        self.stop_pending = False
                        self.stats.stop_markers += 1
                        self.hand_over(_STOP, self.stats.sequenced, clock())
        finally:
            self.stats.rx_dropped = drops.read()
            rx.close()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """End the builders (after what they were given) and collect their reports, all
        within ``timeout`` (the testbed SIGKILLs a process that takes 5 s to stop); a
        builder that did not report by then is killed, by its handle, and said so."""
        for conn in self._conns:
            try:
                conn.send(_END)
            except OSError:
                pass  # that builder is gone already
        deadline = time.monotonic() + timeout
        for i, (proc, report) in enumerate(zip(self._procs, self._reports, strict=True)):
            left = max(deadline - time.monotonic(), 0.0)
            if report.poll(left):
                self.stats.builders.append(report.recv())
            else:
                self.stats.builders.append({"builder": i, "error": "no report in time"})
            proc.join(max(deadline - time.monotonic(), 0.0))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in [*self._conns, *self._reports]:
            conn.close()
        self._conns, self._reports, self._procs = [], [], []


@contextlib.contextmanager
def _signals_held():
    """Hold off SIGTERM and SIGINT; a signal that came meanwhile is delivered on exit."""
    held = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_SCR_TYPE = h.ETH_P_SCR.to_bytes(2, "big")


def _is_stop(frame: bytes) -> bool:
    try:
        return bool(h.unpack_header(frame).flags & h.FLAG_STOP)
    except h.MalformedFrame:
        return False
