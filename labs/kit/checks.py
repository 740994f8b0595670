"""Checks that several labs share: the order-sensitive trace, a replica's records compared
one by one with what it must apply (offline), and live equivalence at several core counts.

They use the testbed's own pieces, never copies: the offline check runs the real
:class:`~sequencer.shim.Sequencer` and the student's cores through
:func:`experiments.analysis.offline.run_offline`, judged by :func:`nfs.oracle.check_run`;
the live check runs :func:`experiments.runtime.trial.run_trial` and reads the oracle's
``check_equivalent`` and ``check_problems``. What this module adds is the translation of a
failure into the student's terms (which core, which record, which rule).
"""

from __future__ import annotations

from pathlib import Path

from experiments.analysis.offline import run_offline, ts_of
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from labs.kit.grading import Grade, first_problem
from nfs import make_nf
from sequencer.wire.packet import parse

#: Port knocking's trace: 20 sources knock (10 in the right order), each knock a packet of
#: its own at a random place in the trace, so a source's knocks land on different cores.
KNOCK_TRACE = TraceSpec(packets=400, flows=20, knockers=10, service_packets=4, attackers=0,
                        seed=4)


def knock_trace() -> list[bytes]:
    return make_trace(KNOCK_TRACE)


def knocks_split(frames: list[bytes], cores: int) -> float:
    """The share of knocking sources whose knocks land on more than one core."""
    nf = make_nf("knock")
    seen: dict[int, set[int]] = {}
    for seq, frame in enumerate(frames):
        pkt = parse(frame)
        if pkt.dport in nf.knocks:
            seen.setdefault(pkt.src, set()).add(seq % cores)
    return sum(len(c) > 1 for c in seen.values()) / max(len(seen), 1)


def traced(cls):
    """``cls`` (a replica class) logging every record it applies, in order."""

    class Traced(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.applied_log: list[tuple[int, tuple]] = []

        def apply_record(self, seq: int, fields: tuple) -> None:
            self.applied_log.append((seq, tuple(fields)))
            super().apply_record(seq, fields)

    Traced.__name__ = cls.__name__
    return Traced


def first_record_error(core: int, log: list[tuple[int, tuple]], expected: list[int],
                       fields_of) -> str | None:
    """How a replica's applied records (``log``) first differ from ``expected`` (None)."""
    seen: set[int] = set()
    for i, want in enumerate(expected):
        if i >= len(log):
            return (f"core {core}'s replica missed the record of seq {want}: the "
                    "fast-forward must apply every record after the last one applied")
        seq, fields = log[i]
        if seq in seen:
            return (f"core {core}'s replica applied the record of seq {seq} twice: records "
                    "up to the last one applied are in the state already")
        if seq > want and want in (s for s, _f in log[i + 1:i + 64]):
            return (f"core {core}'s replica applied seq {seq} before seq {want}: records "
                    "must be applied oldest first")
        if seq > want:
            return (f"core {core}'s replica missed the record of seq {want}: the "
                    "fast-forward must apply every record after the last one applied")
        if seq < want:
            return (f"core {core}'s replica applied seq {seq} after seq {log[i - 1][0]}: "
                    "records must be applied oldest first")
        if fields != fields_of(seq):
            other = next((s for s in range(max(0, seq - 40), seq + 40)
                          if fields_of(s) == fields), None)
            whose = f"those of seq {other}" if other is not None else "bytes of no record"
            return (f"core {core}'s replica applied seq {seq} with the wrong fields "
                    f"({whose}): the record of seq s starts at PAYLOAD_OFFSET + "
                    "(s - first) * record_size")
        seen.add(seq)
    if len(log) > len(expected):
        seq = log[len(expected)][0]
        return (f"core {core}'s replica applied the record of seq {seq} "
                f"{'twice' if seq in seen else 'although it processed that packet itself'}")
    return None


def sequenced_records(run, nf: str) -> list[tuple]:
    """The history record (its fields) of every packet an offline run sequenced, by seq:
    what each replica must apply."""
    packer = make_nf(nf)
    return [packer.unpack_record(packer.pack_record(parse(frame), ts_of(seq)))
            for seq, frame in enumerate(run.sequencer.frames)]


def check_replica_records(g: Grade, strategy: str, frames: list[bytes], cores: int,
                          nf: str = "knock") -> None:
    """Run the student's replica (the core ``strategy`` builds) offline on ``frames`` and
    compare every record each core applies with what it must apply, then the oracle."""
    from nfs.strategies import get

    spec = get(strategy)
    classes = {}

    def make_core(nf_obj, core, n):
        real = spec.make_core(nf_obj, core, n, spec.core_args())
        cls = classes.setdefault(type(real), traced(type(real)))
        return cls(nf_obj, core, n)

    run = run_offline(lambda: make_nf(nf), frames, cores, make_core=make_core,
                      strategy=strategy)
    records = sequenced_records(run, nf)
    last = len(records) - 1
    for core in run.cores:
        own = set(core.log_seq)
        expected = [s for s in range(last + 1) if s not in own]
        problem = first_record_error(core.core, core.applied_log, expected,
                                     lambda s: records[s] if 0 <= s <= last else None)
        if problem:
            g.fail(f"{problem} ({cores} cores)")
        if core.applied != last:
            g.fail(f"core {core.core}'s replica says it applied up to seq {core.applied} "
                   f"after the STOP frame, whose records went up to seq {last}: after a "
                   f"fast-forward, `applied` must be seq - 1 ({cores} cores)")
    if not run.result.equivalent:
        g.fail(f"{cores} cores: the oracle says: {run.result.problems[0]}")


def write_trace(g: Grade, frames: list[bytes], name: str) -> Path:
    path = g.out_dir / f"{name}.pcap"
    write_pcap(path, frames)
    return path


def check_live_equivalent(g: Grade, strategy: str, nf: str, core_counts, frames=None,
                          rate_pps: float = 300.0, diagnose=None, **fields) -> list[dict]:
    """Live trials of ``strategy`` at each of ``core_counts``: every one must be strictly
    equivalent to one core in sequence; their result rows. ``diagnose(row, cores)``, if
    given, may explain a failed trial in the lab's own terms (a line, or None)."""
    frames = frames if frames is not None else knock_trace()
    trace = write_trace(g, frames, "trace")
    rows = []
    for cores in core_counts:
        config = g.config(calibrated=False, nf=nf, strategy=strategy, cores=cores,
                          rate_pps=rate_pps, **fields)
        result = g.trial(trace, config, f"{cores}cores")
        if not result["check_equivalent"]:
            g.fail((diagnose and diagnose(result, cores))
                   or f"live on {cores} cores, the run is not equivalent to one core in "
                      f"sequence: {first_problem(result)}")
        g.info(f"live, {cores} core(s): equivalent ({result['delivered_pps']} pps delivered"
               f", faithful: {result['faithful']})")
        rows.append(result)
    return rows
