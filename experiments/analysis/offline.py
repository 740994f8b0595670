"""The sequencer and the cores in one process, no network: the oracle's test bench.

:func:`run_offline` feeds frames through the real :class:`~sequencer.shim.Sequencer` and
delivers its output to real cores (``nfs.worker``'s, or any replacement a test passes), each
in a thread draining its own queue as a core drains its port, then checks the run with the
same oracle as a live trial (:func:`nfs.oracle.check_run`), built from the same ground truth
(the sequencer's records) and the same core reports. A test injects a bug into the
sequencer or a core and sees whether the oracle catches it; a lab grades a student's core
this way before it runs live.

Losses: the sequencer's own (``loss_rate``, seeded) are ground truth as in a live run;
``queue_drops`` names sequence numbers whose frames the "receive queue" of their core drops,
counted as the kernel would count them (``rx_dropped``). With ``recovery`` the replicas keep
their record logs in ring files under ``ring_dir``, as live.

Caveats: SCR (and ``single``) only: the oracle's view of a shared state (lock, shard, a
store) is not built here. One process, so no CPU quota, no timing; the threads interleave as
Python's GIL lets them. Timestamps are synthetic (``ts_of``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from nfs.base import NetworkFunction
from nfs.cores.base import Core
from nfs.cores.recovery import PeerLog, RecoveringReplica, create_logs, remove_logs
from nfs.cores.replica import Replica
from nfs.oracle import SCR, CoreReport, GroundTruth, OracleResult, check_run
from nfs.strategies import REPLICAS
from nfs.strategies import get as get_strategy
from sequencer.shim import FATE_SENT, FATES, Sequencer
from sequencer.wire.header import unpack_header
from sequencer.wire.packet import parse

CoreFactory = Callable[[NetworkFunction, int, int], Core]


def ts_of(seq: int) -> int:
    """The synthetic sequencer timestamp of packet ``seq`` (ns): 1.5 ms apart."""
    return 1_000_000 + 1_500_000 * seq


@dataclass
class OfflineRun:
    """What a run left: the sequencer, the cores, and the oracle's verdict on them."""

    sequencer: Sequencer
    cores: list[Core]
    truth: GroundTruth
    reports: list[CoreReport]
    result: OracleResult


def ground_truth(seq: Sequencer) -> GroundTruth:
    """The oracle's ground truth from a sequencer's own records."""
    return GroundTruth(
        packets=[(parse(frame), ts) for frame, ts in zip(seq.frames, seq.timestamps,
                                                         strict=True)],
        cores=list(seq.cores), history=list(seq.history),
        dropped={i: FATES[fate] for i, fate in enumerate(seq.fates) if fate != FATE_SENT},
        n_cores=seq.n_cores, mode=SCR if seq.mode in ("scr", "single") else seq.mode,
        reconfigs=list(seq.reconfigs), stops=list(seq.stops_sent),
        migrations=list(getattr(seq, "migrations", [])))


def report(core: Core, rx_dropped: int = 0) -> CoreReport:
    """A core's report, as its result files would give it."""
    is_replica = isinstance(core, Replica)
    return CoreReport(
        core=core.core, log=list(zip(core.log_seq, core.log_verdict,
                                     core.log_chain or [0] * len(core.log_seq), strict=True)),
        rx_dropped=rx_dropped, stopped=core.stopped,
        state=core.state_json(), applied=core.applied,
        gaps=list(core.gaps) if is_replica else [],
        chain=core.chain if is_replica else None,
        joined_at=getattr(core, "joined_at", 0))


def _drain(core: Core, frames: queue.Queue, errors: list[BaseException]) -> None:
    try:
        while (frame := frames.get()) is not None:
            core.handle(frame)
            if core.stopped:
                core.finish()
                return
    except BaseException as err:  # re-raised by run_offline: a crash is not a lost packet
        errors.append(err)


def _deliver(cores: list[Core], outputs: list, stops: list[bytes], drops: set[int],
             timeout_s: float) -> list[int]:
    """Feed each core its frames (the sequencer's outputs, then the STOPs) through its own
    queue and thread, dropping the sequence numbers in ``drops``; wait until every core is
    done. The frames each core's "receive queue" dropped; a core's crash is re-raised."""
    queues = [queue.Queue() for _ in cores]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_drain, args=(core, q, errors), daemon=True)
               for core, q in zip(cores, queues, strict=True)]
    for thread in threads:
        thread.start()
    dropped = [0] * len(cores)
    for i, (slot, out) in enumerate(outputs):
        if out is None:
            continue
        if i in drops:
            dropped[slot] += 1
            continue
        queues[slot].put(out)
    for stop in stops:
        queues[unpack_header(stop).slot].put(stop)
    for q in queues:
        q.put(None)  # a core whose STOP got lost ends here
    for thread in threads:
        thread.join(timeout_s)
        if thread.is_alive():
            raise TimeoutError("a core did not finish its frames")
    if errors:
        raise errors[0]
    return dropped


def run_offline(nf_factory: Callable[[], NetworkFunction], frames: Iterable[bytes],
                n_cores: int, *, loss_rate: float = 0.0, loss_seed: int = 1,
                queue_drops: Iterable[int] = (), recovery: bool = False,
                ring_dir: Path | None = None, make_core: CoreFactory | None = None,
                sequencer: Sequencer | None = None, timeout_s: float = 60.0,
                strategy: str = "scr") -> OfflineRun:
    """Sequence ``frames``, run ``n_cores`` cores on them, check the run (module doc).

    ``make_core(nf, core, n_cores)`` builds each core (default: the registered
    ``strategy``'s core with no options, or a ``RecoveringReplica`` on rings under
    ``ring_dir`` with ``recovery``); ``sequencer`` replaces the default
    ``Sequencer(nf, n_cores, <the strategy's spray>, loss_rate, loss_seed)``. Only
    strategies with replicas can be checked here (the others' state is in result files).
    """
    spec = get_strategy(strategy)
    if spec.view_kind != REPLICAS:
        raise ValueError(f"run_offline checks replicas; {strategy} has none")
    seq = sequencer or Sequencer(nf_factory(), n_cores, spec.spray, loss_rate, loss_seed)
    outputs = [seq.sequence(frame, ts_of(i)) for i, frame in enumerate(frames)]
    stops = seq.stop_frames(ts_of(len(outputs)))
    drops = set(queue_drops)
    rings: list[Path] = []
    cores: list[Core] = []
    if recovery:
        if ring_dir is None:
            raise ValueError("recovery needs a ring_dir for the record logs")
        rings = create_logs(Path(ring_dir) / "offline", n_cores, seq.nf.record_size)
    try:
        if make_core is None:
            def make_core(nf, core, n):
                if recovery:
                    return RecoveringReplica(nf, core, n, Path(ring_dir) / "offline")
                return spec.make_core(nf, core, n, spec.core_args())
        cores += [make_core(nf_factory(), c, n_cores) for c in range(n_cores)]
        dropped = _deliver(cores, outputs, stops, drops, timeout_s)
        held = _held(rings, seq.nf.record_size) if recovery else None
    finally:
        for core in cores:
            if isinstance(core, RecoveringReplica):
                core.close()
        remove_logs(rings)
    truth = ground_truth(seq)
    reports = [report(core, dropped[core.core]) for core in cores]
    result = check_run(seq.nf, truth, reports, recovery=recovery, held=held)
    return OfflineRun(seq, cores, truth, reports, result)


def _held(rings: list[Path], record_size: int) -> set[int]:
    held: set[int] = set()
    for path in rings:
        ring = PeerLog(path, record_size)
        try:
            held.update(ring.seqs())
        finally:
            ring.close()
    return held
