"""Lab 5's definition and checks: the sequencer's numbers, spray and history
(``sequencer_lab.py``, a subclass of :class:`sequencer.shim.Sequencer`).

Checks, in order:

1. offline, byte for byte: the student's sequencer and the real one are fed the same frames
   at 1, 2 and 4 cores, in lock step, and every frame they emit, the STOP frames included,
   must be identical; the first difference is decoded with
   :func:`sequencer.wire.header.unpack_header` and named in the student's terms (which
   field, which packet, which rule);
2. the same with spray commands (:func:`sequencer.wire.spray.spray_frame`, handled as the
   shim's loop does: ``sequence`` must refuse the frame, then ``control`` resprays): at 4
   cores a core leaves, then only one core is sprayed over, then all four again; at 2 cores
   one leaves and comes back. Only there do ``self.active``, ``last_sent`` and the "at
   least spray-1" part of the history rule show;
3. offline, the oracle: :func:`experiments.analysis.offline.run_offline` with the student's
   sequencer and the real SCR cores, at 1, 2 and 4 cores, must be equivalent; the ground
   truth it keeps (the history counts) is compared with the real sequencer's first;
4. live: ``scr`` trials at 2 and 4 cores with the student's file as a plugin, so the shim
   runs ``LabSequencer``; each must be strictly equivalent, and ``shim.json`` must name
   ``LabSequencer`` from the graded file as the class that sequenced.

The NF is the token bucket (``tb``): its record holds the sequencer's timestamp, so every
record is unique and a record in the wrong place always names its packet.

Caveat: the offline checks compare with the package's ``Sequencer`` as it is now; a change
to its frames is a change to this lab's answer.
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments.analysis.offline import run_offline, ts_of
from experiments.workload.traffic import TraceSpec, make_trace
from labs.kit import Check, Grade, Lab, RunSpec
from labs.kit.checks import check_live_equivalent
from labs.kit.grading import student_line
from nfs import make_nf
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire.packet import parse
from sequencer.wire.spray import spray_frame

NF = "tb"
#: Slow buckets, so that the trace's biggest flows get policed at the live rate: both
#: verdicts occur.
NF_PARAMS = {"rate": 50, "burst": 10}
TRACE = TraceSpec(packets=400, flows=20, skew=1.0, knockers=0, attackers=0, seed=5)
#: Spray commands before packet i: (epoch, cores). Per core count.
SPRAYS = {
    4: {10: (1, (0, 1, 3)), 25: (2, (2,)), 31: (3, (0, 1, 2, 3)), 60: (4, (1, 3))},
    2: {7: (1, (1,)), 12: (2, (0, 1))},
}


def cores(n: int) -> str:
    return f"{n} core{'s' if n > 1 else ''}"


def lab_trace() -> list[bytes]:
    return make_trace(TRACE)


def student_class(g: Grade) -> type:
    cls = getattr(g.module, "LabSequencer", None)
    if not (isinstance(cls, type) and issubclass(cls, Sequencer)):
        g.fail("sequencer_lab.py must define class LabSequencer(Sequencer): put it back "
               "(git checkout sequencer_lab.py gives the starter)")
    return cls


def build(g: Grade, n: int):
    """(the student's sequencer, the real one) at ``n`` cores."""
    student = student_class(g)(make_nf(NF, **NF_PARAMS), n, "scr")
    return student, Sequencer(make_nf(NF, **NF_PARAMS), n, "scr")


# -- naming the first difference -----------------------------------------------------------


def span(seqs: list) -> str:
    """``seq 6..8``, ``seq 8, 7, 6``, ``none``: a list of sequence numbers (None: a record
    of no packet) in words."""
    if not seqs:
        return "none"
    if None not in seqs and len(seqs) > 2 and seqs == list(range(seqs[0], seqs[-1] + 1)):
        return f"seq {seqs[0]}..{seqs[-1]}"
    return "seq " + ", ".join("?" if s is None else str(s) for s in seqs)


def rule(core: int, seq: int, prev: int, spray: int, n: int) -> str:
    """Why frame ``seq`` to ``core`` carries ``expected_count`` records, in words."""
    want = h.expected_count(seq, prev, spray, n)
    since = seq - prev - 1
    previous = (f"core {core}'s previous frame (seq {prev}, self.last_sent[{core}])" if prev >= 0
                else f"the first packet (core {core} has had no frame yet)")
    if want == since:
        return f"every record since {previous}"
    if want == spray - 1:
        return (f"at least spray - 1 = {spray - 1} records (spray = {spray} cores sprayed "
                f"over now), although {previous} is only {since} packet(s) back")
    if want == n - 1:
        return (f"every record since {previous} would be {since}, but at most N - 1 = {n - 1}"
                " (the ring holds the last N - 1)")
    return f"every record so far: only {seq} exist"


def history_problem(what: str, seq: int, core: int, got: list, want: list, prev: int,
                    spray: int, n: int) -> str | None:
    """How a history (``got``: the sequence numbers of its records) differs from ``want``."""
    if got == want:
        return None
    if seq in got:
        return (f"the history of seq {seq} holds the record of seq {seq} itself: push a "
                "packet's record into the ring only after building its frame (TODO 5)")
    why = rule(core, seq, prev, spray, n)
    if None not in got and sorted(got) == want:
        return (f"{what} carries its history records in the order {span(got)}: records go "
                f"oldest first ({span(want)}), the ring's own order")
    if len(got) != len(want):
        hint = (" (careful: a slice x[-0:] is all of x, not none of it)"
                if not want and got else "")
        return (f"{what} carries {len(got)} history records ({span(got)}), it must carry "
                f"{len(want)} ({span(want)}): {why}, oldest first{hint}")
    return (f"{what} carries the records of {span(got)}, it must carry those of "
            f"{span(want)}: {why}, the newest of the ring, oldest first")


def frame_problem(i: int, got, want: tuple, prev: int, active: tuple, n: int,
                  who: dict[bytes, int]) -> str | None:
    """How the student's ``(slot, frame)`` for packet ``i`` differs from the real one's
    (``prev``: the real sequencer's previous frame to the core, ``active``: its spray)."""
    if got == want:
        return None
    if not isinstance(got, tuple) or len(got) != 2:
        return f"sequence() must return (slot, frame); for packet {i} it returned {got!r}"
    slot, out = got
    want_slot, want_out = want
    if out is None:
        return (f"sequence() returned no frame for packet {i} (None means the injected loss "
                "dropped it, and there is none here): return (slot, self._lose(seq, out))")
    if not isinstance(out, bytes | bytearray):
        return f"packet {i}'s frame is a {type(out).__name__}, not bytes"
    try:
        header = h.unpack_header(out)
    except h.MalformedFrame as err:
        return (f"packet {i}'s frame is not a valid SCR frame ({err}): it is the dummy "
                "Ethernet header, the SCR header, the records, then the original frame")
    real = h.unpack_header(want_out)
    if header.seq != real.seq:
        return (f"packet {i}'s frame has seq {header.seq}, the real sequencer's {real.seq}: "
                "sequence numbers start at 0 and go up by one per packet (TODO 1)")
    if header.slot != real.slot or slot != want_slot:
        told = f"went to core {slot}" if header.slot == slot else (
            f"has slot {header.slot} in its header but sequence() returned slot {slot}")
        return (f"packet {i} (seq {real.seq}) {told}; the real sequencer sends it to core "
                f"{real.slot}: round robin over self.active (the cores sprayed over now: "
                f"{list(active)}), from self.active[self._turn] on (TODO 2)")
    what = f"the frame of seq {real.seq} for core {real.slot}"
    if out[:h.ETH_HEADER.size] != want_out[:h.ETH_HEADER.size]:
        return (f"{what} does not start with its slot's dummy Ethernet header: "
                f"self._prefixes[slot] (h.dummy_ethernet(slot)) steers it to core {real.slot}"
                " (TODO 4)")
    for field, name, rule_text in (
            ("flags", "flags", "a packet's frame has none (FLAG_STOP is for STOP frames)"),
            ("record_size", "record size", "self.nf.record_size"),
            ("n_cores", "n_cores", "the number of cores N, self.n_cores")):
        if getattr(header, field) != getattr(real, field):
            return (f"{what} says {name} = {getattr(header, field)}, the real sequencer's "
                    f"{getattr(real, field)}: {rule_text} (TODO 4)")
    problem = history_problem(what, real.seq, real.slot, records_of(out, who),
                              list(range(real.seq - real.count, real.seq)), prev, len(active), n)
    if problem:
        return problem
    if header.spray != real.spray:
        return (f"{what} says spray = {header.spray}, the real sequencer's {real.spray}: "
                "spray is the number of cores sprayed over now, len(self.active) (TODO 4)")
    if header.timestamp_ns != real.timestamp_ns:
        return (f"{what} carries the timestamp {header.timestamp_ns}, the real sequencer's "
                f"{real.timestamp_ns}: the `ts` sequence() was given, the only clock the "
                "cores may read (TODO 4)")
    end = h.PAYLOAD_OFFSET + header.count * header.record_size
    if out[end:] != want_out[end:]:
        return (f"{what} does not end with the original frame, unchanged, right after the "
                "records (TODO 4)")
    return f"{what} differs from the real sequencer's (TODO 4)"


def records_of(out: bytes, who: dict[bytes, int]) -> list:
    """The sequence numbers of the records a frame carries (None: a record of no packet)."""
    _header, records, _inner = h.decode(out)
    return [who.get(bytes(r)) for r in records]


def lockstep(g: Grade, n: int, frames: list[bytes], sprays: dict) -> None:
    """Feed ``frames`` (and the spray commands ``sprays``) to both sequencers, then the
    STOP round; fail at the first frame that differs."""
    student, real = build(g, n)
    packer = make_nf(NF, **NF_PARAMS)
    who: dict[bytes, int] = {}
    for i, frame in enumerate(frames):
        if i in sprays:
            respray(g, student, real, spray_frame(*sprays[i]), ts_of(i) - 1)
        ts = ts_of(i)
        who[packer.pack_record(parse(frame), ts)] = i
        prev, active = list(real.last_sent), real.active
        want = real.sequence(frame, ts)
        got = student.sequence(frame, ts)
        problem = frame_problem(i, got, want, prev[want[0]], active, n, who)
        if problem:
            g.fail(f"{problem} ({cores(n)}{', with spray commands' if sprays else ''})")
    ts = ts_of(len(frames))
    prev, spray = list(real.last_sent), len(real.active)
    want_stops = real.stop_frames(ts)
    try:
        got_stops = {slot_of(f): f for f in student.stop_frames(ts)}
    except ValueError as err:  # the base class's encoder refused what _history returned
        if student_line(err, g.student_paths()):
            raise
        g.fail(f"the STOP frames (the base class builds them with your _history) could not "
               f"be built: {err}: _history must return a tuple of whole records ({cores(n)})")
    for want in want_stops:
        real_header = h.unpack_header(want)
        core = real_header.slot
        got = got_stops.get(core)
        what = f"the STOP frame to core {core} (seq {real_header.seq})"
        if got == want:
            continue
        if got is None:
            g.fail(f"there is no STOP frame to core {core} ({cores(n)})")
        header = h.unpack_header(got)
        if header.seq != real_header.seq:
            g.fail(f"{what} says seq {header.seq}: after the last packet, self.next_seq must "
                   f"be the number of packets sequenced ({len(frames)}) (TODO 1)")
        problem = history_problem(
            what, real_header.seq, core, records_of(got, who),
            list(range(real_header.seq - real_header.count, real_header.seq)),
            prev[core], spray, n)
        g.fail(f"{problem or what + ' differs from the real sequencer'} ({cores(n)})")


def slot_of(frame: bytes) -> int | None:
    try:
        return h.unpack_header(frame).slot
    except h.MalformedFrame:
        return None


def respray(g: Grade, student, real, command: bytes, ts: int) -> None:
    """Hand a spray command to both, as the shim's loop does: ``sequence`` refuses it (it
    is no IPv4 packet), then ``control`` applies it."""
    for seq in (real, student):
        try:
            result = seq.sequence(command, ts)
        except h.MalformedFrame:
            seq.control(command, ts)
            continue
        g.fail(f"sequence() accepted a spray command (no IPv4 packet) and returned {result!r}:"
               " a frame that is not an IPv4 packet must raise MalformedFrame before it gets "
               "a sequence number (keep parse(frame) first)")
    if (student.next_seq, student._turn) != (real.next_seq, real._turn):
        g.fail("a spray command (no IPv4 packet) changed self.next_seq or self._turn before "
               "sequence() refused it: keep parse(frame) first, so that a frame that is not "
               "a packet gets no number and no core")


# -- the checks ----------------------------------------------------------------------------


def check_steady(g: Grade) -> None:
    frames = lab_trace()
    for n in (1, 2, 4):
        lockstep(g, n, frames, {})
        g.info(f"{n} core(s): all {len(frames)} frames and the STOP frames are the real "
               "sequencer's, byte for byte")


def check_sprays(g: Grade) -> None:
    frames = lab_trace()
    for n in (4, 2):
        lockstep(g, n, frames, SPRAYS[n])
        steps = ", ".join(f"{list(spray)} before seq {i}"
                          for i, (_e, spray) in SPRAYS[n].items())
        g.info(f"{n} cores, sprayed over {steps}: every frame is the real sequencer's")


def check_oracle(g: Grade) -> None:
    frames = lab_trace()
    for n in (1, 2, 4):
        student, real = build(g, n)
        for i, frame in enumerate(frames):
            real.sequence(frame, ts_of(i))
        run = run_offline(lambda: make_nf(NF, **NF_PARAMS), frames, n, sequencer=student)
        for seq, (got, want) in enumerate(zip(student.history, real.history, strict=False)):
            if got != want:
                g.fail(f"the ground truth says the frame of seq {seq} carried {got} history "
                       f"records, but the frame itself carried {want} (check 1 compared it): "
                       "`records` changed after the frame was built; _history must return a"
                       " tuple (a snapshot), not the ring itself, which the push changes "
                       f"({cores(n)})")
        if not run.result.equivalent:
            g.fail(f"{cores(n)}, with the real cores: the oracle says: "
                   f"{run.result.problems[0]}")
        g.info(f"{n} core(s): the real cores on your frames equal one core in sequence "
               f"({run.result.strict.packets_checked} packets checked)")


def check_live(g: Grade) -> None:
    frames = lab_trace()
    graded = str(g.path().resolve())
    for n in (2, 4):
        check_live_equivalent(g, "scr", NF, (n,), frames=frames, nf_params=NF_PARAMS)
        trial = g.last_trial_dir
        ran = json.loads((trial / "shim.json").read_text())["sequencer"]
        if ran["class"] != "LabSequencer" or str(Path(ran["file"]).resolve()) != graded:
            g.fail(f"live on {n} cores, the shim ran {ran['class']} from {ran['file']}, not "
                   "your LabSequencer: keep `SEQUENCER = LabSequencer` at the end of "
                   "sequencer_lab.py")
        g.info(f"live, {n} cores: the shim ran LabSequencer ({Path(graded).name})")


LAB = Lab(
    number=5, title="The sequencer: sequence numbers, spray and the history ring",
    files=("sequencer_lab.py",),
    checks=(
        Check("offline, byte for byte: your frames are the real sequencer's at 1, 2 and "
              "4 cores (TODOs 1-5)", check_steady),
        Check("offline, byte for byte, with spray commands: a core leaves and comes back",
              check_sprays),
        Check("offline, the oracle: the real cores on your frames equal one core in sequence",
              check_oracle),
        Check("live at 2 and 4 cores: the shim runs your sequencer, every replica equals one "
              "core in sequence", check_live, live=True),
    ),
    run=RunSpec(nf=NF, strategy="scr", cores=4, packets=TRACE.packets, flows=TRACE.flows,
                skew=TRACE.skew, rate_pps=300, calibrated=False,
                trace={"knockers": 0, "attackers": 0, "seed": TRACE.seed},
                config={"nf_params": NF_PARAMS}),
)
