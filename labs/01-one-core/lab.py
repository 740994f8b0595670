"""Lab 1's definition and checks: one core's MLFFR, by hand and by bisection (``mlffr.py``).

The student measures, with ``make run`` and ``send PACKETS RATE``, the MLFFR of one emulated
core (strategy ``single``, NF ddos, calibrated costs) and writes it in ``answers.toml`` with
what follows from it; then completes ``mlffr.py``: :func:`faithful_loss` (retry an
unfaithful point) and :func:`find_mlffr` (the bisection).

Checks, in order:

1. ``answers.toml`` (offline): the MLFFR is a rate, ``per_packet_us`` follows from it and
   the core's CPU share, the loss predicted at twice the MLFFR, the fidelity rule that fired
   on a machine with no idle CPU;
2. ``faithful_loss`` on scripted measurements (offline);
3. ``find_mlffr`` on simulated cores whose MLFFR is known (offline): clean, noisy, with
   unfaithful first tries, behind a testbed that cannot measure above some rate, and with
   ``threshold`` and ``precision`` other than the defaults;
4. live: the testbed's own measurement of the core's capacity
   (:func:`experiments.runtime.capacity.measure_capacity`: two short trials, the CPU time
   the busy core spends per packet) against the student's ``mlffr_pps``.

The live tolerance: with ``send 2000 RATE`` trials, a hand-found MLFFR is ~1.1-1.15 times
the measured capacity (the 4 % loss allowed, and the core's receive queue holding a backlog
of ~90-180 frames that the core finishes after the traffic); measured here: MLFFR 639-650
pps by bisection (3 runs), capacity 493-616 pps (16 runs), so 640 pps was 1.04 to 1.30
times the capacity (median 1.11; the capacity drops when the machine is busier). The check
accepts ``mlffr_pps`` within ±30 % of 1.15 x capacity. When the testbed's overloaded probe
is unfaithful, the capacity is measured once more.

Caveat: a simulated core is a formula (loss = 1 - capacity / rate above capacity), not the
testbed: the offline checks test the search, the live check the student's hand measurement.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from experiments.analysis.collect import read_result
from experiments.runtime.capacity import measure_capacity
from experiments.runtime.cpu_quota import DEFAULT_CORE_SHARE
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from labs.kit import Check, Grade, Lab, LabFailure, RunSpec

THRESHOLD = 0.04  # the MLFFR's loss threshold (the paper's artifact; mlffr.THRESHOLD)
TRIAL_PACKETS = 2000  # what one `send` replays: the trial length the README asks for
#: A hand-found MLFFR over the measured capacity (see the module docstring), and the
#: tolerance around it.
EXPECTED_RATIO = 1.15
TOLERANCE = 0.30
CAPACITY_TRACE = TraceSpec(packets=4000, flows=40, skew=1.0)  # longer than both probes
MEASURE_TRIES = 2  # the live capacity measurement, again when its probe is unfaithful
MAX_CALLS = 400  # a search that measures more than this never ends
BOTTLENECKS = ("generator", "shim", "sink", "ovs", "cpu")  # analysis/fidelity.py's names


# -- the student's file ---------------------------------------------------------------------

# -- 1. answers.toml -------------------------------------------------------------------------

def check_answers(g: Grade) -> None:
    mlffr = g.answer("mlffr_pps", float, "the highest rate (pps) at which `send 2000 RATE` "
                     "loses at most 4 %, found with make run")
    if not 50 <= mlffr <= 20_000:
        g.fail(f"answers.toml: mlffr_pps = {mlffr:g} is no rate one 0.1-CPU core carries "
               "(a few hundred pps): write the offered rate in packets per second")
    per_packet = g.answer("per_packet_us", float, "core_share x 1e6 / mlffr_pps, the CPU "
                          "time one packet costs the core, in µs")
    want = DEFAULT_CORE_SHARE * 1e6 / mlffr
    if not math.isclose(per_packet, want, rel_tol=0.03):
        unit = (" (that is in seconds: write µs)" if math.isclose(per_packet * 1e6, want,
                                                                 rel_tol=0.03) else "")
        g.fail(f"answers.toml: per_packet_us = {per_packet:g}, but a core with "
               f"{DEFAULT_CORE_SHARE} of a CPU that carries {mlffr:g} pps spends "
               f"{DEFAULT_CORE_SHARE} x 1e6 / {mlffr:g} = {want:.0f} µs of CPU per "
               f"packet{unit}")
    loss = g.answer("loss_at_2x", float, "the loss you predict at twice your MLFFR, as a "
                    "fraction (0.25 for 25 %)")
    if 1 < loss <= 100:
        g.fail(f"answers.toml: loss_at_2x = {loss:g} is not a fraction: write 0.25 for 25 %")
    if not 0.42 <= loss <= 0.58:
        g.fail(f"answers.toml: loss_at_2x = {loss:g}, but a core offered twice what it "
               "carries processes about its capacity and loses the rest: loss = 1 - "
               "capacity / rate, about 1 - 1/2 = 0.5 at twice the MLFFR (accepted: 0.42 to "
               "0.58)")
    seen = str(g.answer("bottleneck", str, "the fidelity monitor's `bottleneck` of the "
                        "point you sent with every CPU busy (trial.json)")).strip().lower()
    names = [n.strip() for n in seen.replace(",", ";").split(";") if n.strip()]
    unknown = [n for n in names if n not in BOTTLENECKS]
    if unknown or not names:
        g.fail(f"answers.toml: bottleneck = {seen!r}: the fidelity monitor names "
               f"{', '.join(BOTTLENECKS)} (experiments/analysis/fidelity.py); copy the "
               "`bottleneck` of your unfaithful point from its trial.json")
    if "cpu" not in names:
        g.fail(f"answers.toml: bottleneck = {seen!r}, but one busy loop per CPU leaves "
               "the whole machine without idle time (the rule is about the machine, not one "
               "process): send again with the busy loops running and read that trial's "
               "`bottleneck` in its trial.json")
    g.info(f"MLFFR {mlffr:g} pps by hand: {want:.0f} µs of CPU per packet at "
           f"{DEFAULT_CORE_SHARE} CPU (the live check compares it with the testbed's own "
           "measurement)")


# -- 2. faithful_loss ------------------------------------------------------------------------

class Script:
    """A scripted ``measure``: returns the given (loss, faithful) points in turn."""

    def __init__(self, points: list[tuple[float, bool]]):
        self.points = points
        self.rates: list[float] = []

    def __call__(self, rate: float) -> tuple[float, bool]:
        if len(self.rates) >= len(self.points):
            raise LabFailure(f"faithful_loss measured {len(self.rates) + 1} times, with "
                             f"these points: {self.describe()} (it may measure at most "
                             "1 + retries times, and stops at the first faithful point)")
        self.rates.append(rate)
        return self.points[len(self.rates) - 1]

    def describe(self) -> str:
        return ", ".join(f"loss {loss:g} {'faithful' if ok else 'UNFAITHFUL'}"
                         for loss, ok in self.points)


def check_faithful_loss(g: Grade) -> None:
    module = g.module
    cases = [  # (points measure returns, retries, what faithful_loss must return)
        ([(0.10, True)], 2, 0.10),
        ([(0.00, False), (0.02, True)], 2, 0.02),
        ([(0.00, False), (0.00, False), (0.30, True)], 2, 0.30),
        ([(0.00, False), (0.00, False), (0.00, False)], 2, None),
        ([(0.00, False)], 0, None),
        ([(0.00, False), (0.00, False), (0.00, False), (0.07, True)], 3, 0.07),
    ]
    for points, retries, want in cases:
        script = Script(points)
        got = module.faithful_loss(script, 500.0, retries)
        calls = len(script.rates)
        where = f"with retries={retries} and the points {script.describe()}"
        if any(r != 500.0 for r in script.rates):
            g.fail(f"faithful_loss(measure, 500, {retries}) measured "
                   f"{sorted(set(script.rates))} pps: it must measure the rate it is given")
        if want is None and got is not None:
            g.fail(f"faithful_loss returned {got!r} {where}: no try was faithful, and an "
                   "unfaithful point measures the machine, not the core: return None")
        if got is None and want is not None:
            g.fail(f"faithful_loss returned None {where}: an unfaithful point must be "
                   "measured again, up to `retries` more times (1 + retries tries in all), "
                   "and the first faithful point's loss returned")
        if got != want and any(got == loss and not ok for loss, ok in points):
            g.fail(f"faithful_loss returned {got!r} {where}: that is the loss of an "
                   "unfaithful point, which measures the machine, not the core; return the "
                   "loss of the first faithful point")
        if got != want:
            g.fail(f"faithful_loss returned {got!r} {where}: return the loss of the first "
                   "faithful point")
        need = next((i + 1 for i, (_l, ok) in enumerate(points) if ok), 1 + retries)
        if calls != need:
            g.fail(f"faithful_loss measured {calls} times {where}: measure once, and again "
                   "only while the point is unfaithful, at most 1 + retries times in all")
    g.info("faithful_loss retries unfaithful points, returns None when none was faithful")


# -- 3. find_mlffr ---------------------------------------------------------------------------

class SimCore:
    """A simulated core behind a simulated testbed: ``measure(rate) -> (loss, faithful)``.

    Above its ``capacity`` (pps) the core processes ``capacity`` and loses the rest; the
    loss gets Gaussian ``noise`` (seeded), or is rounded to ``digits`` decimals (a loss of
    exactly 4 % happens). ``unfaithful_first``: the first trial at each rate is unfaithful;
    ``limit``: the testbed cannot keep up above that rate (every point there is
    unfaithful). An unfaithful point reports no loss: it is tempting, and wrong."""

    def __init__(self, capacity: float, *, noise: float = 0.0, seed: int = 1,
                 digits: int | None = None, unfaithful_first: bool = False,
                 limit: float | None = None):
        self.capacity = capacity
        self.noise = noise
        self.rng = random.Random(seed)
        self.digits = digits
        self.unfaithful_first = unfaithful_first
        self.limit = limit
        self.calls: list[tuple[float, float, bool]] = []  # (rate, loss, faithful)

    def true_loss(self, rate: float) -> float:
        return max(0.0, 1 - self.capacity / rate)

    def mlffr(self, threshold: float) -> float:
        """The highest rate this core passes at, as far as the testbed can measure."""
        # Rounded to d decimals, a loss passes up to threshold + 0.5e-d.
        edge = threshold + (0.5 * 10 ** -self.digits if self.digits is not None else 0.0)
        rate = self.capacity / (1 - edge)
        return min(rate, self.limit) if self.limit is not None else rate

    def __call__(self, rate: float) -> tuple[float, bool]:
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise LabFailure(f"find_mlffr measured the rate {rate!r}: a rate is a number "
                             "of packets per second > 0")
        if len(self.calls) >= MAX_CALLS:
            raise LabFailure(f"find_mlffr measured more than {MAX_CALLS} points without "
                             "returning: stop when hi - lo <= precision * hi")
        faithful = not (self.limit is not None and rate > self.limit)
        if self.unfaithful_first and all(r != rate for r, _l, _f in self.calls):
            faithful = False
        loss = 0.0
        if faithful:
            loss = min(1.0, max(0.0, self.true_loss(rate) + self.rng.gauss(0, self.noise)))
            if self.digits is not None:
                loss = round(loss, self.digits)
        self.calls.append((rate, loss, faithful))
        return loss, faithful

    def verdicts(self, threshold: float) -> dict[float, bool]:
        """Each rate measured: whether it passed (its first faithful point's loss <=
        ``threshold``; never faithful: it did not)."""
        first: dict[float, float | None] = {}
        for rate, loss, ok in self.calls:
            if first.get(rate) is None:
                first[rate] = loss if ok else None
        return {r: loss is not None and loss <= threshold for r, loss in first.items()}


#: (what the case is, the core, lo, hi, keyword arguments for find_mlffr)
SEARCH_CASES = [
    ("a core of 600 pps", lambda: SimCore(600), 100, 3000, {}),
    ("a core of 250 pps", lambda: SimCore(250), 50, 1000, {}),
    ("a core of 1800 pps", lambda: SimCore(1800), 100, 5000, {}),
    ("a core of 600 pps", lambda: SimCore(600), 100, 3000, {"precision": 0.005}),
    ("a core of 600 pps", lambda: SimCore(600), 100, 3000, {"precision": 0.2}),
    ("a core of 600 pps", lambda: SimCore(600), 100, 3000, {"threshold": 0.10}),
    ("a core of 600 pps whose loss is noisy (±1 %)", lambda: SimCore(600, noise=0.01),
     100, 3000, {}),
    ("a core of 600 pps whose loss is measured in whole %", lambda: SimCore(600, digits=2),
     100, 3000, {"precision": 0.002}),
    ("a core of 100 pps", lambda: SimCore(100), 200, 1000, {}),
    ("a core of 5000 pps", lambda: SimCore(5000), 100, 1000, {}),
    ("a core of 600 pps whose first trial at each rate is unfaithful",
     lambda: SimCore(600, unfaithful_first=True), 100, 3000, {}),
    ("a core of 2000 pps on a testbed that keeps up only to 900 pps",
     lambda: SimCore(2000, limit=900), 100, 5000, {}),
    ("a testbed on which no point is faithful", lambda: SimCore(600, limit=0), 100, 3000,
     {}),
]


def judge_search(core: SimCore, what: str, lo: float, hi: float, kwargs: dict,
                 got) -> str | None:
    """What is wrong with ``got``, find_mlffr's answer on ``core`` (None: nothing)."""
    threshold = kwargs.get("threshold", THRESHOLD)
    precision = kwargs.get("precision", 0.02)
    call = f"find_mlffr(measure, {lo}, {hi}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
    if not isinstance(got, (int, float)) or isinstance(got, bool) or not math.isfinite(got):
        return f"{call} returned {got!r} for {what}: it must return a rate (pps), or 0.0"
    outside = [r for r, _l, _f in core.calls if not lo <= r <= hi]
    if outside:
        return (f"{call} measured {outside[0]:g} pps for {what}, outside the range "
                f"[{lo}, {hi}] it was given: bisect between lo and hi")
    want = min(core.mlffr(threshold), hi)  # a core that passes at hi: hi
    verdicts = core.verdicts(threshold)
    if want < lo:
        if got != 0:
            return (f"{call} returned {got:g} pps for {what}, but the core does not pass "
                    f"at {lo} pps (lo): when lo does not pass, return 0.0")
        return None
    if got > want * (1 + 1e-9) + 3 * core.noise * want:
        if core.limit is not None and got > core.limit:
            return (f"{call} returned {got:g} pps for {what}, but every point above "
                    f"{core.limit:g} pps was unfaithful: the testbed cannot vouch for "
                    "those rates, so they do not pass")
        why = f"the MLFFR is the highest rate with loss <= {threshold:.0%}"
        if any(not ok and math.isclose(r, got) for r, _l, ok in core.calls):
            why = ("the point that passed there was unfaithful: an unfaithful point "
                   "measures the machine, not the core, so it never passes")
        return (f"{call} returned {got:g} pps for {what}, which loses "
                f"{core.true_loss(got):.1%} at {got:g}: {why}")
    if got != 0 and not any(ok and math.isclose(got, r, rel_tol=1e-9)
                            for r, ok in verdicts.items()):
        return (f"{call} returned {got:g} pps for {what}, a rate it never measured "
                f"faithfully with loss <= {threshold:.0%}: return lo, the highest rate "
                "that passed")
    better = [r for r, ok in verdicts.items() if ok and r > got * (1 + 1e-9)]
    if better:
        rate = min(better)
        loss = next(loss for r, loss, ok in core.calls if r == rate and ok)
        return (f"{call} returned {got:g} pps for {what}, but {rate:g} pps passed too "
                f"(loss {loss:.1%} <= threshold {threshold:g}): return the highest rate "
                "that passed; a loss equal to the threshold passes, and the threshold is "
                "the argument's")
    if got < hi:
        above = [r for r, ok in verdicts.items() if not ok and r > got]
        if not above:
            return (f"{call} returned {got:g} pps for {what}, but no rate above it was "
                    "found to fail: if hi passes, return hi; else bisect up to hi")
        fail = min(above)
        if fail - got > precision * fail * (1 + 1e-9):
            return (f"{call} returned {got:g} pps for {what}, but it had not measured "
                    f"between {got:g} (passed) and {fail:g} (failed): hi - lo = "
                    f"{fail - got:g} > precision * hi = {precision * fail:g}: bisect until "
                    "hi - lo <= precision * hi (the precision argument)")
    if got < want * (1 - precision - 0.001 - 4 * core.noise):
        hint = ("keep bisecting until hi - lo <= precision * hi, moving lo up to each "
                "rate that passes")
        if core.unfaithful_first:
            hint = ("an unfaithful point says nothing about the core: measure it again "
                    "(use faithful_loss or passes) before deciding")
        elif core.digits is not None:
            hint = (f"a loss of exactly {threshold:.0%} passes (loss <= threshold); the "
                    f"core loses {core.true_loss(want * 0.999):.1%} just below {want:.0f}")
        return (f"{call} returned {got:g} pps for {what}, but the core passes up to "
                f"{want:.0f} pps: {hint}")
    rates = len(verdicts)
    most = 3 + math.ceil(math.log2((hi - lo) / (precision * max(lo, want * (1 - precision)))))
    if rates > most:
        return (f"{call} measured {rates} different rates for {what}, where the bisection "
                f"needs at most {most}: stop as soon as hi - lo <= precision * hi (the "
                "precision argument)")
    return None


def check_find_mlffr(g: Grade) -> None:
    module = g.module
    for what, make, lo, hi, kwargs in SEARCH_CASES:
        core = make()
        got = module.find_mlffr(core, lo, hi, **kwargs)
        problem = judge_search(core, what, lo, hi, kwargs, got)
        if problem:
            g.fail(problem)
    g.info(f"{len(SEARCH_CASES)} simulated cores: every MLFFR found, unfaithful points "
           "retried and never trusted")


# -- 4. live ---------------------------------------------------------------------------------

def check_live(g: Grade) -> None:
    mlffr = g.answer("mlffr_pps", float)
    spec = LAB.run
    config = g.config(nf=spec.nf, strategy=spec.strategy, cores=spec.cores,
                      rate_pps=spec.rate_pps)
    trace = g.out_dir / "capacity-trace.pcap"
    write_pcap(trace, make_trace(CAPACITY_TRACE))
    for attempt in range(1, MEASURE_TRIES + 1):
        out = g.out_dir / f"capacity{attempt}"
        try:
            capacity = measure_capacity(config, trace, out)
        except Exception as err:  # a probe that failed is the testbed's problem, one line
            g.fail(f"the testbed could not measure the core's capacity: {err}")
        busy = read_result(Path(out / "busy" / "trial.json"))["result"]
        if busy["faithful"]:
            break
        # The lab's own lesson: an unfaithful point measures the machine; measure again.
        g.info(f"the testbed's overloaded probe was unfaithful (bottleneck "
               f"{busy['bottleneck']}): is something else busy on this machine? "
               f"{'measuring again' if attempt < MEASURE_TRIES else 'judging anyway'}")
    carried = capacity.per_core_pps
    expected = EXPECTED_RATIO * carried
    g.info(f"the testbed measured {capacity.cpu_us_per_packet:g} µs of CPU per packet: a "
           f"capacity of {carried:g} pps at {DEFAULT_CORE_SHARE} CPU")
    traffic_s = busy["sent"] / busy["offered_pps"]
    g.info(f"its overloaded probe: {busy['offered_pps']:g} pps for {traffic_s:.1f} s, loss "
           f"{busy['loss']:.0%} (1 - capacity / rate: "
           f"{max(0.0, 1 - carried / busy['offered_pps']):.0%}; the rest waited in the "
           f"core's receive queue: the core worked {busy['span_s']:g} s), faithful: "
           f"{busy['faithful']}")
    if abs(mlffr / expected - 1) > TOLERANCE:
        g.fail(f"mlffr_pps = {mlffr:g}, but the testbed measured this core's capacity at "
               f"{carried:g} pps ({capacity.cpu_us_per_packet:g} µs of CPU per packet at "
               f"{DEFAULT_CORE_SHARE} CPU), so a hand-found MLFFR (send {TRIAL_PACKETS} "
               f"RATE, loss <= 4 %) is about {EXPECTED_RATIO} x that = {expected:.0f} pps; "
               f"accepted: ±{TOLERANCE:.0%}, {expected * (1 - TOLERANCE):.0f} to "
               f"{expected * (1 + TOLERANCE):.0f} pps"
               + ("" if busy["faithful"] else "; the testbed's own measurement was "
                  "unfaithful: stop what else runs on this machine and check again"))
    g.info(f"your MLFFR {mlffr:g} pps is {mlffr / carried:.2f} x the measured capacity "
           f"(expected about {EXPECTED_RATIO}, accepted ±{TOLERANCE:.0%})")


LAB = Lab(
    number=1, title="One core and its limit", files=("mlffr.py",), plugin=False,
    checks=(
        Check("answers.toml: your MLFFR, the CPU time per packet, the loss at 2x, the "
              "fidelity rule", check_answers),
        Check("faithful_loss measures again while the point is unfaithful (TODO 1)",
              check_faithful_loss),
        Check("find_mlffr finds the MLFFR of simulated cores (TODO 2)", check_find_mlffr),
        Check("live: your mlffr_pps against the testbed's own capacity measurement",
              check_live, live=True),
    ),
    run=RunSpec(nf="ddos", strategy="single", cores=1, rate_pps=400,
                packets=TRIAL_PACKETS, flows=40, skew=1.0, calibrated=True),
)
