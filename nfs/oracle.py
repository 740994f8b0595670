"""The oracle: a run checked against the sequencer's ground truth and sequential processing.

The sequencer records exactly what it did (:class:`GroundTruth`: every frame it sequenced,
in order, with its timestamp, the core it sprayed it to, the history records it sent with
it, what it dropped itself, every STOP frame). The cores report what they did
(:class:`CoreReport`: the packets they processed with their verdicts and, for SCR
replicas, the transition chain at each; their final state; the gaps they declare; how many
frames their receive queue dropped, a count the kernel keeps). :func:`check_run` then
decides two things, for every strategy:

* **equivalent** (the strict claim): every final state equals one core processing *every*
  sequenced packet in the sequencer's order; every verdict a core gave, and every chain a
  replica logged, equals that run's; the sequencer kept the history rule; and every packet
  that no core processed was dropped where the ground truth shows a drop (the sequencer's
  own drops, a core queue's kernel drop count). A packet lost at a core's queue has no
  verdict, as a NIC drop has none, but under SCR its record still reaches every replica;
* **consistent** (the weaker claim): the same, with each state allowed to lack the updates
  it never received: for an SCR replica its declared gaps, each of which must be
  *supported* by the ground truth (no frame that carried the record reached the replica;
  with loss recovery, no frame that carried it reached *any* core, and no core's record
  log held it at the end); for the other strategies the packets no core processed.

Every finding is a line in ``problems``, in the terms of the run ("core 2 declares record
41 lost, but its frame of seq 43 carried it").

Caveats: a killed core's own log dies with it, so the packets it processed are judged
elsewhere (by the sink), and frames sprayed to it are not counted as unexplained losses.
The kernel's drop counters are counts, not lists: a core whose queue dropped k frames may
lack any k of its frames. The transition chain is a hash (see ``nfs.base.chain_step``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nfs.base import NetworkFunction
from nfs.reference import Equivalence, StateView, check_views
from sequencer import rss
from sequencer.wire.header import expected_count
from sequencer.wire.packet import Packet

MAX_PROBLEMS = 20
#: The sequencer's modes: how it sprays and what history it sends.
SCR, ROUND_ROBIN, SHARD, TABLE = "scr", "lock", "shard", "rsspp"


@dataclass
class GroundTruth:
    """What the sequencer did (``sequenced.pcap``, ``sequenced.csv``, ``shim.json``)."""

    packets: list[tuple[Packet, int]]  # by sequence number: the frame parsed, its timestamp
    cores: list[int]  # the core each was sprayed to (-1: the switch's hash decides)
    history: list[int]  # history records its frame carried
    dropped: dict[int, str]  # seq -> why the sequencer itself dropped it
    n_cores: int
    mode: str = SCR  # SCR, ROUND_ROBIN (lock and the store strategies), SHARD or TABLE
    reconfigs: list[dict] = field(default_factory=list)  # spray commands: seq, cores
    #: TABLE (RSS++): every bucket move (seq, bucket, from, to), from ``shim.json``.
    migrations: list[dict] = field(default_factory=list)
    stops: list[dict] = field(default_factory=list)  # STOP frames: core, seq, history

    @property
    def last_seq(self) -> int:
        return len(self.packets) - 1

    def packet_map(self) -> dict[int, tuple[Packet, int]]:
        return dict(enumerate(self.packets))


@dataclass
class CoreReport:
    """What one core (one incarnation of it) reports."""

    core: int
    log: list[tuple[int, int, int]]  # (seq, verdict, chain) per own packet processed
    rx_dropped: int  # frames its receive queue dropped (the kernel's count)
    stopped: bool  # it received a STOP frame
    state: object = None  # its final state (replicas, shards)
    applied: int = -1  # replicas: the last sequence number its state covers
    gaps: list[tuple[int, int]] = field(default_factory=list)  # replicas: declared
    chain: int | None = None  # replicas: the transition chain at ``applied``
    joined_at: int = 0  # a replacement: its state up to here came from a snapshot

    def gap_seqs(self) -> frozenset[int]:
        return frozenset(s for lo, hi in self.gaps for s in range(lo, hi + 1))


@dataclass
class OracleResult:
    """The oracle's findings; ``summary()`` is what a trial's results carry."""

    strict: Equivalence
    lenient: Equivalence
    protocol_errors: list[str] = field(default_factory=list)
    unexplained_losses: list[str] = field(default_factory=list)
    unsupported_gaps: list[str] = field(default_factory=list)
    lost_everywhere: int = 0  # records no core ever received (SCR)
    lost_updates: int = 0  # updates the states lack: declared gaps, unprocessed packets
    problems: list[str] = field(default_factory=list)

    @property
    def ground_truth_ok(self) -> bool:
        """The sequencer kept its rules, every loss and every declared gap is backed by
        the ground truth: what both claims need (so equivalent implies consistent)."""
        return not (self.protocol_errors or self.unexplained_losses or self.unsupported_gaps)

    @property
    def equivalent(self) -> bool:
        return self.ground_truth_ok and self.strict.equivalent

    @property
    def consistent(self) -> bool:
        return self.ground_truth_ok and self.lenient.equivalent

    def summary(self) -> dict:
        return {
            "equivalent": self.equivalent,
            "consistent": self.consistent,
            "packets_checked": self.strict.packets_checked,
            "verdict_mismatches": len(self.strict.verdict_mismatches),
            "chain_mismatches": len(self.strict.chain_mismatches),
            "diverged_replicas": self.strict.diverged_replicas,
            "protocol_errors": len(self.protocol_errors),
            "unexplained_losses": len(self.unexplained_losses),
            "unsupported_gaps": len(self.unsupported_gaps),
            "lost_everywhere": self.lost_everywhere,
            "lost_updates": self.lost_updates,
            "problems": self.problems[:MAX_PROBLEMS],
        }


# --- the sequencer kept its own rules ----------------------------------------------------


def protocol_errors(truth: GroundTruth, nf: NetworkFunction | None = None) -> list[str]:
    """Where the sequencer broke the spray order or the history rule
    (``sequencer.wire.header.expected_count``): a buggy sequencer must not pass for lossy cores.
    STOP frames are judged where they were sent (an end marker may come early). In TABLE
    mode (RSS++) the spray order is the indirection table, replayed from its initial
    state through ``truth.migrations`` (which needs ``nf``, to hash each packet's key)."""
    if truth.mode == TABLE and nf is None:
        raise ValueError("checking an RSS++ spray needs the NF (to hash the keys)")
    table = rss.initial_table(truth.n_cores)
    moves = sorted((m["seq"], i, m) for i, m in enumerate(truth.migrations))
    errors: list[str] = []
    n = truth.n_cores
    # Spray commands and STOP frames, in the order they happened: an event at seq s came
    # after packet s-1 and before packet s; events at one seq in the order of "event".
    events = sorted([(r["seq"], r.get("event", 0), 0, r) for r in truth.reconfigs]
                    + [(s["seq"], s.get("event", 0), 1, s) for s in truth.stops],
                    key=lambda e: e[:3])
    active, last_sent, previous = tuple(range(n)), [-1] * n, -1

    def expected_history(seq: int, core: int) -> int:
        if truth.mode != SCR or not 0 <= core < n:
            return 0
        return expected_count(seq, last_sent[core], len(active), n)

    for seq in range(len(truth.packets) + 1):
        while events and events[0][0] <= seq:
            _seq, _order, kind, event = events.pop(0)
            if kind == 0:
                active = tuple(sorted(event["cores"]))
                continue
            expected = expected_history(event["seq"], event["core"])
            if event["seq"] != seq or event["history"] != expected:
                errors.append(f"the STOP frame to core {event['core']} at seq {event['seq']} "
                              f"carried {event['history']} records; the history rule asks "
                              f"for {expected}")
        if seq == len(truth.packets):
            break
        core, count = truth.cores[seq], truth.history[seq]
        if truth.mode == SHARD:
            expected_core = -1
        elif truth.mode == TABLE:  # the indirection table, as moved up to this packet
            while moves and moves[0][0] <= seq:
                move = moves.pop(0)[2]
                if table[move["bucket"]] != move["from"]:
                    errors.append(f"the move of bucket {move['bucket']} at seq {seq} says "
                                  f"from core {move['from']}; the table had core "
                                  f"{table[move['bucket']]}")
                table[move["bucket"]] = move["to"]
            expected_core = table[rss.bucket_of(nf.key_bytes(truth.packets[seq][0]))]
        else:  # round robin over the active cores, by id, going on after the previous one
            expected_core = next((c for c in active if c > previous), active[0])
        expected = expected_history(seq, core)
        if core != expected_core:
            spray = ("the indirection table" if truth.mode == TABLE
                     else f"the round robin over {list(active)}")
            errors.append(f"seq {seq} was sprayed to core {core}; {spray} gives core "
                          f"{expected_core}")
        elif count != expected:
            errors.append(f"seq {seq} went to core {core} with {count} history records; "
                          f"the history rule asks for {expected}")
        if 0 <= core < n:
            last_sent[core], previous = seq, core
    errors += [f"the STOP frame to core {event['core']} says seq {event['seq']}, after the "
               f"last packet ({len(truth.packets) - 1})" for _s, _o, kind, event in events
               if kind == 1]
    return errors


def obeyed_stop(truth: GroundTruth, report: CoreReport) -> dict | None:
    """The STOP frame a core stopped at (the one that took it to ``applied``), if any."""
    if not report.stopped:
        return None
    return next((stop for stop in truth.stops if stop["core"] == report.core
                 and stop["seq"] == report.applied + 1 and stop.get("sent", True)), None)


# --- every packet no core processed was dropped where the ground truth says so -----------


def unprocessed(truth: GroundTruth, reports: list[CoreReport]) -> frozenset[int]:
    """Sequenced packets no reporting core processed (the sequencer's drops included)."""
    done = {seq for report in reports for seq, _v, _c in report.log}
    return frozenset(set(range(len(truth.packets))) - done)


def unexplained_losses(truth: GroundTruth, reports: list[CoreReport]) -> list[str]:
    """Cores that did not process more of the frames sent to them than their queues
    dropped (a STOP frame that never arrived counts as one more).

    Frames the sequencer dropped itself are ground truth. A killed core leaves no report:
    the frames sent to it are lost with it; a replacement's frames count from its
    ``joined_at``. The switch's hash picks shard cores, so for ``shard`` the count is over
    all cores.
    """
    errors = []
    if truth.mode == SHARD:
        missing = [s for s in unprocessed(truth, reports) if s not in truth.dropped]
        allowed = sum(r.rx_dropped for r in reports)
        unstopped = sum(not r.stopped for r in reports)
        if len(missing) + unstopped > allowed:
            errors.append(f"{len(missing)} packets sent to the cores were never processed "
                          f"(seq {_some(missing)}) but their queues dropped only {allowed} "
                          "frames")
        return errors
    for report in reports:
        done = {seq for seq, _v, _c in report.log}
        stop = obeyed_stop(truth, report)
        end = stop["seq"] if stop else len(truth.packets)  # a core ends at its STOP
        missing = [s for s, core in enumerate(truth.cores[:end])
                   if core == report.core and s >= report.joined_at
                   and s not in truth.dropped and s not in done]
        # A STOP frame that never arrived is one more frame lost (if one was sent to it:
        # the sequencer sends STOP frames only to the cores it sprays over).
        sent_stop = any(stop["core"] == report.core and stop.get("sent", True)
                        for stop in truth.stops)
        need = len(missing) + (not report.stopped and sent_stop)
        if need > report.rx_dropped:
            what = f"{len(missing)} frames sent to it (seq {_some(missing)})" if missing \
                else "no frame sent to it"
            stop = "" if report.stopped or not sent_stop else " and its STOP frame"
            errors.append(f"core {report.core} never processed {what}{stop}, but its "
                          f"queue dropped only {report.rx_dropped} frames")
    return errors


def _some(seqs: list[int], shown: int = 5) -> str:
    seqs = sorted(seqs)
    return ", ".join(map(str, seqs[:shown])) + (", ..." if len(seqs) > shown else "")


# --- SCR: every declared gap is supported by the ground truth ------------------------------


def coverage(truth: GroundTruth, report: CoreReport) -> set[int]:
    """The records a replica received: each processed frame's history and own record, its
    STOP frame's history, and what its snapshot held (a replacement)."""
    # A replacement's snapshot holds every update before it, but for the gaps its donor
    # had (and handed on): those it never had.
    inherited = {s for lo, hi in report.gaps if lo < report.joined_at
                 for s in range(lo, min(hi, report.joined_at - 1) + 1)}
    have: set[int] = set(range(report.joined_at)) - inherited
    for seq, _v, _c in report.log:
        have.update(range(seq - truth.history[seq], seq + 1))
    stop = obeyed_stop(truth, report)
    if stop:
        have.update(range(stop["seq"] - stop["history"], stop["seq"]))
    return have


def unsupported_gaps(truth: GroundTruth, reports: list[CoreReport], recovery: bool,
                     held: set[int] | None = None) -> tuple[list[str], int]:
    """Declared gaps the ground truth does not support, and how many records no core had.

    Without recovery a replica may lack only records that no frame it received carried.
    With recovery it may lack only records that no core received at all and that no
    core's record log held at the end (``held``: every sequence number in any ring).
    """
    covered = {r.core: coverage(truth, r) for r in reports}
    anywhere = set().union(*covered.values()) | (held or set())
    errors = []
    for report in reports:
        have = anywhere if recovery else covered[report.core]
        for lo, hi in report.gaps:
            bad = [s for s in range(lo, hi + 1) if s in have]
            if bad:
                where = next((f"its frame of seq {f} carried it" for f, _v, _c in report.log
                              if f - truth.history[f] <= bad[0] <= f), None) \
                    if bad[0] in covered[report.core] else None
                where = where or ("another core had it" if recovery else "a frame it "
                                  "received carried it")
                errors.append(f"core {report.core} declares records {lo}..{hi} lost, but "
                              f"record {bad[0]} was not: {where}")
    lost = sum(1 for s in range(len(truth.packets)) if s not in anywhere)
    return errors, lost


# --- the whole check ---------------------------------------------------------------------


def check_run(nf: NetworkFunction, truth: GroundTruth, reports: list[CoreReport], *,
              recovery: bool = False, held: set[int] | None = None,
              shared_state: object = None, shared_name: str = "shared") -> OracleResult:
    """Check a finished run (see the module's doc).

    SCR (``truth.mode == SCR``): one view per replica. Other strategies: one view of
    ``shared_state`` (the lock table, the union of the shards, the store's state).
    """
    packets = truth.packet_map()
    last = truth.last_seq
    verdicts = [(seq, r.core, verdict) for r in reports for seq, verdict, _c in r.log]
    result = OracleResult(Equivalence(), Equivalence(),
                          protocol_errors=protocol_errors(truth, nf),
                          unexplained_losses=unexplained_losses(truth, reports))
    if truth.mode == SCR:
        chains = [(seq, r.core, chain) for r in reports for seq, _v, chain in r.log]
        order = {r.core: i for i, r in enumerate(reports)}
        # Strictly, every replica ends after the last packet, whatever it covers.
        strict = [StateView(f"core{r.core}", r.state, last, chain=r.chain) for r in reports]
        lenient = [StateView(f"core{r.core}", r.state, r.applied, r.gap_seqs(), r.chain)
                   for r in reports]
        result.strict = check_views(nf, packets, verdicts, strict, order, chains)
        result.strict.diverged_replicas += [  # stopped short (states may still agree)
            v.name for v, r in zip(strict, reports, strict=True)
            if r.applied != last and v.name not in result.strict.diverged_replicas]
        result.lenient = check_views(nf, packets, verdicts, lenient, order, chains)
        result.unsupported_gaps, result.lost_everywhere = unsupported_gaps(
            truth, reports, recovery, held)
        result.lost_updates = sum(len(v.skip) for v in lenient)
    else:
        order = {r.core: 0 for r in reports}
        lacking = unprocessed(truth, reports)
        result.strict = check_views(nf, packets, verdicts,
                                    [StateView(shared_name, shared_state, last)], order)
        result.lenient = check_views(nf, packets, verdicts,
                                     [StateView(shared_name, shared_state, last, lacking)],
                                     order)
        result.lost_updates = len(lacking)
    result.problems = describe(result, reports, last, truth.mode == SCR)
    return result


def describe(result: OracleResult, reports: list[CoreReport], last: int,
             replicas: bool) -> list[str]:
    """One line per finding, most telling first: what breaks even the weaker claim, then
    what only the strict claim lacks."""
    lines = [*result.protocol_errors, *result.unexplained_losses, *result.unsupported_gaps]
    check = result.lenient
    if check.equivalent:
        if not result.strict.equivalent and result.lost_updates:
            gaps = "; ".join(f"core {r.core}: {_ranges(r.gaps)}" for r in reports if r.gaps)
            lines.append(f"equal to sequential processing only without the "
                         f"{result.lost_updates} updates the states lack"
                         + (f" ({gaps})" if gaps else ": packets no core processed"))
        lines += [f"core {r.core} stopped at seq {r.applied}, before the last packet "
                  f"({last}): it never got its STOP frame" for r in reports
                  if replicas and r.applied < last]
        return lines
    own = {r.core: sorted(seq for seq, _v, _c in r.log) for r in reports}
    first: dict[int, int] = {}
    for seq, core, _chain, _expected in check.chain_mismatches:
        first[core] = min(seq, first.get(core, seq))
    for core, seq in sorted(first.items()):
        before = [s for s in own.get(core, []) if s < seq]
        since = f"after seq {before[-1]}" if before else "from the start"
        lines.append(f"core {core}'s replica went wrong {since}, by seq {seq}: it applied "
                     "a different sequence of updates than one core would (a record "
                     "skipped, repeated, out of order or computed from a wrong state)")
    for seq, core, verdict, expected in check.verdict_mismatches[:3]:
        lines.append(f"core {core} gave packet {seq} the verdict {verdict}; sequential "
                     f"processing gives {expected}")
    for name in check.diverged_replicas[:5]:
        lines.append(f"{name}'s final state differs from the sequential run's")
    return lines


def _ranges(gaps: list[tuple[int, int]], shown: int = 3) -> str:
    text = ", ".join(f"{lo}..{hi}" if hi > lo else f"{lo}" for lo, hi in gaps[:shown])
    return text + (", ..." if len(gaps) > shown else "")
