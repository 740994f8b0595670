"""The sequencer benchmark's engine: what a software sequencer costs, and where it limits SCR.

Three measurements, then a model:

1. **in process** (:func:`sequencer_costs`): the CPU time per packet of the shim's work
   (:meth:`Sequencer.sequence <sequencer.shim.Sequencer.sequence>`) for every NF (its
   record size) and every history length, and of the parallel sequencer's two stages
   (:mod:`sequencer.pipeline`: the stamper's check and hand-over, a builder's parsing and
   building, batches of ``BATCH``);
2. **the NF cores** (:func:`core_costs`): each NF's t (a replica's CPU time for a packet with
   no history: the default 110 µs of work plus the rest, measured) and c (for each history
   record more), measured on the SCR core itself (:class:`nfs.cores.replica.Replica`);
3. **live** (root): the datapath benchmark's direct paths (no OVS): the shim
   (``shim-direct-N``) and the pipeline with K builders (``pipeline-N-K``) between two
   veth links, blasted, their delivered rate and CPU per packet (sockets included).

The model (:func:`ceilings`): a single-threaded sequencer carries at most 1 / (its CPU per
packet); the shim's at N cores is its in-process cost plus the sockets' (live minus in
process, measured). The pipeline's with K CPUs for builders is
``min(1 / stamper, 1 / send, K / (builder + send))``: the stamper and the sending are serial (the
builders send in turn), the building is not. The NF cores, each a whole CPU, demand
``n / (t + (n-1) c)`` (the paper's model); the **crossover** is the smallest core count
whose demand exceeds the sequencer's ceiling (:func:`crossover`).

Caveats: CPU times, not rates on this 2-CPU machine: the ceilings with K > 1 are modelled
from the stages' measured costs, not measured (the live pipeline shares 2 CPUs with the
sender and the receiver); costs beyond the largest measured history (32 cores) are
extrapolated linearly, up to the header's 255 cores; Python's costs, not a C or eBPF
sequencer's (the paper's NIC-side sequencer would be another model with the same shape); the
cores' t and c are measured in process, without a core's own socket (~5 µs a packet, small
beside t).
"""

from __future__ import annotations

import csv
import json
import pickle
import statistics
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from experiments.runtime.calibration import calibrate
from experiments.workload.traffic import TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from nfs.cores.replica import Replica
from sequencer.pipeline import FrameBuilder, well_formed
from sequencer.shim import Sequencer

HISTORY_CORES = [1, 2, 4, 8, 16, 32]  # N: the history is N-1 records
BATCH = 64
REPEATS = 5  # each in-process cost is the median of this many runs
CORE_PROBE = (1, 16)  # t from a core of 1, c from the difference to a core of 16
#: The crossover is looked for up to twice the largest history measured: farther out the
#: costs would be extrapolations of extrapolations.
MAX_CROSSOVER = 2 * HISTORY_CORES[-1]
PIPELINE_CPUS = [1, 2, 4, 8]
QUICK_PACKETS = 3000
DEFAULT_PACKETS = 20_000


def trace(packets: int) -> list[bytes]:
    """The benchmark's packets: TCP and UDP, 200 flows, SYN/FIN included (every NF's
    records see their fields)."""
    return [bytes(f) for f in make_trace(TraceSpec(packets=packets, flows=200, skew=1.0,
                                                   seed=5))]


def _cpu_us_per(count: int, run, repeats: int = REPEATS) -> float:
    """CPU µs per item of ``run()`` over ``count`` items: the median of ``repeats`` runs
    (the other CPU's load moves one run by 10-20 % here)."""
    times = []
    for _ in range(repeats):
        started = time.process_time_ns()
        run()
        times.append((time.process_time_ns() - started) / count / 1000)
    return statistics.median(times)


def shim_us(nf_name: str, cores: int, frames: list[bytes]) -> float:
    """CPU µs per packet of the shim's work (no sockets) for ``cores`` cores."""
    seq = Sequencer(make_nf(nf_name), cores)
    sequence = seq.sequence

    def run():
        for i, frame in enumerate(frames):
            sequence(frame, i)

    return _cpu_us_per(len(frames), run)


def _jobs(frames: list[bytes], cores: int) -> list[bytes]:
    """The stamper's hand-overs of ``frames`` in full batches, pickled as it sends them."""
    stamped = [(f, i) for i, f in enumerate(frames)]
    return [pickle.dumps(("batch", first, stamped[max(0, first - cores + 1):first],
                          stamped[first:first + BATCH]), pickle.HIGHEST_PROTOCOL)
            for first in range(0, len(stamped), BATCH)]


def builder_us(nf_name: str, cores: int, frames: list[bytes]) -> float:
    """CPU µs per packet of a builder's work on full batches: unpickling its job, parsing
    its tail again and its batch, building the frames (its sends are in the live figure)."""
    builder = FrameBuilder(make_nf(nf_name), cores)  # made once, as a builder process does
    jobs = _jobs(frames, cores)

    def run():
        for job in jobs:
            _kind, first, tail, batch = pickle.loads(job)
            builder.build(first, tail, batch)

    return _cpu_us_per(len(frames), run)


def stamper_us(cores: int, frames: list[bytes]) -> float:
    """CPU µs per packet of the stamper's own work on full batches: the check, the clock,
    the tail, the hand-over's pickling (its receive and the pipe's write are in the live
    figure)."""
    clock = time.monotonic_ns
    keep = max(cores - 1, 0)

    def run():
        tail: deque = deque(maxlen=keep)
        for first in range(0, len(frames), BATCH):
            batch = [(f, clock()) for f in frames[first:first + BATCH] if well_formed(f)]
            pickle.dumps(("batch", first, list(tail), batch), pickle.HIGHEST_PROTOCOL)
            tail.extend(batch)

    return _cpu_us_per(len(frames), run)


def sequencer_costs(frames: list[bytes], cores: list[int] = HISTORY_CORES,
                    nfs: list[str] | None = None, progress=None) -> list[dict]:
    """One row per NF and core count: the record size and the three CPU costs (µs)."""
    rows = []
    for nf_name in nfs or sorted(NF_CLASSES):
        size = make_nf(nf_name).record_size
        for n in cores:
            rows.append({"nf": nf_name, "record_size": size, "cores": n, "history": n - 1,
                         "shim_us": round(shim_us(nf_name, n, frames), 3),
                         "builder_us": round(builder_us(nf_name, n, frames), 3),
                         "stamper_us": round(stamper_us(n, frames), 3)})
            if progress:
                progress(rows[-1])
    return rows


def core_us(nf_name: str, cores: int, frames: list[bytes], params: dict) -> float:
    """CPU µs per own packet of an SCR replica (core 0 of ``cores``), the NF made with
    ``params`` (its work and state work in rounds), its frames as the shim makes them.
    Each run starts from a fresh replica: a frame already applied would be dropped."""
    nf = make_nf(nf_name, **params)
    seq = Sequencer(make_nf(nf_name), cores)
    own = [out for i, f in enumerate(frames)
           for slot, out in [seq.sequence(f, i)] if slot == 0]

    def run():
        handle = Replica(nf, 0, cores).handle
        for frame in own:
            handle(frame)

    return _cpu_us_per(len(own), run)


def core_costs(frames: list[bytes], nfs: list[str] | None = None, progress=None) -> list[dict]:
    """Each NF's t and c in CPU µs on a whole core, the default costs calibrated here.

    t is a replica's packet with no history: the work's CPU time (110 µs, which the
    testbed's cores keep whatever a spin round costs: ``nfs.base.SpinGovernor``) plus what
    the rest costs, measured with no work (a spin round's speed moves 87-150 ns with the
    other CPU's load here, so measuring the work itself would only measure that). c, a
    record's cost, is the difference between a replica of ``CORE_PROBE[1]`` cores and one
    of 1, per record, both without the work."""
    costs = calibrate()
    one, many = CORE_PROBE
    no_work = {**costs.nf_params(), "work": 0}
    rows = []
    for nf_name in nfs or sorted(NF_CLASSES):
        bare_one = core_us(nf_name, one, frames, no_work)
        t = costs.work_us + bare_one
        bare_many = core_us(nf_name, many, frames, no_work)
        rows.append({"nf": nf_name, "t_us": round(t, 2),
                     "c_us": round(max(bare_many - bare_one, 0.0) / (many - 1), 3),
                     "work_us": costs.work_us, "state_work_us": costs.state_work_us})
        if progress:
            progress(rows[-1])
    return rows


# --- the model -------------------------------------------------------------------------


class LiveRowsMissing(ValueError):
    """The live paths the model needs did not run (or failed)."""


@dataclass(frozen=True)
class Sockets:
    """Per-packet CPU that the in-process costs leave out, measured live (µs)."""

    shim_io_us: float  # the shim's receive and send
    stamper_io_us: float  # the stamper's receive and hand-over write
    send_us: float  # one send (the builders' serial part)


def demand(n: int, t_us: float, c_us: float) -> float:
    """Packets/s that n whole cores of an NF with costs t, c carry: n / (t + (n-1) c)."""
    return n * 1e6 / (t_us + (n - 1) * c_us)


def interpolate(points: dict[int, float], n: int) -> float:
    """A cost at core count ``n`` from the measured ones: linear between them, the last
    slope carried on above the largest (a longer history costs more), the smallest's
    value below it. Above the largest measured count it is an extrapolation."""
    xs = sorted(points)
    if n <= xs[0]:
        return points[xs[0]]
    if n >= xs[-1]:
        if len(xs) == 1:
            return points[xs[-1]]
        slope = (points[xs[-1]] - points[xs[-2]]) / (xs[-1] - xs[-2])
        return points[xs[-1]] + slope * (n - xs[-1])
    low = max(x for x in xs if x <= n)
    high = min(x for x in xs if x >= n)
    if low == high:
        return points[low]
    return points[low] + (points[high] - points[low]) * (n - low) / (high - low)


def shim_ceiling(costs: list[dict], nf: str, n: int, sockets: Sockets) -> float:
    """The single shim's packets/s at ``n`` cores for ``nf``'s records."""
    shim = {r["cores"]: r["shim_us"] for r in costs if r["nf"] == nf}
    return 1e6 / (interpolate(shim, n) + sockets.shim_io_us)


def pipeline_ceiling(costs: list[dict], nf: str, n: int, cpus: int, sockets: Sockets) -> float:
    """The pipeline's packets/s at ``n`` cores with ``cpus`` builders."""
    builder = {r["cores"]: r["builder_us"] for r in costs if r["nf"] == nf}
    stamper = {r["cores"]: r["stamper_us"] for r in costs if r["nf"] == nf}
    return min(1e6 / (interpolate(stamper, n) + sockets.stamper_io_us), 1e6 / sockets.send_us,
               cpus * 1e6 / (interpolate(builder, n) + sockets.send_us))


def crossover(ceiling, t_us: float, c_us: float, limit: int = MAX_CROSSOVER) -> int | None:
    """The smallest core count whose cores demand more than ``ceiling(n)`` carries, or
    None if none up to ``limit`` does (SCR's own curve flattens at 1/c first)."""
    for n in range(1, limit + 1):
        if demand(n, t_us, c_us) > ceiling(n):
            return n
    return None


def sockets_from_live(costs: list[dict], live: list[dict], nf: str) -> Sockets:
    """The sockets' share, from the live rows (``bench_datapath``'s) and the in-process
    costs at the same core counts: what the live processes spent beyond the work."""
    shim = {r["cores"]: r["shim_us"] for r in costs if r["nf"] == nf}
    stamper = {r["cores"]: r["stamper_us"] for r in costs if r["nf"] == nf}
    shim_io, stamper_io, send = [], [], []
    for row in live:
        per = row.get("us_per_packet") or {}
        path = row.get("path", "")
        if path.startswith("shim-direct-") and per.get("middle"):
            shim_io.append(per["middle"] - interpolate(shim, int(path.rsplit("-", 1)[1])))
        elif path.startswith("pipeline-") and per.get("middle"):
            stamper_io.append(per["middle"] - interpolate(stamper, int(path.split("-")[1])))
        elif path == "relay-direct" and per.get("middle"):
            send.append(per["middle"] / 2)  # a relay's packet: one receive, one send
    if not (shim_io and stamper_io and send):
        raise LiveRowsMissing("the live rows lack a working shim-direct-N, pipeline-N-K or "
                              "relay-direct path: no socket costs, no model")

    def mean(values):
        return round(max(sum(values) / len(values), 0.0), 3)

    return Sockets(mean(shim_io), mean(stamper_io), mean(send))


def ceilings(costs: list[dict], core_rows: list[dict], sockets: Sockets,
             cores: range = range(1, 65), cpus: list[int] = PIPELINE_CPUS
             ) -> tuple[list[dict], list[dict]]:
    """(ceiling rows: per NF, sequencer and core count the ceiling and the demand;
    crossover rows: per NF and sequencer the core count where the sequencer limits)."""
    curve, cross = [], []
    for core in core_rows:
        nf, t, c = core["nf"], core["t_us"], core["c_us"]
        sequencers = {"shim": lambda n, nf=nf: shim_ceiling(costs, nf, n, sockets)}
        for k in cpus:
            sequencers[f"pipeline-{k}"] = (
                lambda n, nf=nf, k=k: pipeline_ceiling(costs, nf, n, k, sockets))
        for name, ceiling in sequencers.items():
            for n in cores:
                curve.append({"nf": nf, "sequencer": name, "cores": n,
                              "ceiling_pps": round(ceiling(n)),
                              "demand_pps": round(demand(n, t, c))})
            found = crossover(ceiling, t, c)
            if found is not None:
                reading = f"from {found} cores"
            elif c > 0 and 1e6 / c <= ceiling(MAX_CROSSOVER):
                reading = "never: SCR's own 1/c is lower"
            else:
                reading = f"beyond {MAX_CROSSOVER} cores"
            cross.append({"nf": nf, "sequencer": name, "t_us": t, "c_us": c,
                          "ceiling_at_16_pps": round(ceiling(16)),
                          "demand_at_16_pps": round(demand(16, t, c)),
                          "crossover_cores": found if found is not None else "",
                          "reading": reading,
                          "scr_limit_pps": round(1e6 / c) if c > 0 else ""})
    return curve, cross


def read_live(rows_csv: Path) -> list[dict]:
    """The datapath benchmark's rows back from its results.csv (JSON cells decoded)."""
    out = []
    with open(rows_csv, newline="") as f:
        for row in csv.DictReader(f):
            for key in ("us_per_packet", "cpu_s"):
                row[key] = json.loads(row[key]) if row.get(key) else {}
            out.append(row)
    return out
