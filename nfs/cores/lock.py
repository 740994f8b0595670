"""The ``lock`` core: no replica; every transition runs on one shared table, under a lock.

Frames arrive round-robin with an empty history; the state is one
:class:`~nfs.cores.shared_table.SharedTable` in shared memory shared by all cores, and each
packet's transition runs under its key's stripe lock. When the key's state was last written
by another core, the core also pays ``transfer_work`` spin rounds inside the lock: the
cache-line transfer that real shared state costs on a multicore CPU, which separate Python
processes on two CPUs would not show by themselves (see the README's caveats).

Each core counts how long it waited for stripe locks (``lock_wait_us``) and the waits longer
than ``STALL_NS`` (``lock_stalls``, ``lock_stall_us``). A holder keeps its lock for the
critical section only, tens of µs; a wait of milliseconds means the holder was off its
CPU while holding it, which each holder counts too (``held_off_cpu``), and, when the trial
passed it its cgroup's ``cpu.stat``, how many of those its cgroup was throttled in
(``held_throttled``: its quota ran out inside the lock, up to 9 ms with the default quota;
the others were preempted by the scheduler, the machine's CPUs being shared). Real cores
are descheduled neither way, so these stalls are an artifact of the emulation, measured so
that a run can say how much of lock's curve they are.

**Quota-aware locking** (an option, ``quota_ns``/``period_ns``): a core keeps its own CPU
time over any window of one period below its quota (:class:`QuotaWindow`), doing its
packet's stateless work first and then sleeping when the critical section would not fit,
so that the kernel never throttles it inside a lock. Measured here it removes most stalls
but costs more capacity than they did (a core that sleeps often pays more CPU per packet),
so it is off by default; the report measures both (``work_first``, ``quota_waits``).

Caveat: a full table (a flood of new keys) drops the packet, counted as ``table_full``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from nfs.base import NetworkFunction, spin
from nfs.cores.base import Core, unpack_plain_header
from nfs.cores.shared_table import TableFull
from sequencer.wire import header as h
from sequencer.wire.packet import parse

#: A wait for a stripe lock longer than this is a stall: its holder was off its CPU. The
#: longest legitimate wait is a few critical sections (~100 µs each with the default
#: transfer cost) queued on one stripe.
STALL_NS = 1_000_000


def throttle_counter(stat: Path | int) -> Callable[[], int]:
    """A reader of ``nr_throttled`` (how many CFS periods the cgroup was throttled in) from
    a cgroup's ``cpu.stat``, v1 or v2 (read by name): its path, or a descriptor opened for
    this process (a Mininet host's /sys has no cgroup file system, so the trial opens it
    outside and passes it). One ``pread`` per call, ~2 µs; the file stays open for the
    life of the process."""
    fd = stat if isinstance(stat, int) else os.open(stat, os.O_RDONLY)

    def throttles() -> int:
        for line in os.pread(fd, 4096, 0).split(b"\n"):
            if line.startswith(b"nr_throttled "):
                return int(line.split()[1])
        return 0

    return throttles


class QuotaWindow:
    """This process's CPU time over the last quota period, kept below its quota by itself.

    The kernel throttles a cgroup that used its quota within a CFS period, wherever the
    process is: inside a critical section too. A core that never uses more than its quota
    in *any* window of one period's length is never throttled, whatever the kernel's period
    phase (every kernel period is such a window). So before it takes a lock, the core asks
    :meth:`room_ns`: the quota left in the window ending now, from samples of its own
    (wall, CPU) clocks; when the critical section does not fit, it does its stateless work
    first and, if that is not enough, sleeps until old CPU time leaves the window
    (:meth:`wait_for`). The CPU time at the window's start is taken from the last sample
    before it, which overstates what was used: the core errs on the side of waiting.
    """

    def __init__(self, quota_ns: int, period_ns: int):
        if not 0 < quota_ns <= period_ns:
            raise ValueError(f"need 0 < quota ({quota_ns} ns) <= period ({period_ns} ns)")
        self.quota_ns, self.period_ns = quota_ns, period_ns
        self._samples: deque[tuple[int, int]] = deque([(time.monotonic_ns(),
                                                         time.thread_time_ns())])

    def room_ns(self) -> int:
        """The CPU time this process may still use in the window ending now."""
        wall, cpu = time.monotonic_ns(), time.thread_time_ns()
        samples = self._samples
        samples.append((wall, cpu))
        start = wall - self.period_ns
        while len(samples) > 1 and samples[1][0] <= start:
            samples.popleft()  # keep the last sample at or before the window's start
        return self.quota_ns - (cpu - samples[0][1])

    def note(self) -> None:
        """Sample the clocks (after a packet): the window's start is then known closer."""
        self._samples.append((time.monotonic_ns(), time.thread_time_ns()))

    def wait_for(self, need_ns: float) -> int:
        """Sleep until ``need_ns`` of CPU time fits in the window; the ns slept."""
        slept = 0
        while (room := self.room_ns()) < need_ns:
            # The oldest CPU time leaves the window when its sample is a period old.
            due = self._samples[1][0] + self.period_ns if len(self._samples) > 1 else 0
            pause = max(due - time.monotonic_ns(), 50_000)
            if room < -self.quota_ns:  # far over (a clock jump): do not sleep forever
                pause = self.period_ns
            time.sleep(pause / 1e9)
            slept += pause
        return slept


class LockCore(Core):
    """A ``lock`` core: no replica; every transition runs on the shared table, locked."""

    strategy = "lock"

    def __init__(self, nf: NetworkFunction, core: int, n_cores: int, table,
                 transfer_work: int = 0, quota_ns: int = 0, period_ns: int = 0,
                 throttles: Callable[[], int] | None = None):
        super().__init__(nf, core, n_cores)
        if transfer_work < 0:
            raise ValueError("transfer work must be >= 0")
        self.table = table
        self.transfer_work = transfer_work
        # Quota-aware locking (see the module docstring): the core's quota per period and
        # its cgroup's period count. None: take the lock regardless.
        self.window = QuotaWindow(quota_ns, period_ns) if quota_ns else None
        self.throttles = throttles  # the cgroup's throttle count, when the trial passed it
        self.section_ns = 100_000.0  # the critical section's CPU time, a moving average
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
        paid = False
        # A section's estimate may overshoot (an outlier): what never fits is never waited for.
        need = min(1.5 * self.section_ns, 0.9 * self.window.quota_ns) if self.window else 0
        if self.window is not None and self.window.room_ns() < need:
            self._work(seq)  # spend the quota here rather than under the lock
            self.stats["work_first"] += 1
            paid = True
            slept = self.window.wait_for(need)
            self.stats["quota_waits"] += slept > 0
            self.stats["quota_wait_us"] += slept // 1000
        section, wall = time.thread_time_ns(), time.monotonic_ns()
        throttled = self.throttles() if self.throttles is not None else 0
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
        cpu = time.thread_time_ns() - section
        self.section_ns += (cpu - self.section_ns) / 16
        wait = self.table.last_wait_ns
        # Off its CPU while holding the lock (the wall time of the hold beyond its CPU
        # time): every waiter stalls meanwhile. Throttled if its cgroup was, meanwhile.
        if time.monotonic_ns() - wall - wait - cpu > STALL_NS:
            self.stats["held_off_cpu"] += 1
            if self.throttles is not None and self.throttles() != throttled:
                self.stats["held_throttled"] += 1
        self.stats["lock_wait_us"] += wait // 1000
        if wait > STALL_NS:
            self.stats["lock_stalls"] += 1
            self.stats["lock_stall_us"] += wait // 1000
        self.applied = seq
        out = self._done(seq, pkt.trace_id, nf.verdict(old, new, fields),
                         frame[h.PAYLOAD_OFFSET:], paid=paid)
        if self.window is not None:
            self.window.note()
        return out
