"""A trial's results, read back and judged: step 6 of a trial (``experiments.runtime.trial``).

The processes of a trial (generator, shim, sink, cores, a store) each write their result
files into the trial's folder; :func:`collect` reads them, rebuilds the sequencer's ground
truth from ``sequenced.pcap`` and ``sequenced.csv``, replays the sequenced packets through
the sequential reference (every strategy; losses accounted for, see ``check_views``) with
:func:`nfs.oracle.check_run`, judges the fidelity window the runtime sampled, and writes
``trial.json`` and ``verdicts.csv`` (``seq,core,verdict,trace_id``) into the folder. The
readers (``read_result``, ``read_int_csv``, ``read_ground_truth`` ...) are public: the
failover experiments read the same files.

This is the analysis layer, below the runtime: it never imports ``experiments.runtime``.
So :func:`collect` takes the trial's configuration duck-typed (:class:`TrialSettings`, the
fields it reads; the runtime passes its ``TrialConfig``, a dataclass, which is written
whole into ``trial.json``), and the fidelity window as the plain dict of two samples the
testbed took. Per-strategy oracle views (a shared table, a store's state) come from the
strategy registry (``nfs.strategies.get(name).view``).

Caveats: a core killed and never replaced (core failover) left no results, so with
``watch_cores`` the cores that did judge; per-core latency figures are the slowest core's
percentiles, not percentiles over every packet (the raw samples stay in the cores).
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from experiments.analysis.errors import TrialError
from experiments.analysis.fidelity import assess, quota_received
from experiments.workload.trace_files import TraceError, read_capture
from nfs import make_nf
from nfs.oracle import SCR, SHARD, CoreReport, GroundTruth, OracleResult, check_run
from nfs.reference import check_access_order
from nfs.strategies import SHARED
from nfs.strategies import get as get_strategy
from sequencer.shim import FATE_SENT, FATES, SEQUENCED_CSV, SEQUENCED_PCAP
from sequencer.wire.header import MalformedFrame
from sequencer.wire.packet import parse

RECORD_LOGS_JSON = "record_logs.json"  # recovery: what each core's ring held at the end
VERDICTS_CSV = "verdicts.csv"
TRIAL_JSON = "trial.json"


class TrialSettings(Protocol):
    """What :func:`collect` reads of a trial's configuration (the runtime's ``TrialConfig``
    has these and more; it must be a dataclass, written whole into ``trial.json``)."""

    nf: str
    nf_params: dict
    cores: int
    strategy: str
    rate_pps: float
    inflight: int
    store_delay_us: float
    recovery: bool
    watch_cores: bool
    warmup_s: float
    core_share: float | None


# --- reading result files --------------------------------------------------------------


def read_result(path: Path) -> dict:
    """A process's JSON result file; TrialError if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TrialError(f"missing or unreadable result {path.name}: {err}") from None


def read_int_csv(path: Path) -> list[list[int]]:
    """The rows of a results CSV of integers, header skipped; TrialError if unreadable."""
    try:
        with open(path) as f:
            rows = csv.reader(f)
            next(rows)
            return [[int(x) for x in row] for row in rows]
    except (OSError, ValueError, StopIteration) as err:
        raise TrialError(f"missing or unreadable result {path.name}: {err}") from None


def read_store(out_dir: Path) -> tuple[dict, list[int]]:
    """The store's results (``store.json``) and the sequence numbers in the order it
    applied them (``store_order.csv``)."""
    return (read_result(out_dir / "store.json"),
            [seq for _pos, seq in read_int_csv(out_dir / "store_order.csv")])


def read_ground_truth(out_dir: Path, mode: str) -> tuple[GroundTruth, list[int]]:
    """The sequencer's ground truth from its files (``sequenced.pcap``, ``sequenced.csv``,
    ``shim.json``), and the trace id each packet carried (to map results back)."""
    shim = read_result(out_dir / "shim.json")
    rows = read_int_csv(out_dir / SEQUENCED_CSV)  # seq, trace_id, ts_ns, core, history, fate
    try:  # a run that sequenced nothing has a pcap with no packets, which is no error here
        records = read_capture(out_dir / SEQUENCED_PCAP).records if rows else []
    except TraceError as err:
        raise TrialError(f"missing or unreadable result {SEQUENCED_PCAP}: {err}") from None
    if len(records) != len(rows) or any(row[0] != i for i, row in enumerate(rows)):
        raise TrialError(f"{SEQUENCED_PCAP} and {SEQUENCED_CSV} do not match")
    packets = []
    for (_seq, _tid, ts, *_rest), (_ts, _linktype, frame) in zip(rows, records, strict=True):
        try:
            packets.append((parse(frame), ts))
        except MalformedFrame as err:  # the shim sequences only frames that parse
            raise TrialError(f"the shim sequenced a malformed frame: {err}") from None
    truth = GroundTruth(
        packets=packets, cores=[row[3] for row in rows], history=[row[4] for row in rows],
        dropped={row[0]: FATES[row[5]] for row in rows if row[5] != FATE_SENT},
        n_cores=shim["n_cores"], mode=mode, reconfigs=shim.get("reconfigs", []),
        stops=shim.get("stops_sent", []), migrations=shim.get("migrations", []))
    return truth, [row[1] for row in rows]


def read_core_log(out_dir: Path, core: dict) -> list[list[int]]:
    """A core's per-packet log (``core<i>_log.csv``): ``seq,trace_id,verdict,chain,done_ns``."""
    return read_int_csv(out_dir / f"core{core['core']}_log.csv")


def read_core_report(out_dir: Path, core: dict, log: list[list[int]] | None = None) -> CoreReport:
    """One core's report from its results (``core<i>.json``, ``core<i>_log.csv``; ``log``:
    that file's rows when already read)."""
    log = read_core_log(out_dir, core) if log is None else log
    return CoreReport(
        core=core["core"], log=[(seq, verdict, chain) for seq, _t, verdict, chain, *_ in log],
        rx_dropped=core.get("rx_dropped", 0), stopped=core["stopped_by_marker"],
        state=core.get("state"), applied=core["applied"],
        gaps=[tuple(g) for g in core.get("gaps", [])], chain=core.get("chain"),
        joined_at=core.get("recovery", {}).get("joined_at", 0))


def read_held_records(out_dir: Path) -> set[int] | None:
    """Every sequence number some core's record log held at the end (``record_logs.json``,
    written by the testbed before it removed the rings); None without recovery."""
    path = out_dir / RECORD_LOGS_JSON
    if not path.exists():
        return None
    return {s for ranges in read_result(path).values() for lo, hi in ranges
            for s in range(lo, hi + 1)}


def percentiles(samples: list[float]) -> tuple[float | None, float | None]:
    """p50 and p99 of ``samples`` (None, None when there are none)."""
    if not samples:
        return None, None
    if len(samples) == 1:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return round(cuts[49], 1), round(cuts[98], 1)


# --- one trial's files, together -------------------------------------------------------


@dataclass
class TrialFiles:
    """Every process's results of one trial, and the verdicts mapped back to the trace."""

    gen: dict
    shim: dict
    sink: dict
    cores: list[dict]  # the cores that wrote results, in core order
    truth: GroundTruth
    reports: list[CoreReport]
    log: list[tuple[int, int, int, int]]  # (seq, core, verdict, trace_id), in seq order
    done_ns: list[int]  # when each processed packet was done, every core's (unordered)


def read_trial(config: TrialSettings, out_dir: Path) -> TrialFiles:
    """Read every result file of the trial in ``out_dir``; TrialError if one is missing."""
    gen = read_result(out_dir / "generator.json")
    shim = read_result(out_dir / "shim.json")
    sink = read_result(out_dir / "sink.json")
    # A core killed and never replaced (core failover) left no results: the others judge.
    ids = [i for i in range(config.cores)
           if not config.watch_cores or (out_dir / f"core{i}.json").exists()]
    cores = [read_result(out_dir / f"core{i}.json") for i in ids]
    strategy = get_strategy(config.strategy)
    truth, trace_ids = read_ground_truth(out_dir, SCR if strategy.history else strategy.spray)
    logs = [read_core_log(out_dir, core) for core in cores]
    reports = [read_core_report(out_dir, core, log) for core, log in zip(cores, logs,
                                                                          strict=True)]
    log = sorted((seq, r.core, verdict, trace_ids[seq]) for r in reports
                 for seq, verdict, _chain in r.log if 0 <= seq < len(trace_ids))
    done_ns = [row[4] for rows in logs for row in rows if len(row) > 4]
    return TrialFiles(gen, shim, sink, cores, truth, reports, log, done_ns)


def write_verdicts(out_dir: Path, log: list[tuple[int, int, int, int]]) -> None:
    """``verdicts.csv``: one row per packet a core processed, in sequence order."""
    with open(out_dir / VERDICTS_CSV, "w") as f:
        f.write("seq,core,verdict,trace_id\n")
        f.writelines(f"{s},{c},{v},{t}\n" for s, c, v, t in log)


def judge(config: TrialSettings, nf, out_dir: Path, files: TrialFiles) -> OracleResult:
    """The oracle's verdict on the trial, with the strategy's view of a shared state."""
    strategy = get_strategy(config.strategy)
    shared, name = None, ""
    if strategy.view_kind == SHARED:
        shared, name = strategy.view(files.cores, lambda file: read_result(out_dir / file))
    return check_run(nf, files.truth, files.reports, recovery=config.recovery,
                     held=read_held_records(out_dir), shared_state=shared, shared_name=name)


# --- the result row, part by part ------------------------------------------------------


def span_s(cores: list[dict]) -> float:
    """Seconds from the first core's first packet to the last core's last one."""
    busy = [core for core in cores if core["stats"].get("processed")]
    if not busy:
        return 0.0
    return (max(core["last_ns"] for core in busy) - min(core["first_ns"] for core in busy)) / 1e9


def traffic_result(config: TrialSettings, files: TrialFiles) -> dict:
    """What was offered, sequenced and processed, and the loss the cores are to blame for."""
    processed = sum(core["stats"].get("processed", 0) for core in files.cores)
    span = span_s(files.cores)
    sent = files.gen["sent"]
    injected = files.shim.get("injected_loss", 0)
    return {
        "nf": config.nf,
        "strategy": config.strategy,
        "cores": config.cores,
        "target_pps": config.rate_pps,
        "offered_pps": round(files.gen["offered_pps"], 1),
        "sent": sent,
        "sequenced": files.shim["sequenced"],
        "processed": processed,
        "delivered_pps": round(processed / span, 1) if span > 0 else 0.0,
        # What the cores failed to process: the packets lost on purpose do not count.
        "loss": round(1 - processed / (sent - injected), 5) if sent > injected else 0.0,
        "injected_loss": injected,
    }


#: A steady window shorter than this says nothing: no steady-state figures then.
MIN_STEADY_S = 0.25


def steady_result(sequenced_ns: list[int], done_ns: list[int], warmup_s: float) -> dict:
    """The cores' deficit in the steady state, the MLFFR search's second loss figure.

    The window runs from ``warmup_s`` after the first packet was sequenced to the last
    one (``sequenced_ns``: the shim's clock for every packet it sent to a core, injected
    losses excluded); ``steady_loss`` is ``1 - done / sequenced`` over it, counting by
    *time*, not by packet: how many packets the cores finished in the window against how
    many were sequenced in it. Unlike the count of packets never processed (``loss``),
    it is blind to the receive queues: a queue that fills during the trial (a few
    percent over capacity takes longer to fill than a trial lasts) absorbs the overload
    in the count but not here, where the cores' rate falls short of the offered one by
    the overload itself. Below capacity the two counts differ only by the backlog at the
    window's edges (a few packets per core), so it reads ~0. Negative values (a backlog
    from the warm-up drained in the window) are reported as they are.

    Empty (None) figures when the window is shorter than ``MIN_STEADY_S``."""
    if not sequenced_ns or not done_ns:  # nothing sequenced, or logs without done_ns
        return {"steady_loss": None, "steady_pps": None, "steady_s": 0.0}
    start = min(sequenced_ns) + round(warmup_s * 1e9)
    end = max(sequenced_ns)
    span = (end - start) / 1e9
    if span < MIN_STEADY_S:
        return {"steady_loss": None, "steady_pps": None, "steady_s": round(max(span, 0), 3)}
    offered = sum(start <= t <= end for t in sequenced_ns)
    done = sum(start <= t <= end for t in done_ns)
    return {"steady_loss": round(1 - done / offered, 5), "steady_pps": round(done / span, 1),
            "steady_s": round(span, 3)}


SINK_LOG = "sink_log.csv"  # trace_id,t_ns of every frame the sink received


def e2e_result(out_dir: Path, files: TrialFiles) -> dict:
    """Sequencer-to-sink latency of the packets that passed (every strategy's): from the
    shim's timestamp in ``sequenced.csv`` to the sink's arrival time, one clock
    (``time.monotonic_ns``). It includes the time queued in front of the core, which is
    what a load below the MLFFR keeps short."""
    path = out_dir / SINK_LOG
    if not path.exists():
        return {"e2e_us_p50": None, "e2e_us_p99": None}
    sequenced = {tid: files.truth.packets[seq][1] for seq, _c, _v, tid in files.log}
    p50, p99 = percentiles([(t - sequenced[tid]) / 1000 for tid, t in read_int_csv(path)
                            if tid in sequenced])
    return {"e2e_us_p50": p50, "e2e_us_p99": p99}


def recovery_result(files: TrialFiles) -> dict:
    """Loss recovery's counters (records fetched from peers, their latency), the
    controller's reconfigurations and the cores' receive-queue drops."""
    cores = files.cores
    stats = [core["stats"] for core in cores]
    fetch_p50, fetch_p99 = percentiles(
        [t for core in cores for t in core.get("recovery", {}).get("fetch_us", [])])
    return {
        "recovered": sum(st.get("recovered", 0) for st in stats),
        "fetches": sum(st.get("fetches", 0) for st in stats),
        "fetch_timeouts": sum(st.get("fetch_timeouts", 0) for st in stats),
        "fetch_s": max((c.get("recovery", {}).get("fetch_s", 0.0) for c in cores), default=0),
        "fetch_us_p50": fetch_p50,
        "fetch_us_p99": fetch_p99,
        "reconfigs": len(files.shim.get("reconfigs", [])),
        "migrations": len(files.shim.get("migrations", [])),  # rsspp: buckets moved
        "core_rx_dropped": sum(core.get("rx_dropped", 0) for core in cores),
    }


def lock_result(cores: list[dict]) -> dict:
    """The lock strategy's stalls (``nfs.cores.lock``): how many waits for a stripe lock
    outlasted ``STALL_NS``, and their time as a share of the cores' time (every core's
    span from its first packet to its last); empty for the other strategies."""
    stats = [core["stats"] for core in cores]
    if not any("lock_wait_us" in st for st in stats):
        return {}
    stall_s = sum(st.get("lock_stall_us", 0) for st in stats) / 1e6
    core_s = sum((core["last_ns"] - core["first_ns"]) / 1e9 for core in cores
                 if core["stats"].get("processed"))
    return {"lock_stalls": sum(st.get("lock_stalls", 0) for st in stats),
            "lock_stall_s": round(stall_s, 4),
            "lock_wait_s": round(sum(st.get("lock_wait_us", 0) for st in stats) / 1e6, 4),
            "lock_stall_share": round(stall_s / core_s, 4) if core_s > 0 else None}


def delivery_result(files: TrialFiles) -> dict:
    """Where the packets went: per core, to the sink, malformed, stopped by the marker."""
    cores, log = files.cores, files.log
    passed = [t for _s, _c, v, t in log if v == 1]
    return {
        "per_core": [core["stats"].get("processed", 0) for core in cores],
        # Every packet was processed by the core the sequencer sprayed it to (the switch's
        # steering; shard's hash is the switch's own choice).
        "steered": all(files.truth.cores[s] == c for s, c, _v, _t in log)
        if files.truth.mode != SHARD else None,
        "passed": len(passed),
        "sink_received": files.sink["received"],
        "sink_missing": len(set(passed) - set(files.sink["trace_ids"])),
        "malformed_shim": files.shim["malformed_total"],
        "malformed_cores": sum(core["malformed_total"] for core in cores),
        "gap_records": sum(core["stats"].get("gap_records", 0) for core in cores),
        **lock_result(cores),
        "stopped_by_marker": all(core["stopped_by_marker"] for core in cores),
    }


def check_result(oracle: OracleResult) -> dict:
    """The oracle's summary as ``check_*`` columns, and its two loss counts."""
    return {
        **{f"check_{k}": v for k, v in oracle.summary().items()
           if k not in ("lost_everywhere", "lost_updates")},
        "lost_everywhere": oracle.lost_everywhere,
        "lost_updates": oracle.lost_updates,
    }


def fidelity_result(config: TrialSettings, files: TrialFiles, window: dict | None) -> dict:
    """The fidelity verdict of the window the testbed sampled, and every process's CPU."""
    gen, shim, sink = files.gen, files.shim, files.sink
    socket_drops = {"shim": shim.get("rx_dropped", 0), "sink": sink.get("rx_dropped", 0)}
    # Frames sent that the shim never saw and no counter explains (the fidelity's "path").
    arrived = shim.get("sequenced", 0) + shim.get("malformed_total", 0) + socket_drops["shim"]
    lost = max(0, gen.get("sent", 0) - arrived)
    if window:
        fid = assess(window["before"], window["after"], target_pps=config.rate_pps,
                     offered_pps=gen["offered_pps"], socket_drops=socket_drops,
                     generator_busy=gen.get("busy"), lost_before_shim=lost)
    else:
        fid = {"faithful": None, "bottleneck": "not measured"}
    return {
        "faithful": fid["faithful"],
        "bottleneck": fid["bottleneck"],
        "fidelity": fid,
        "cpu_s": {
            "generator": gen["cpu_s"], "shim": shim["cpu_s"], "sink": sink["cpu_s"],
            "ovs": window["after"].cpu.get("ovs", 0) - window["before"].cpu.get("ovs", 0)
            if window else 0.0,
            "cores": [core["cpu_s"] for core in files.cores],
        },
        "throttled": window.get("throttled", []) if window else [],
        **quota_received(files.cores, config.core_share),
        # The switch ports' type (AF_XDP or packet sockets) and why not AF_XDP, if not.
        "port_type": window.get("port_type", "") if window else "",
        "port_type_note": window.get("port_type_note", "") if window else "",
        "placement": window.get("placement", {}) if window else {},
    }


def store_result(config: TrialSettings, nf, store_results: tuple[dict, list[int]] | None,
                 cores: list[dict], packets: dict,
                 log: list[tuple[int, int, int, int]]) -> dict:
    """What only the store strategies have: the access-order check, the store's counters,
    per-packet and per-query latency (``store_results``: ``read_store``'s, None for others)."""
    if store_results is None:
        return {}
    store, order = store_results
    check = check_access_order(nf, packets, order, ((s, c, v) for s, c, v, _t in log),
                               store["state"])
    stats = [core.get("store", {}) for core in cores]
    latency = [core.get("latency_us", {}) for core in cores]
    query = [s.get("latency_us", {}) for s in stats]

    def worst(samples: list[dict], key: str):
        values = [s[key] for s in samples if key in s]
        return max(values) if values else None

    return {
        "check_access_order": check.equivalent,
        "access_order_mismatches": len(check.verdict_mismatches),
        "store_ops": store.get("ops", len(order)),
        "store_retries": sum(s.get("retries", 0) for s in stats),
        "store_errors": sum(core["stats"].get("store_errors", 0) for core in cores),
        "inflight": 1 if get_strategy(config.strategy).blocking else config.inflight,
        "store_delay_us": config.store_delay_us,
        # The slowest core's figures: a percentile over cores would need the raw samples.
        "latency_us_p50": worst(latency, "p50"),
        "latency_us_p99": worst(latency, "p99"),
        "query_us_p50": worst(query, "p50"),
        "cpu_s_store": store.get("cpu_s", 0.0) + store.get("redis_cpu_s", 0.0),
    }


# --- the whole step --------------------------------------------------------------------


def collect(config: TrialSettings, trace_path: Path, out_dir: Path,
            window: dict | None = None) -> dict:
    """Read the processes' results, check them against the ground truth and the sequential
    reference (:func:`nfs.oracle.check_run`), write trial.json and verdicts.csv.

    ``window`` is the testbed's fidelity window (``before``/``after`` samples, the cores'
    ``throttled`` counters); without it the trial is "not measured"."""
    out_dir = Path(out_dir)
    nf = make_nf(config.nf, **config.nf_params)
    files = read_trial(config, out_dir)
    write_verdicts(out_dir, files.log)
    store_results = read_store(out_dir) if get_strategy(config.strategy).store else None
    oracle = judge(config, nf, out_dir, files)
    result = {
        **traffic_result(config, files),
        **recovery_result(files),
        **delivery_result(files),
        **check_result(oracle),
        **steady_result([ts for seq, (_pkt, ts) in enumerate(files.truth.packets)
                         if seq not in files.truth.dropped], files.done_ns,
                        config.warmup_s),
        **e2e_result(out_dir, files),
        **fidelity_result(config, files, window),
        "span_s": round(span_s(files.cores), 3),
        **store_result(config, nf, store_results, files.cores, files.truth.packet_map(),
                       files.log),
    }
    (out_dir / TRIAL_JSON).write_text(json.dumps(
        {"config": asdict(config), "trace": str(trace_path), "result": result}, indent=1,
        default=str) + "\n")
    return result
