"""Lab 7's definition and checks: SCR loss recovery, a replica that fetches the records
its lost frames carried from its peers' rings (``log_fetch.py``).

Checks, in order (each builds on the one before):

1. ``peer_is_final`` on real ring files: a live peer whose horizon is behind, one past the
   record, one stopped, one dead (offline);
2. ``fetch`` against hand-driven peer rings: a record in the next peer's ring, one that a
   peer which is behind logs 50 ms later, records nobody has, peers that are final from
   the start, a peer stuck for good (offline, about 0.5 s);
3. the student's core on the real sequencer with injected loss (``run_offline``: the real
   ``Sequencer``, real rings in a temporary folder, the oracle of a live trial) at 2 and 4
   cores, two loss patterns: strictly equivalent, and every record each replica applies is
   compared with what it must apply, so that the message says which core lacked which
   record, which peer's ring held it and when (offline, about 1 s);
4. a record no core received (its frame and its carriers dropped at the cores' queues):
   every replica must declare it lost, and only it (offline);
5. live, 3 % injected loss with recovery at 2 and 4 cores: strictly equivalent (a run whose
   cores never fetched is named as one without ``--recovery``: the plumbing was changed).

``make run`` brings up 4 cores of ``lab7-scr`` with 5 % injected loss and, unless the
environment says ``RECOVERY=1``, no recovery: the oracle then calls the run consistent
modulo gaps, not equivalent (the README's step 1).

Caveats: the diagnosis of check 3 reads the peers' rings right after each fetch of the
student's returns, so a record "held when the fetch returned" may have been logged a few
microseconds after the fetch looked; the message then still points at the right rule.
The live check relies on the injected loss being the only loss: at 300 pps no core's queue
drops (a queue drop next to an injected one could lose a record at every core, and the
strict claim would fail through no fault of the student's); the seeded draw loses the same
15 frames of the trace in every run.
"""

from __future__ import annotations

import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

from experiments.analysis.offline import run_offline, ts_of
from labs.kit import Check, Grade, Lab, RunSpec, flag_option
from labs.kit.checks import (
    KNOCK_TRACE,
    check_live_equivalent,
    knock_trace,
    sequenced_records,
)
from labs.kit.grading import first_problem
from nfs import make_nf
from nfs.cores.recovery import PeerLog, RecordLog, RecoveringReplica, create_logs, log_path
from nfs.strategies import get as get_strategy
from sequencer.wire.packet import PROTO_TCP, build, parse

STRATEGY_NAME = "lab7-scr"
NF = "knock"
#: Injected loss patterns of the offline check: (loss rate, seed). On the knock trace both
#: lose no record everywhere at 2 or 4 cores (no two neighbours lost at 2 cores), so the
#: strict claim must hold; (0.05, 3) loses 21 frames, two of them 2 apart (75, 77).
LOSS_PATTERNS = ((0.03, 2), (0.05, 3))
LIVE_LOSS = (0.03, 2)  # 15 of the 400 frames
#: Check 4: frames 100 .. 100+N-1 dropped at the cores' queues, so no core gets record 100.
LOST_EVERYWHERE = 100
FETCH_RETURN_S = 5.0  # a fetch of check 2 that takes longer never ends: the check fails


# --- check 1: peer_is_final ---------------------------------------------------------------


class PeerRings:
    """Ring files for ``n`` cores in a temporary folder; peers' rings driven by hand."""

    def __init__(self, n: int):
        self.dir = tempfile.TemporaryDirectory(prefix="lab7-")
        self.prefix = Path(self.dir.name) / "ring"
        self.record_size = make_nf(NF).record_size
        self.paths = create_logs(self.prefix, n, self.record_size, capacity=256)
        self.owners: dict[int, RecordLog] = {}

    def own(self, core: int, horizon: int = -1) -> RecordLog:
        """Core ``core``'s ring, alive (this process holds its lock) at ``horizon``."""
        ring = RecordLog(log_path(self.prefix, core), self.record_size)
        ring.own()
        ring.set_horizon(horizon)
        self.owners[core] = ring
        return ring

    def reader(self, core: int) -> PeerLog:
        return PeerLog(log_path(self.prefix, core), self.record_size)

    def close(self) -> None:
        for ring in self.owners.values():
            ring.close()
        self.dir.cleanup()


def check_peer_is_final(g: Grade) -> None:
    final = g.module.peer_is_final
    rings = PeerRings(2)
    try:
        owner, ring = rings.own(1), rings.reader(1)
        cases = [  # (horizon, stopped, what it is, hi, the answer)
            (-1, False, "alive, has received nothing yet", 0, False),
            (3, False, "alive, horizon 3", 7, False),
            (7, False, "alive, horizon 7", 7, True),
            (9, False, "alive, horizon 9", 7, True),
            (3, True, "alive but stopped (it got its STOP frame), horizon 3", 7, True),
        ]
        for horizon, stopped, what, hi, want in cases:
            owner.set_horizon(horizon)
            if stopped:
                owner.set_stopped()
            got = final(ring, hi)
            if bool(got) != want:
                g.fail(f"peer_is_final(ring, hi={hi}) gave {got} for a peer {what}: "
                       + _final_rule(want, horizon, hi, stopped))
        owner.close()  # the owner dies: the kernel drops its lock
        rings.owners.pop(1)
        if not final(ring, 7):
            g.fail("peer_is_final(ring, hi=7) gave False for a peer that died with its "
                   "horizon at 3: a dead peer (not ring.alive()) never logs anything again")
        ring.close()
    finally:
        rings.close()


def _final_rule(want: bool, horizon: int, hi: int, stopped: bool) -> str:
    if not want:
        return (f"a live peer whose horizon ({horizon}) is behind {hi} may still receive "
                f"a frame that carries a record up to {hi}: it is not final yet")
    if stopped:
        return "a stopped peer (ring.stopped) receives no more frames: it is final"
    return (f"its horizon ({horizon}) reached {hi}: by the history rule it has received "
            f"every frame that could carry a record up to {hi}, so it is final")


# --- check 2: fetch -----------------------------------------------------------------------


class CountingRing:
    """A peer's ring as the student's fetch sees it, counting the records read from it."""

    def __init__(self, ring: PeerLog):
        self.ring = ring
        self.reads = 0

    def get(self, seq: int) -> bytes | None:
        self.reads += 1
        return self.ring.get(seq)

    def __getattr__(self, name: str):
        return getattr(self.ring, name)


def student_class(g: Grade, prefix: Path, n: int) -> type:
    """The class the lab's strategy builds with ``--recovery``, checked to be a recovering
    replica (the plumbing's make_core)."""
    spec = get_strategy(STRATEGY_NAME)
    core = spec.make_core(make_nf(NF), 0, n, spec.core_args(("--recovery", str(prefix))))
    try:
        if not isinstance(core, RecoveringReplica):
            g.fail(f"with --recovery the strategy {STRATEGY_NAME} builds a "
                   f"{type(core).__name__}, not a LogFetchReplica: leave make_core and "
                   "STRATEGY as they were")
        return type(core)
    finally:
        core.close()


def _timed_fetch(g: Grade, core, lo: int, hi: int, hang: str, during=None
                 ) -> tuple[dict, float]:
    """``core.fetch(lo, hi)`` in a thread (``during`` runs alongside it): its answer and
    how long the fetch took; a failure (``hang`` says why it should have returned) if it
    does not return."""
    out: dict = {}

    def target():
        started = time.monotonic()
        try:
            out["found"] = core.fetch(lo, hi)
        except BaseException as err:  # re-raised below, so the student's line is named
            out["error"] = err
        out["took"] = time.monotonic() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    if during is not None:
        during()
    thread.join(FETCH_RETURN_S)
    if thread.is_alive():
        g.fail(f"fetch({lo}, {hi}) did not return within {FETCH_RETURN_S:.0f} s: {hang}")
    if "error" in out:
        raise out["error"]
    found = out["found"]
    if not isinstance(found, dict):
        g.fail(f"fetch({lo}, {hi}) returned a {type(found).__name__}, not a dict of "
               "seq -> record")
    return found, out["took"]


def check_fetch(g: Grade) -> None:
    rings = PeerRings(3)
    core = None
    try:
        cls = student_class(g, rings.prefix, 3)
        core = cls(make_nf(NF), 0, 3, rings.prefix)
        core.fetch_timeout_s = 2.0
        counted = {p: CountingRing(ring) for p, ring in core.peer_logs.items()}
        core.peer_logs = counted  # core.close() still closes them (through the wrapper)
        nf = make_nf(NF)
        record = {s: nf.pack_record(parse(build(src=10 + s, dst=2, proto=PROTO_TCP,
                                                sport=1, dport=7000 + s, trace_id=s)),
                                    ts_of(s)) for s in range(40)}
        # Core 1, the next in the round robin, is past the gap and holds record 5; core 2
        # is alive and behind: 50 ms in, it logs record 7, then raises its horizon past 8.
        peer1, peer2 = rings.own(1, horizon=12), rings.own(2, horizon=3)
        peer1.put(5, record[5])

        def core2_catches_up():
            time.sleep(0.05)
            peer2.put(7, record[7])
            peer2.set_horizon(9)

        found, took = _timed_fetch(
            g, core, 5, 8, "every peer was final 50 ms in (core 1 past seq 8 from the start, "
            "core 2 from then on): stop when nothing is wanted or no peer is pending (TODO 3)",
            during=core2_catches_up)
        where = ("core 1 (the next core, past seq 8: final) held record 5; core 2, alive "
                 "and behind (horizon 3), logged record 7 50 ms in, then passed seq 8; "
                 "nobody had 6 or 8")
        extra = sorted(set(found) - {5, 7})
        if extra:
            g.fail(f"fetch(5, 8) returned records {extra} that no peer's ring held ({where})"
                   ": put in `found` only what ring.get(seq) returned, not None")
        if 5 not in found:
            g.fail(f"fetch(5, 8) did not return record 5, which core 1's ring held ({where})"
                   ": read every wanted seq from every pending peer's ring (TODO 2)")
        if found[5] != record[5]:
            g.fail("fetch(5, 8) returned for seq 5 bytes that are not the record core 1's "
                   "ring held: found[seq] is what ring.get(seq) returned")
        if 7 not in found:
            if not counted[2].reads:
                g.fail(f"fetch(5, 8) never read core 2's ring ({where}): read the wanted "
                       "records from every pending peer's ring, not only the next core's "
                       "(TODO 2)")
            if took < 0.04:
                g.fail(f"fetch(5, 8) gave up on record 7 after {took * 1000:.0f} ms ({where})"
                       ": while a live peer's horizon is behind hi it may still log a "
                       "missing record: sleep `poll` and read its ring again until it is "
                       "final (TODO 3)")
            g.fail(f"fetch(5, 8) waited {took * 1000:.0f} ms but did not return record 7 "
                   f"({where}): on each round read the ring of every peer still pending, "
                   "and decide that a peer is final BEFORE reading its records (TODO 2)")
        if took > 1.0:
            g.fail(f"fetch(5, 8) took {took:.1f} s: every peer was final 50 ms in ({where})"
                   ": take a final peer out of `pending`, and stop when none is pending "
                   "(TODOs 2-3)")
        # Every peer final from the start: core 1 stopped, core 2 dead.
        peer1.set_stopped()
        peer2.close()
        rings.owners.pop(2)
        found, took = _timed_fetch(
            g, core, 20, 21, "core 1 had stopped and core 2 had died: no peer is pending, "
            "so stop (TODO 3)")
        if found or took > 0.5:
            g.fail(f"fetch(20, 21) returned {sorted(found)} after {took * 1000:.0f} ms; "
                   "core 1 had stopped and core 2 had died, and neither ring held a "
                   "record: no peer can ever log them, so the fetch must give up at once "
                   "(TODOs 2-3)")
        # A peer stuck for good: alive, behind, never moving. The fetch must give up at
        # its deadline and count the timeout.
        peer1.close()
        rings.owners.pop(1)
        rings.own(1, horizon=25)
        core.fetch_timeout_s = 0.2
        timeouts = core.stats["fetch_timeouts"]
        found, took = _timed_fetch(
            g, core, 30, 30, "core 1 is alive and stuck at horizon 25 for good, and the "
            "fetch's deadline (fetch_timeout_s = 0.2 s) passed long ago: stop once "
            "time.monotonic() is past `deadline` (TODO 3)")
        if found or took > 1.5:
            g.fail(f"fetch(30, 30) with core 1 alive and stuck at horizon 25 (and a "
                   f"fetch_timeout_s of 0.2 s) took {took:.1f} s: stop once "
                   "time.monotonic() is past `deadline` (TODO 3)")
        if core.stats["fetch_timeouts"] != timeouts + 1:
            g.fail("fetch(30, 30) gave up at its deadline (core 1 alive and stuck) but did "
                   "not count it: self.stats['fetch_timeouts'] += 1 (TODO 3)")
        g.info("fetch reads every peer, waits for the one behind, stops when all are "
               "final or at its deadline")
    finally:
        if core is not None:
            core.close()
        rings.close()


# --- checks 3 and 4: the student's core on the real sequencer, offline ------------------


def fetch_traced(cls: type) -> type:
    """``cls`` logging every record it applies, what each fetch missed and what the peers'
    rings held then, and what its own ring held at the end."""

    class Traced(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.applied_log: list[tuple[int, tuple]] = []
            # seq -> (the fetch's hi, [(peer, its ring held seq, its horizon, alive,
            # stopped)]) when the fetch that missed seq returned
            self.misses: dict[int, tuple[int, list[tuple[int, bool, int, bool, bool]]]] = {}
            self.held_at_end: set[int] = set()

        def handle(self, frame: bytes):
            try:
                return super().handle(frame)
            except BaseException:
                # A crash in the student's code: mark the ring final, so that the other
                # cores do not wait out their fetch timeout on it (run_offline re-raises).
                self.log.set_stopped()
                raise

        def apply_record(self, seq: int, fields: tuple) -> None:
            self.applied_log.append((seq, tuple(fields)))
            super().apply_record(seq, fields)

        def fetch(self, lo: int, hi: int):
            found = super().fetch(lo, hi)
            for seq in range(lo, hi + 1):
                if seq not in found:
                    self.misses[seq] = (hi, [
                        (p, ring.get(seq) is not None, ring.horizon, ring.alive(),
                         ring.stopped) for p, ring in sorted(self.peer_logs.items())])
            return found

        def close(self) -> None:
            with suppress(Exception):  # the ring may be closed already
                self.held_at_end = set(self.log.seqs())
            super().close()

    Traced.__name__ = cls.__name__
    return Traced


def run_student(g: Grade, cores: int, **losses):
    """The student's core, traced, on the knock trace through the real sequencer."""
    frames = knock_trace()
    with tempfile.TemporaryDirectory(prefix="lab7-") as ring_dir:
        prefix = Path(ring_dir) / "offline"  # where run_offline makes the rings
        classes: dict[type, type] = {}

        def make_core(nf, core, n):
            if not classes:
                scratch = Path(ring_dir) / "scratch"
                create_logs(scratch, n, nf.record_size, capacity=16)
                cls = student_class(g, scratch, n)
                classes[cls] = fetch_traced(cls)
            return next(iter(classes.values()))(nf, core, n, prefix)

        run = run_offline(lambda: make_nf(NF), frames, cores, recovery=True,
                          ring_dir=Path(ring_dir), make_core=make_core, **losses)
    return run, sequenced_records(run, NF)


def replica_problem(core, peers: list, records: list[tuple], lost: set[int]) -> str | None:
    """How the records ``core`` applied first differ from what it must apply (every record
    but its own packets' and those in ``lost``, once each, oldest first), in the lab's
    terms; None if they do not."""
    c = core.core
    own = set(core.log_seq)
    seen: set[int] = set()
    prev = -1
    for seq, fields in core.applied_log:
        if seq in seen:
            return (f"core {c} applied the record of seq {seq} twice: each missing record "
                    "is applied once, in note_gap's walk over lo .. hi (TODO 4)")
        if seq < prev:
            return (f"core {c} applied seq {seq} after seq {prev}: apply the fetched records "
                    "oldest first, walking seq = lo .. hi, not in the order the peers "
                    "gave them (TODO 4)")
        if seq in own:
            return (f"core {c} applied the record of seq {seq}, a packet it processed "
                    "itself: its update is in the state already")
        if fields != records[seq]:
            return (f"core {c} applied seq {seq} with fields that are not its record: apply "
                    "self._unpack_record(record), record being what the ring gave for "
                    "that seq (TODO 4)")
        seen.add(seq)
        prev = seq
    declared = {s for lo, hi in core.gaps for s in range(lo, hi + 1)}
    missing = [s for s in range(len(records)) if s not in own | seen | lost]
    for seq in missing:
        if seq not in declared:
            if seq in core.misses:
                return (f"core {c}'s fetch did not find seq {seq}, and the replica went on "
                        "without declaring it lost: a record no peer has goes to "
                        "self.declare_lost(seq), so that its gaps say what it lacks "
                        "(TODO 4)")
            return (f"core {c} never applied seq {seq}, which its fetch found: apply every "
                    "record the fetch found (TODO 4)")
        return lost_record_problem(c, seq, core.misses.get(seq), peers)
    for seq in sorted(declared - lost):
        if seq in seen or seq in own:
            return (f"core {c} declared seq {seq} lost but has its update: declare lost "
                    "only the records the fetch did not find (TODO 4)")
    return None


def lost_record_problem(c: int, seq: int, miss, peers: list) -> str:
    """Why core ``c`` should not have declared ``seq`` lost: which peer had it, when."""
    hi, rings = miss or (seq, [])
    held_then = [p for p, held, *_rest in rings if held]
    if held_then:
        return (f"core {c} declared seq {seq} lost, but core {held_then[0]}'s ring held it "
                "when the fetch returned: the fetch must read every wanted record from "
                "every pending peer's ring (TODO 2)")
    later = {p.core for p in peers if p.core != c and seq in p.held_at_end}
    # A peer that was final then and holds it now fetched it itself later: not the one
    # to wait for. One that was alive and behind may still have logged it from a frame.
    behind = [(p, horizon) for p, _held, horizon, alive, stopped in rings
              if p in later and alive and not stopped and horizon < hi]
    if behind:
        p, horizon = behind[0]
        return (f"core {c} declared seq {seq} lost while core {p} was alive and behind "
                f"(horizon {horizon} < {hi}, the gap's end); core {p} logged it later: "
                "while a pending peer is not final, wait and read its ring again "
                "(TODOs 2-3)")
    if later:
        return (f"core {c} declared seq {seq} lost, but core {min(later)}'s ring held it at "
                "the end: read every pending peer's ring, and wait for those behind "
                "(TODOs 2-3)")
    return (f"core {c} declared seq {seq} lost, and no ring held it at the end: a record "
            "found by a fetch goes into this core's ring too (self.log.put, TODO 4)")


def check_offline_loss(g: Grade) -> None:
    for loss, seed in LOSS_PATTERNS:
        for cores in (2, 4):
            run, records = run_student(g, cores, loss_rate=loss, loss_seed=seed)
            for core in run.cores:
                problem = replica_problem(core, run.cores, records, set())
                if problem:
                    g.fail(f"{problem} ({cores} cores, {loss:.0%} loss, seed {seed}: "
                           f"frames {_some(run.sequencer.lost)} lost)")
                if core.applied != len(records) - 1:
                    g.fail(f"core {core.core} ended at seq {core.applied}, not at the last "
                           f"packet ({len(records) - 1}) ({cores} cores)")
            if not run.result.equivalent:
                g.fail(f"{cores} cores, {loss:.0%} loss: the oracle says: "
                       f"{run.result.problems[0]}")
            recovered = sum(core.stats["recovered"] for core in run.cores)
            g.info(f"{cores} cores, {loss:.0%} loss (seed {seed}): "
                   f"{len(run.sequencer.lost)} frames lost, {recovered} records fetched, "
                   "every replica equivalent")


def check_lost_everywhere(g: Grade) -> None:
    for cores in (2, 4):
        drops = range(LOST_EVERYWHERE, LOST_EVERYWHERE + cores)
        run, records = run_student(g, cores, queue_drops=drops)
        why = (f"frames {drops[0]}..{drops[-1]} were dropped at the cores' queues, so no "
               f"core ever received record {LOST_EVERYWHERE}")
        for core in run.cores:
            problem = replica_problem(core, run.cores, records, {LOST_EVERYWHERE})
            if problem:
                g.fail(f"{problem} ({cores} cores; {why})")
            declared = {s for lo, hi in core.gaps for s in range(lo, hi + 1)}
            if LOST_EVERYWHERE not in declared:
                g.fail(f"core {core.core} did not declare record {LOST_EVERYWHERE} lost "
                       f"({cores} cores; {why}): a record the fetch did not find goes to "
                       "self.declare_lost(seq) (TODO 4)")
        if not run.result.consistent:
            g.fail(f"{cores} cores ({why}): the oracle says: {run.result.problems[0]}")
    g.info(f"record {LOST_EVERYWHERE}, lost everywhere, declared lost at every replica: "
           "consistent modulo that gap")


def _some(seqs, shown: int = 6) -> str:
    seqs = sorted(seqs)
    return ", ".join(map(str, seqs[:shown])) + (", ..." if len(seqs) > shown else "")


# --- check 5: live ------------------------------------------------------------------------


def check_live(g: Grade) -> None:
    loss, seed = LIVE_LOSS

    def diagnose(row: dict, cores: int) -> str:
        problem = first_problem(row)
        if not row["fetches"] and row["gap_records"]:
            return (f"live on {cores} cores with {loss:.0%} loss, the cores never fetched "
                    f"and lack {row['gap_records']} records: they ran without --recovery. "
                    "Leave make_core and STRATEGY (its worker_flags) as they were. The "
                    f"oracle says: {problem}")
        hint = (": a core gave up a record a peer had or was about to log (see "
                "peer_is_final and the wait, TODOs 1-3)" if "another core had it" in problem
                else "")
        return (f"live on {cores} cores with {loss:.0%} loss, the run is not equivalent "
                f"to one core in sequence: {problem}{hint}")

    rows = check_live_equivalent(g, STRATEGY_NAME, NF, (2, 4), diagnose=diagnose,
                                 loss=loss, loss_seed=seed, recovery=True)
    for cores, row in zip((2, 4), rows, strict=True):
        g.info(f"live, {cores} cores: {row['injected_loss']} frames dropped by the "
               f"sequencer, {row['recovered']} records fetched (fetch p50 "
               f"{row['fetch_us_p50']} µs, p99 {row['fetch_us_p99']} µs)")


LAB = Lab(
    number=7, title="Lost packets: fetch the missing records from the peers' logs",
    files=("log_fetch.py",),
    checks=(
        Check("peer_is_final: dead, stopped or past the record (TODO 1)",
              check_peer_is_final),
        Check("fetch reads every peer's ring and waits for a peer that is behind "
              "(TODOs 2-3)", check_fetch),
        Check("offline, 3 % and 5 % loss at 2 and 4 cores: every replica gets every record, "
              "once, oldest first (TODO 4)", check_offline_loss),
        Check("offline: a record no core received is declared lost at every replica "
              "(TODO 4)", check_lost_everywhere),
        Check("live, 3 % loss with recovery at 2 and 4 cores: every replica equals one "
              "core in sequence", check_live, live=True),
    ),
    # make run: 5 % loss, no recovery (RECOVERY=1 in the environment turns it on).
    run=RunSpec(nf=NF, strategy=STRATEGY_NAME, cores=4, packets=KNOCK_TRACE.packets,
                rate_pps=300, calibrated=False,
                trace={"knockers": KNOCK_TRACE.knockers, "attackers": 0,
                       "service_packets": KNOCK_TRACE.service_packets,
                       "seed": KNOCK_TRACE.seed},
                flows=KNOCK_TRACE.flows, config={"loss": 0.05, "loss_seed": 3,
                        "recovery": flag_option("RECOVERY")}),
)
