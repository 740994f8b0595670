"""Fault runs read as a timeline, and the one rule that says whether a fault run passed.

The fault experiments (``failover.py``: the primary of a primary-backup pair killed;
``core_failover.py``: an SCR core killed and replaced; ``soak.py``: that, over and over for
minutes; ``bench_failover.py``: ``core_failover`` repeated) play a trace, inject their
faults, and are read here from what the run recorded, all on one monotonic clock
(:func:`read_traffic` gives a :class:`Traffic`: the sequencer's ground truth, the
reference's verdicts, the sink's arrivals; the controller's events):

* the **timeline** (:meth:`Traffic.rows`, written as ``timeline.csv``): per ``BIN_S`` bin,
  bins aligned on the (first) fault, the rate offered (sequenced), expected (the sequenced
  packets that the sequential reference passes) and delivered (reached the sink), t from
  the start of the traffic;
* per fault: the **instant** (the kill, as the experiment timed it), the **detection** (the
  controller's first event about the dead port from then on), and the **recovery**
  (:func:`recovery_time`): the delivered rate back to ``RECOVERY_SHARE`` (90 %) of the
  expected rate, in one bin and on average over the next ``SUSTAIN_S``. The expected rate
  stands for the pre-fault rate: before the fault, delivered equals expected
  (:func:`pre_fault_ratio` says how nearly), and it follows the trace where the offered
  rate is not level.

**The pass rule** (:class:`PassRule`), one for every fault experiment; each experiment maps
each of its named checks to a part. A run passes when every required part holds:

1. **state** (always required): every state check holds: the states kept what they must
   (a backup or replica equal to the sequential reference over what it holds, replicas
   equal to each other, nothing delivered that the state lacks) and the faults went as
   planned (done, seen by the controller, the replacement sprayed to again);
2. **strict** (``strict``): the states equal the reference over *every* sequenced packet
   (strict equivalence), not only modulo the updates that no core received;
3. **rate** (``rate``): the rate is back, as above, within ``limit_s`` (2 s) of every
   fault;
4. **faithful** (``faithful``): the fidelity monitor found the emulated cores, not the
   machine, to be the bottleneck.

The verdict (:meth:`PassRule.verdict`) reports the parts separately (``parts``: True,
False, or None where the run has no such check or did not measure it), the checks that
were required (``required``), the rule, and ``passed``. The rules in use:

========================================  ======  ====  ========
experiment                                strict  rate  faithful
========================================  ======  ====  ========
``failover``                              yes     yes   no
``core_failover``, ``bench_failover``     yes     yes   no
the same under overload (``--load`` > 1)  no      no    no
``soak``                                  yes     no    no
========================================  ======  ====  ========

``failover`` has no strict check: a primary-backup pair loses the updates in flight at the
kill by design, so its state check allows exactly those (and checks that they are the
backup's gaps). Under overload, packets are dropped at every core's queue and records may
be lost everywhere: only consistency can hold, and the rate cannot come back to what the
reference passes. A soak passes on its state (minutes of faults near the MLFFR); its rate
is reported. No experiment requires ``faithful``: a run the monitor marks not faithful is
shown as such, not failed, and ``failover`` does not measure it.

Caveat: only whole bins inside the traffic count, so a recovery time is rounded up to the
end of its bin; the first packet delivered after the detection is the finer measure
(``resumed_s`` in ``failover``).
"""

from __future__ import annotations

import csv
import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.analysis.collect import read_ground_truth, read_int_csv
from nfs.base import PASS, NetworkFunction
from nfs.oracle import SCR, GroundTruth
from nfs.reference import run_reference

BIN_S = 0.1
RECOVERY_SHARE = 0.9
SUSTAIN_S = 0.5
RECOVERY_LIMIT_S = 2.0
TIMELINE_CSV = "timeline.csv"
TIMELINE_COLUMNS = ["t_s", "offered_pps", "expected_pps", "delivered_pps"]
STATE, STRICT, RATE, FAITHFUL = "state", "strict", "rate", "faithful"


# --- the timeline ------------------------------------------------------------------------


def timeline(kill_s: float, start_s: float, end_s: float, offered: list[float],
             expected: list[float], delivered: list[float], bin_s: float = BIN_S) -> list[dict]:
    """Rates per ``bin_s`` bin, bins aligned on ``kill_s``, only whole bins inside
    ``[start_s, end_s]``; the three lists are event times (s), any order."""
    if not bin_s > 0:
        raise ValueError(f"bin must be > 0 s, got {bin_s}")
    first = math.ceil((start_s - kill_s) / bin_s - 1e-9)
    last = math.floor((end_s - kill_s) / bin_s + 1e-9)  # edge after the last whole bin
    series = [sorted(times) for times in (offered, expected, delivered)]
    rows = []
    for k in range(first, last):
        lo, hi = kill_s + k * bin_s, kill_s + (k + 1) * bin_s
        counts = [bisect_left(times, hi) - bisect_left(times, lo) for times in series]
        rows.append({"t_s": round(lo, 4), **{
            col: round(n / bin_s, 1) for col, n in zip(TIMELINE_COLUMNS[1:], counts,
                                                       strict=True)}})
    return rows


def recovery_time(rows: list[dict], kill_s: float, share: float = RECOVERY_SHARE,
                  sustain_s: float = SUSTAIN_S, bin_s: float = BIN_S) -> float | None:
    """Seconds from the kill to the end of the first bin (of ``rows``, from the kill on)
    whose delivered rate is at least ``share`` of the expected one, and stays so on average
    over that bin and the next ``sustain_s`` (or until the rows end); None if none is.

    The average, not every bin: a core under a CPU quota delivers in bursts, and a 100 ms
    bin may hold 10 % more or less than its share even in steady state.
    """
    after = [r for r in rows if r["t_s"] >= kill_s - 1e-9]
    window = max(1, round(sustain_s / bin_s))
    for i, row in enumerate(after):
        ahead = after[i:i + window]
        if (row["delivered_pps"] >= share * row["expected_pps"]
                and sum(r["delivered_pps"] for r in ahead)
                >= share * sum(r["expected_pps"] for r in ahead)):
            return round(row["t_s"] + bin_s - kill_s, 4)
    return None


def pre_fault_ratio(rows: list[dict], kill_s: float, bin_s: float = BIN_S) -> float | None:
    """Delivered over expected in the whole bins before the fault; None if there are none."""
    before = [r for r in rows if r["t_s"] + bin_s <= kill_s + 1e-9]
    if not before:
        return None
    return round(sum(r["delivered_pps"] for r in before)
                 / max(sum(r["expected_pps"] for r in before), 1e-9), 4)


def write_timeline(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, TIMELINE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_timeline(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@dataclass(frozen=True)
class Traffic:
    """A run's packets on the monotonic clock (ns): ``sequenced`` as (seq, trace id, time)
    in sequence order, ``passes[seq]`` whether the sequential reference passes it,
    ``arrivals`` at the sink as (trace id, time); t = 0 is ``start_ns``, when the traffic
    started."""

    start_ns: int
    sequenced: list[tuple[int, int, int]]
    passes: list[bool]
    arrivals: list[tuple[int, int]]

    @classmethod
    def of_run(cls, start_ns: int, trace_ids: list[int], packets: list[tuple[object, int]],
               verdicts: list[int], arrivals: Iterable) -> Traffic:
        """From the ground truth's trace ids and ``(packet, timestamp)`` pairs, the
        reference's verdicts and the sink's ``(trace id, time)`` log."""
        sequenced = [(seq, tid, ts) for seq, (tid, (_pkt, ts))
                     in enumerate(zip(trace_ids, packets, strict=True))]
        return cls(start_ns, sequenced, [v == PASS for v in verdicts],
                   [(tid, t) for tid, t in arrivals])

    def to_s(self, ns: float) -> float:
        """Monotonic ns -> seconds since the traffic started."""
        return (ns - self.start_ns) / 1e9

    @property
    def end_ns(self) -> int:
        """When the last packet was sequenced (0 if none was)."""
        return self.sequenced[-1][2] if self.sequenced else 0

    def rows(self, fault_s: float, bin_s: float = BIN_S) -> list[dict]:
        """The timeline, bins aligned on ``fault_s``, over the sequenced traffic."""
        seq = self.sequenced
        return timeline(
            fault_s, self.to_s(seq[0][2]) if seq else 0.0, self.to_s(seq[-1][2]) if seq else 0.0,
            [self.to_s(ts) for _s, _t, ts in seq],
            [self.to_s(ts) for s, _t, ts in seq if self.passes[s]],
            [self.to_s(t) for _tid, t in self.arrivals], bin_s)

    def first_arrival(self, after_ns: float) -> int | None:
        """The first arrival at the sink at or after ``after_ns`` (None: none)."""
        times = sorted(t for _tid, t in self.arrivals)
        i = bisect_left(times, after_ns)
        return times[i] if i < len(times) else None

    def events(self, events: list[dict], until_ns: float = math.inf) -> list[dict]:
        """The controller's events (``t_monotonic`` in s) up to ``until_ns``, each with its
        ``t_s`` on this clock."""
        return [{**e, "t_s": round(self.to_s(e["t_monotonic"] * 1e9), 4)}
                for e in events if e["t_monotonic"] * 1e9 <= until_ns]


def read_traffic(trial_dir: Path, nf: NetworkFunction, start_ns: int
                 ) -> tuple[GroundTruth, Traffic]:
    """A trial folder's ground truth (the sequencer's, SCR) and its traffic on the clock of
    ``start_ns``: what was sequenced, what the sequential reference passes of it (``nf``),
    what reached the sink (``sink_log.csv``)."""
    truth, trace_ids = read_ground_truth(trial_dir, SCR)
    reference = run_reference(nf, truth.packets)
    arrivals = read_int_csv(Path(trial_dir) / "sink_log.csv")  # trace_id, t_ns
    return truth, Traffic.of_run(start_ns, trace_ids, truth.packets, reference.verdicts,
                                 arrivals)


# --- the faults on the timeline ----------------------------------------------------------


def first_event(events: list[dict], t_s: float, key: str, port: int) -> dict | None:
    """The first event at or after ``t_s`` whose list ``key`` holds ``port``."""
    return next((e for e in events if port in e[key] and e["t_s"] >= t_s), None)


def since(event: dict | None, t_s: float) -> float | None:
    return round(event["t_s"] - t_s, 4) if event else None


def kill_reports(traffic: Traffic, rows: list[dict], events: list[dict], kills: list[dict],
                 port_of: Mapping[int, int]) -> list[dict]:
    """Per kill (``core``, ``t_ns``): its instant, when the controller declared the port
    dead, and when the rate was back."""
    out = []
    for kill in kills:
        kill_s = traffic.to_s(kill["t_ns"])
        dead = first_event(events, kill_s, "dead_ports", port_of[kill["core"]])
        out.append({"core": kill["core"], "kill_s": round(kill_s, 4),
                    "detected_s": since(dead, kill_s), "recovery_s": recovery_time(rows, kill_s)})
    return out


def rejoin_reports(traffic: Traffic, events: list[dict], rejoins: list[dict],
                   port_of: Mapping[int, int], results: Mapping[int, dict]) -> list[dict]:
    """Per rejoin (``core``, ``t_ns``, ``ready_ns``): how long the replacement took to be
    ready and to be sprayed to again, where it joined and what it processed since
    (``results``: the cores' result files by core)."""
    out = []
    for rejoin in rejoins:
        t_s = traffic.to_s(rejoin["t_ns"])
        back = first_event(events, t_s, "joined_ports", port_of[rejoin["core"]])
        state = results.get(rejoin["core"], {})
        out.append({
            "core": rejoin["core"], "start_s": round(t_s, 4),
            "ready_s": round(traffic.to_s(rejoin["ready_ns"]) - t_s, 4),
            "sprayed_again_s": since(back, t_s),
            "joined_at_seq": state.get("recovery", {}).get("joined_at"),
            "processed_after": state.get("stats", {}).get("processed", 0),
        })
    return out


def lost_at_dead_cores(traffic: Traffic, sprayed: list[int], dropped: Iterable[int],
                       kills: list[dict], rejoins: list[dict]) -> int:
    """Packets sprayed to a core while it was dead (from its kill until its replacement was
    ready), not counting those the sequencer ``dropped`` itself."""
    windows = []
    for kill in kills:
        joined = next((a["ready_ns"] for a in rejoins
                       if a["core"] == kill["core"] and a["t_ns"] > kill["t_ns"]), None)
        windows.append((kill["core"], kill["t_ns"], joined or math.inf))
    lost = set(dropped)
    return sum(1 for s, _t, ts in traffic.sequenced if s not in lost and any(
        sprayed[s] == core and lo <= ts < hi for core, lo, hi in windows))


# --- the pass rule -------------------------------------------------------------------------


@dataclass(frozen=True)
class PassRule:
    """Which parts of a fault run's verdict must hold (see the module's doc): the state
    always; strict equivalence, the rate back within ``limit_s`` and a faithful run when
    asked."""

    strict: bool = True
    rate: bool = True
    faithful: bool = False
    limit_s: float = RECOVERY_LIMIT_S

    def __post_init__(self):
        if not self.limit_s > 0:
            raise ValueError(f"the recovery limit must be > 0 s, got {self.limit_s}")

    def rate_back(self, recoveries: Iterable[float | None]) -> bool:
        """The rate check: back within ``limit_s`` of every fault (never back: failed)."""
        return all(r is not None and r < self.limit_s for r in recoveries)

    @property
    def required_parts(self) -> list[str]:
        flags = ((STRICT, self.strict), (RATE, self.rate), (FAITHFUL, self.faithful))
        return [STATE, *(part for part, on in flags if on)]

    def verdict(self, checks: Mapping[str, bool], part_of: Mapping[str, str],
                faithful: bool | None = None) -> dict:
        """Judge ``checks`` (name -> held), each in the part ``part_of`` names (state,
        strict or rate), and the fidelity monitor's ``faithful`` (None: not measured).
        ``{"parts", "required" (check names), "rule", "passed"}``."""
        unknown = [name for name in checks if part_of.get(name) not in (STATE, STRICT, RATE)]
        if unknown:
            raise ValueError(f"checks with no part of the rule: {', '.join(unknown)}")
        parts: dict[str, bool | None] = {}
        for part in (STATE, STRICT, RATE):
            held = [bool(ok) for name, ok in checks.items() if part_of[name] == part]
            parts[part] = all(held) if held else None
        parts[FAITHFUL] = faithful
        wanted = self.required_parts
        required = [name for name in checks if part_of[name] in wanted]
        passed = (all(checks[name] for name in required)
                  and (not self.faithful or faithful is True))
        return {"parts": parts, "required": required, "rule": asdict(self), "passed": passed}

