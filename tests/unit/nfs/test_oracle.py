"""The oracle tested by mutation: each check in ``nfs.oracle`` fails on the bug it exists for.

A correctness check that cannot fail proves nothing. These tests run the real
``Sequencer`` and real cores in one process (``experiments.analysis.offline.run_offline``), inject
one known bug at a time, by subclassing a ``Replica`` or the ``Sequencer`` here and
overriding the smallest method that carries the bug (library code stays as it is), and
assert that ``check_run`` finds it:

* the control: unmutated runs of every NF at 1, 2 and 4 cores are equivalent, consistent
  and raise no problem, and so is a mutant whose "mutation" is the identity;
* a sequencer that sends N-2 history records instead of N-1, honest about its spray (the
  cores refuse the frames: unexplained losses), lying about it in the header (the cores
  take the short history: the history rule catches it), and lying in its ground truth too
  (the gaps the cores declare are not supported);
* a replica that skips a record and declares it lost (an unsupported gap), or skips one
  silently, including a record whose loss no final state and no verdict shows (the
  transition chain does);
* fast-forward bugs: newest record first, stopping one record early, starting one record
  late, applying the newest record twice;
* recovery: a lossy run with recovery is strictly equivalent, a replica whose fetch gives up
  at once is not consistent;
* queue drops are consistent but not equivalent, and a processed frame missing from its
  core's log is an unexplained loss, even when the queue dropped another;
* a flipped verdict is named by core and sequence number.

Every mutation runs on 4 cores, so each frame carries 3 history records. A per-core fault
(a skipped record, a lost log entry, a flipped verdict) hits core ``BUGGY`` only, next to
correct replicas; a fast-forward bug in the code runs on every core. The whole file runs in
a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from experiments.analysis.offline import OfflineRun, run_offline, ts_of
from experiments.workload.traffic import TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from nfs.base import DROP, PASS, NetworkFunction
from nfs.cores.base import Core
from nfs.cores.recovery import RecoveringReplica
from nfs.cores.replica import Replica
from nfs.heavy_hitter import HeavyHitterDetector
from nfs.oracle import OracleResult
from nfs.reference import run_reference
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire.packet import TCP_FIN, parse

SPEC = TraceSpec(packets=400, flows=20, skew=1.0, attackers=2, attack_share=0.2, knockers=2,
                 seed=4)
#: Small thresholds: both verdicts occur often, so a wrong state shows in verdicts too.
NF_PARAMS = {"ddos": {"threshold": 20}, "hh": {"threshold": 400}}
NFS = list(NF_CLASSES)
N = 4  # cores of every mutation run
BUGGY = 1  # the core a per-core fault hits
K = 10  # a per-core fault hits the K-th record (or packet) of its kind: fixed, not chosen


def nf_for(name: str) -> NetworkFunction:
    return make_nf(name, **NF_PARAMS.get(name, {}))


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return make_trace(SPEC)


def run(name: str, frames: list[bytes], n_cores: int = N, **kwargs) -> OfflineRun:
    return run_offline(lambda: nf_for(name), frames, n_cores, **kwargs)


def on_core(cls: type[Replica], core: int = BUGGY, **kwargs) -> Callable:
    """A ``make_core`` that builds ``cls(nf, core, n, **kwargs)`` for ``core`` and a correct
    ``Replica`` for every other core."""
    def make(nf: NetworkFunction, c: int, n: int) -> Core:
        return cls(nf, c, n, **kwargs) if c == core else Replica(nf, c, n)
    return make


def final_state(name: str, out: OfflineRun) -> object:
    """The sequential run's final state over every sequenced packet."""
    return run_reference(nf_for(name), out.truth.packets).state


def assert_caught(result: OracleResult) -> None:
    assert not result.equivalent, result.problems
    assert not result.consistent, result.problems
    assert result.problems


def assert_ran_to_the_end(out: OfflineRun) -> None:
    # A mutant whose thread died of an exception would be "caught" as unexplained losses,
    # for the wrong reason (the bench does not re-raise a core thread's exception).
    assert all(core.stopped for core in out.cores)
    assert not any(core.malformed for core in out.cores)


# --- mutants: replicas ---------------------------------------------------------------------


class Skipper(Replica):
    """Does not apply one record it fast-forwards: the ``nth`` one, or the one of ``seq``.
    With ``declare`` it declares that record lost (a gap), else it says nothing."""

    def __init__(self, nf, core, n_cores, *, nth: int | None = None, seq: int | None = None,
                 declare: bool = False):
        super().__init__(nf, core, n_cores)
        self.nth, self.victim, self.declare = nth, seq, declare
        self.fast_forwards = 0
        self.skipped: int | None = None

    def apply_record(self, seq: int, fields: tuple) -> None:
        self.fast_forwards += 1
        if self.fast_forwards == self.nth or seq == self.victim:
            self.skipped = seq
            if self.declare:
                self.gaps.append((seq, seq))
                self.stats["gap_records"] += 1
            return
        super().apply_record(seq, fields)


class FastForwardOrder(Replica):
    """``Replica._fast_forward`` with the records applied in the order ``order`` gives; as
    it stands (oldest first, each once) it is the correct fast-forward."""

    def order(self, start: int, seq: int) -> Iterable[int]:
        return range(start, seq)

    def _fast_forward(self, frame: bytes, first: int, seq: int) -> None:
        self.note_gap(first)
        start = max(first, self.applied + 1)
        for record_seq in self.order(start, seq):
            offset = h.PAYLOAD_OFFSET + (record_seq - first) * self._record_size
            self.apply_record(record_seq, self._unpack_record(frame, offset))
        self.applied = max(self.applied, seq - 1)


class NewestFirst(FastForwardOrder):
    def order(self, start, seq):
        return reversed(range(start, seq))


class StopsEarly(FastForwardOrder):
    """Never applies the newest record, yet claims ``applied = seq - 1``."""

    def order(self, start, seq):
        return range(start, seq - 1)


class StartsLate(FastForwardOrder):
    """Never applies the oldest record it has not applied yet."""

    def order(self, start, seq):
        return range(start + 1, seq)


class NewestTwice(FastForwardOrder):
    def order(self, start, seq):
        return [*range(start, seq), seq - 1] if start < seq else []


class Unlogged(Replica):
    """Processes its K-th own packet but leaves it out of its log."""

    unlogged: int | None = None

    def _done(self, seq, trace_id, verdict, out):
        forwarded = super()._done(seq, trace_id, verdict, out)
        if self.unlogged is None and len(self.log_seq) == K:
            self.unlogged = seq
            for log in (self.log_seq, self.log_trace, self.log_verdict, self.log_chain,
                        self.log_ns):
                log.pop()
        return forwarded


class FlipsVerdict(Replica):
    """Logs (and acts on) the opposite verdict for its K-th own packet."""

    def _done(self, seq, trace_id, verdict, out):
        if len(self.log_seq) == K - 1:
            self.flipped = seq
            verdict = DROP if verdict == PASS else PASS
        return super()._done(seq, trace_id, verdict, out)


class BogusGap(Replica):
    """Applies every record, but at its K-th own packet declares the record of the packet
    before it lost (a bookkeeping bug: the state is right, the report is not)."""

    def _done(self, seq, trace_id, verdict, out):
        if len(self.log_seq) == K - 1:
            self.gaps.append((seq - 1, seq - 1))
            self.stats["gap_records"] += 1
        return super()._done(seq, trace_id, verdict, out)


# --- mutants: the sequencer ----------------------------------------------------------------


class ShortHistory(Sequencer):
    """Sends N-2 history records instead of N-1: the oldest record of every frame (and STOP
    frame) is left out. Its header still tells the truth about the spray."""

    def _history(self, core: int, seq: int) -> tuple[bytes, ...]:
        return super()._history(core, seq)[1:]


def _claim_spray(frame: bytes) -> bytes:
    """``frame`` with a header claiming the smallest spray its history satisfies
    (``count + 1``), so that ``check_history`` lets the short history through."""
    hdr = h.unpack_header(frame)
    lie = hdr._replace(spray=min(hdr.spray, hdr.count + 1))
    return frame[:h.SCR_OFFSET] + h.pack_header(lie) + frame[h.PAYLOAD_OFFSET:]


class ShortHistoryLyingSpray(ShortHistory):
    """Sends N-2 records and lies in the header's spray so the cores accept them."""

    def sequence(self, frame, ts):
        slot, out = super().sequence(frame, ts)
        return slot, None if out is None else _claim_spray(out)

    def stop_frames(self, ts):
        return [_claim_spray(stop) for stop in super().stop_frames(ts)]


class ShortHistoryLyingTruth(ShortHistoryLyingSpray):
    """As above, and its ground truth claims the records it left out were sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cut: list[bool] = []  # per _history call: whether a record was left out

    def _history(self, core, seq):
        full = Sequencer._history(self, core, seq)
        self._cut.append(bool(full))
        return full[1:]

    def _record(self, frame, trace_id, ts, core, history):
        super()._record(frame, trace_id, ts, core, history + self._cut[-1])

    def stop_frames(self, ts):
        before = len(self._cut)
        stops = super().stop_frames(ts)
        for stop, cut in zip(self.stops_sent[-len(stops):], self._cut[before:], strict=True):
            stop["history"] += cut
        return stops


# --- the control ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_cores", [1, 2, 4])
@pytest.mark.parametrize("name", NFS)
def test_an_unmutated_run_is_equivalent(name, n_cores, frames):
    out = run(name, frames, n_cores)
    assert out.result.equivalent and out.result.consistent
    assert out.result.problems == []
    assert out.result.strict.packets_checked == len(frames)


@pytest.mark.parametrize("name", NFS)
def test_the_mutants_fast_forward_unmutated_is_equivalent(name, frames):
    # The fast-forward mutants below share this copy of Replica._fast_forward: unmutated,
    # it must pass, or their failures would prove nothing about the oracle.
    out = run(name, frames, make_core=FastForwardOrder)
    assert out.result.equivalent and out.result.consistent, out.result.problems


# --- the sequencer sends N-2 history records ----------------------------------------------


@pytest.mark.parametrize("name", NFS)
def test_a_short_history_with_an_honest_header_is_refused_and_caught(name, frames):
    out = run(name, frames, sequencer=ShortHistory(nf_for(name), N))
    assert_caught(out.result)
    assert sum(core.malformed["short_history"] for core in out.cores) > 0
    assert out.result.protocol_errors  # the sequencer broke the history rule
    assert out.result.unexplained_losses  # and the cores did not process its frames
    assert any("history rule asks for 3" in p for p in out.result.problems)


@pytest.mark.parametrize("name", NFS)
def test_a_short_history_with_a_lying_spray_is_caught(name, frames):
    out = run(name, frames, sequencer=ShortHistoryLyingSpray(nf_for(name), N))
    assert_ran_to_the_end(out)  # the lie worked: no core refused a frame
    assert all(core.gaps for core in out.cores)
    assert_caught(out.result)
    # The gaps are genuine (no frame carried those records), so the history rule, checked
    # against the ground truth, is what catches the sequencer.
    assert out.result.protocol_errors and not out.result.unsupported_gaps


@pytest.mark.parametrize("name", NFS)
def test_a_short_history_hidden_from_the_ground_truth_is_caught(name, frames):
    out = run(name, frames, sequencer=ShortHistoryLyingTruth(nf_for(name), N))
    assert_ran_to_the_end(out)
    assert out.result.protocol_errors == []  # the ground truth claims the rule was kept...
    assert out.result.unsupported_gaps  # ...so the records the cores lack are unexplained
    assert_caught(out.result)


# --- a replica skips a record --------------------------------------------------------------


@pytest.mark.parametrize("name", NFS)
def test_a_skipped_record_declared_lost_is_an_unsupported_gap(name, frames):
    out = run(name, frames, make_core=on_core(Skipper, nth=K, declare=True))
    skipped = out.cores[BUGGY].skipped
    assert out.cores[BUGGY].gaps == [(skipped, skipped)]
    assert not out.result.consistent and not out.result.equivalent
    assert any(p.startswith(f"core {BUGGY} declares records {skipped}..{skipped} lost")
               for p in out.result.problems), out.result.problems
    # Without the record the replica equals sequential processing minus it: the gap's
    # support alone fails the run.
    assert out.result.lenient.equivalent


@pytest.mark.parametrize("name", NFS)
def test_a_silently_skipped_record_is_caught(name, frames):
    out = run(name, frames, make_core=on_core(Skipper, nth=K))
    assert out.cores[BUGGY].skipped is not None and not out.cores[BUGGY].gaps
    assert_ran_to_the_end(out)
    assert_caught(out.result)
    assert out.result.strict.chain_mismatches and out.result.lenient.chain_mismatches


def invisible_record(name: str, frames: list[bytes], core: int) -> int | None:
    """The first record that ``core`` fast-forwards (a packet sprayed to another core, in
    the steady round robin) whose loss neither the final state nor any verdict of ``core``
    would show, with an own packet of ``core`` after it; None if there is none."""
    nf = nf_for(name)
    packets = [(parse(frame), ts_of(i)) for i, frame in enumerate(frames)]
    full = run_reference(nf, packets)
    last_own = max(s for s in range(len(frames)) if s % N == core)
    for victim in range(last_own):
        if victim % N == core:
            continue
        state, same = nf.new_state(), True
        for seq, (pkt, ts) in enumerate(packets):
            if seq != victim:
                verdict = nf.process(state, pkt, ts)
                if seq % N == core and seq > victim and verdict != full.verdicts[seq]:
                    same = False
                    break
        if same and nf.state_to_json(state) == full.state:
            return victim
    return None


# ddos is absent: a source's count never goes down, so every skipped record shows in it.
@pytest.mark.parametrize("name", ["hh", "tb", "knock", "conntrack"])
def test_a_skip_invisible_in_states_and_verdicts_is_caught_by_the_chain(name, frames):
    victim = invisible_record(name, frames, BUGGY)
    assert victim is not None
    if name == "hh":  # why it is invisible: its flow is deleted later, by its FIN
        nf = nf_for(name)
        assert isinstance(nf, HeavyHitterDetector)
        packets = [parse(frame) for frame in frames]
        key = nf.key(nf.record(packets[victim], 0))
        assert any(nf.key(nf.record(p, 0)) == key and p.tcp_flags & TCP_FIN
                   for p in packets[victim + 1:])
    out = run(name, frames, make_core=on_core(Skipper, seq=victim))
    assert out.cores[BUGGY].skipped == victim
    assert_ran_to_the_end(out)
    expected = final_state(name, out)
    assert all(report.state == expected for report in out.reports)  # every state is right
    assert not out.result.strict.verdict_mismatches  # and so is every verdict
    assert out.result.strict.chain_mismatches and out.result.lenient.chain_mismatches
    assert_caught(out.result)
    assert any(p.startswith(f"core {BUGGY}'s replica went wrong") for p in out.result.problems)


# --- fast-forward bugs, on every core ------------------------------------------------------

#: Whether some replica's final state differs from the sequential run's when the records are
#: applied newest first. Counting sources (ddos) commutes; for knock and conntrack the
#: reorderings in this trace leave no trace in any final state (knock gets a few verdicts
#: wrong), so the chain is what catches them.
REVERSAL_SHOWS_IN_STATE = {"ddos": False, "hh": True, "tb": True, "knock": False,
                           "conntrack": False}


@pytest.mark.parametrize("name", NFS)
def test_newest_first_fast_forward_is_caught(name, frames):
    out = run(name, frames, make_core=NewestFirst)
    assert_ran_to_the_end(out)
    assert_caught(out.result)
    assert out.result.strict.chain_mismatches  # the chain catches it for every NF
    expected = final_state(name, out)
    shows = any(report.state != expected for report in out.reports)
    assert shows == REVERSAL_SHOWS_IN_STATE[name]


@pytest.mark.parametrize("mutant", [StopsEarly, StartsLate, NewestTwice])
@pytest.mark.parametrize("name", NFS)
def test_off_by_one_and_repeated_records_are_caught(name, mutant, frames):
    out = run(name, frames, make_core=mutant)
    assert_ran_to_the_end(out)
    assert_caught(out.result)
    assert out.result.strict.chain_mismatches
    assert all(core.applied == len(frames) - 1 for core in out.cores)  # they all claim it


# --- recovery ------------------------------------------------------------------------------


def lost_seqs(name: str, frames: list[bytes], loss_rate: float, loss_seed: int) -> list[int]:
    """The packets the sequencer's seeded loss drops (a dry run of it)."""
    seq = Sequencer(nf_for(name), N, loss_rate=loss_rate, loss_seed=loss_seed)
    for i, frame in enumerate(frames):
        seq.sequence(frame, ts_of(i))
    return list(seq.lost)


@pytest.mark.parametrize("name", NFS)
def test_recovered_loss_is_strictly_equivalent(name, frames, tmp_path):
    out = run(name, frames, recovery=True, ring_dir=tmp_path, loss_rate=0.02, loss_seed=3)
    assert out.sequencer.lost
    assert sum(core.stats["recovered"] for core in out.cores) > 0
    assert out.result.equivalent and out.result.consistent, out.result.problems


@pytest.mark.parametrize("name", NFS)
def test_a_fetch_that_gives_up_at_once_is_not_consistent(name, frames, tmp_path, monkeypatch):
    victim = lost_seqs(name, frames, 0.02, 3)[0] % N  # a core that lost a frame

    def make(nf, core, n):
        replica = RecoveringReplica(nf, core, n, tmp_path / "offline")
        if core == victim:
            monkeypatch.setattr(replica, "fetch", lambda lo, hi: {})
        return replica

    out = run(name, frames, recovery=True, ring_dir=tmp_path, loss_rate=0.02, loss_seed=3,
              make_core=make)
    assert out.cores[victim].gaps
    assert not out.result.consistent and not out.result.equivalent
    assert any(p.startswith(f"core {victim} declares records") and "another core had it" in p
               for p in out.result.problems), out.result.problems


# --- queue drops and the log ---------------------------------------------------------------

QUEUE_DROPS = [101, 202, 303]  # one frame each of cores 1, 2 and 3, mid-trace
#: What each core then lacks: the dropped frame's own record and the history it carried
#: (records since the core's previous frame), which no later frame to that core repeats.
QUEUE_GAPS = [[], [(98, 101)], [(199, 202)], [(300, 303)]]


@pytest.mark.parametrize("name", NFS)
def test_queue_drops_are_consistent_but_not_equivalent(name, frames):
    out = run(name, frames, queue_drops=QUEUE_DROPS)
    result = out.result
    assert result.consistent and not result.equivalent, result.problems
    assert [core.gaps for core in out.cores] == QUEUE_GAPS
    assert result.lost_updates == N * len(QUEUE_DROPS)
    assert result.unsupported_gaps == [] and result.lost_everywhere == 0
    assert any(p.startswith("equal to sequential processing only without the 12 updates")
               for p in result.problems), result.problems


@pytest.mark.parametrize("name", NFS)
def test_a_processed_frame_missing_from_the_log_is_an_unexplained_loss(name, frames):
    # Core 1's queue dropped one frame (101), which the kernel's count explains; the frame
    # it processed but did not log is one more than that count allows.
    out = run(name, frames, queue_drops=[101], make_core=on_core(Unlogged))
    unlogged = out.cores[BUGGY].unlogged
    assert unlogged not in out.cores[BUGGY].log_seq
    assert not out.result.consistent and not out.result.equivalent
    assert out.result.unexplained_losses
    assert any(p.startswith(f"core {BUGGY} never processed 2 frames sent to it "
                            f"(seq {unlogged}, 101)") for p in out.result.problems), \
        out.result.problems


# --- verdicts and declarations -------------------------------------------------------------


@pytest.mark.parametrize("name", NFS)
def test_a_flipped_verdict_is_named_by_core_and_seq(name, frames):
    out = run(name, frames, make_core=on_core(FlipsVerdict))
    flipped = out.cores[BUGGY].flipped
    assert_ran_to_the_end(out)
    assert_caught(out.result)
    assert [(s, c) for s, c, _v, _e in out.result.strict.verdict_mismatches] == \
        [(flipped, BUGGY)]
    assert any(p.startswith(f"core {BUGGY} gave packet {flipped} the verdict")
               for p in out.result.problems), out.result.problems


def test_a_gap_declared_but_applied_is_not_consistent(frames):
    out = run("hh", frames, make_core=on_core(BogusGap))
    assert out.cores[BUGGY].gaps
    assert not out.result.consistent
    assert out.result.unsupported_gaps


def test_equivalent_implies_consistent(frames):
    """A replica that applies every record but declares one lost: its state is right, but
    its claim is not backed by the ground truth, so neither claim holds (this was a bug:
    ``equivalent`` ignored unsupported gaps, found by this test)."""
    out = run("hh", frames, make_core=on_core(BogusGap))
    assert not out.result.consistent and not out.result.equivalent


# --- regressions found by review -----------------------------------------------------------


def test_a_replacement_does_not_make_inherited_gaps_look_unsupported():
    """A record lost at every core (frames 5 and 6 lost, 2 cores) and declared by the donor
    stays a supported gap when a replacement joins from the donor's snapshot: the snapshot
    holds every update before it but that one."""
    from experiments.analysis.offline import ground_truth
    from nfs.oracle import CoreReport, unsupported_gaps
    from sequencer.shim import Sequencer

    seq = Sequencer(make_nf("ddos"), 2)
    for i, frame in enumerate(make_trace(TraceSpec(packets=30, flows=5, attackers=1,
                                                   attack_share=0.2, knockers=1, seed=4))):
        seq.sequence(frame, ts_of(i))
    seq.stop_frames(ts_of(30))
    truth = ground_truth(seq)
    donor = CoreReport(0, [(s, 1, 0) for s in range(0, 30, 2) if s != 6], 0, True,
                       applied=29, gaps=[(5, 5)])
    replacement = CoreReport(1, [(s, 1, 0) for s in range(21, 30, 2)], 0, True, applied=29,
                             gaps=[(5, 5)], joined_at=20)
    assert unsupported_gaps(truth, [donor], True)[0] == []
    errors, lost = unsupported_gaps(truth, [donor, replacement], True)
    assert errors == [] and lost == 1  # record 5, and only it


def test_a_core_sent_no_stop_frame_is_not_charged_for_one():
    """The sequencer sends STOP frames only to the cores it sprays over: a core it sprayed
    around (dead, or thought dead) never lost one."""
    from sequencer.shim import Sequencer

    seq = Sequencer(make_nf("ddos"), 3)
    seq.respray(0, (0, 1), 0)
    out = run_offline(lambda: make_nf("ddos"), make_trace(TraceSpec(packets=60, seed=4)), 3,
                      sequencer=seq)
    assert {stop["core"] for stop in seq.stops_sent} == {0, 1}
    assert out.result.unexplained_losses == [], out.result.problems
