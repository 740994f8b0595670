"""Lab 6's definition and checks: locks versus replicas, measured and modelled.

Checks, in order: the four functions of ``model.py`` on a grid of cases against the
formulas written out here (offline; each failure names the case and the rule it breaks);
``answers.toml`` filled in with numbers in range (offline); then live: one run of the lab's
measurement (``measure.py``: SCR and the lock on 1 and 4 cores, the lock with and without
the transfer cost, each twice: eleven short trials, ~50 s) and the student's answers
compared with it, within the tolerances below (set from the spread of the measurement
over repeated runs on a busy 2-CPU machine; see the README).

Caveat: ``measure.py`` sits next to this file and is imported by its path (a lab's
``lab.py`` cannot import its siblings by name); the student runs the same file.
"""

from __future__ import annotations

import math
from pathlib import Path

from experiments.analysis.errors import TrialError
from labs.kit import Check, Grade, Lab, RunSpec
from labs.kit.grading import student_line
from nfs.plugins import import_file

measure = import_file(Path(__file__).with_name("measure.py"))

# Tolerances, from repeated measurements on this 2-CPU machine (2026-11-29, most of them
# while other jobs kept it busy): 27 passes over the five configurations, paired into 13
# best-of-two measurements as measure.py makes them. Each comment gives the standard
# deviation over those 13 and the mean. A student's run and the check's are both noisy,
# so each tolerance is 2.2-3 standard deviations of their difference (an honest answer
# fails now and then: the message says to run make measure again), and 3 or more of the
# solution's, whose answers are the means.
RATIO_TOLERANCE = 0.20  # relative; the 4-over-1 ratios: sd 4-6 % (3.86, 4.24, 3.37)
SLOWDOWN_TOLERANCE = 0.12  # relative; lock_4_over_1 / lock_4_over_1_free: sd 3.3 % (0.79)
MOVED_TOLERANCE = 0.03  # absolute; the moved share: sd 0.009 (0.712)
MODEL_TOLERANCE = 0.05  # relative; the model's slowdown t/(t + m x): sd 0.9 % (0.816)
REL = 1e-6  # the grid: exact formulas, up to rounding


# -- the formulas the grid is graded against ------------------------------------------
def ref_scr(n, t, c):
    return n * 1e6 / (t + (n - 1) * c)


def ref_moved(n):
    return (n - 1) / n


def ref_lock(n, t, x, share=None, hot=None):
    share = ref_moved(n) if share is None else share
    rate = n * 1e6 / (t + share * x)
    if hot and share * x > 0:
        rate = min(rate, 1e6 / (hot * share * x))
    return rate


def ref_crossover(n, t_scr, c, t_lock, share=None):
    share = ref_moved(n) if share is None else share
    gap = t_scr + (n - 1) * c - t_lock
    if gap <= 0:
        return 0.0
    return math.inf if share <= 0 else gap / share


# -- helpers ----------------------------------------------------------------------------
def close(got, want, rel=REL) -> bool:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return False
    if math.isinf(want):
        return got == want
    return math.isfinite(got) and abs(got - want) <= rel * max(abs(want), 1e-9)


def case(name: str, **kwargs) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def call(g: Grade, name: str, **kwargs):
    """The student's ``name(**kwargs)``; a crash becomes one line naming the case (a TODO
    still raises NotImplementedError, which the grader reports as the TODO)."""
    function = getattr(g.module, name, None)
    if not callable(function):
        g.fail(f"model.py has no function {name}: put it back from git")
    try:
        return function(**kwargs)
    except NotImplementedError:
        raise
    except Exception as err:  # the student's bug: say which case, where, and what
        where = student_line(err, g.student_paths()) or "model.py"
        g.fail(f"{case(name, **kwargs)} raised {type(err).__name__} ({err}) at {where}")


def show(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


# -- the offline checks -----------------------------------------------------------------
def check_scr(g: Grade) -> None:
    for n in (1, 2, 4, 8, 16):
        for t in (0.5, 165.0):
            for c in (0.0, 0.02, 1.5):
                got = call(g, "scr_mlffr", n=n, t_us=t, c_us=c)
                want = ref_scr(n, t, c)
                if close(got, want):
                    continue
                if close(got, want / 1e6) or close(got, want * 1e6):
                    why = "t and c are µs per packet: a rate in pps is 1e6 / (µs per packet)"
                elif close(got, n * 1e6 / (t + n * c)):
                    why = ("a core applies one record per packet of the OTHER n-1 cores, "
                           "not n: its own packet is processed, not fast-forwarded")
                elif close(got, ref_scr(n, t, c) / n):
                    why = ("that is one core's rate: the n cores together carry n packets "
                           "in the time each spends on t + (n-1) c")
                else:
                    why = "the paper's model is MLFFR(n) = n * 1e6 / (t + (n-1) * c) pps"
                g.fail(f"{case('scr_mlffr', n=n, t_us=t, c_us=c)} gave {show(got)}, not "
                       f"{show(want)}: {why}")


def check_moved(g: Grade) -> None:
    for n in (1, 2, 3, 4, 8, 16):
        got = call(g, "moved_share", n=n)
        want = ref_moved(n)
        if close(got, want):
            continue
        if close(got, 1 / n):
            why = ("that is the share whose previous packet was on THIS core; the key "
                   "moved when it was on one of the n-1 others")
        elif isinstance(got, (int, float)) and not 0 <= got <= 1:
            why = "a share is between 0 and 1: (n-1) of every n packets"
        else:
            why = "the previous packet is on another core n-1 times in n"
        g.fail(f"{case('moved_share', n=n)} gave {show(got)}, not {show(want)}: {why}")


def check_lock(g: Grade) -> None:
    cases = [dict(n=n, t_us=t, transfer_us=x) for n in (1, 2, 4, 8)
             for t in (0.2, 190.0) for x in (0.0, 0.1, 55.0)]
    cases += [dict(n=4, t_us=180.0, transfer_us=55.0, share_moved=0.7),
              dict(n=4, t_us=180.0, transfer_us=55.0, share_moved=0.0),
              dict(n=16, t_us=0.2, transfer_us=0.1, share_moved=None, hot_share=0.4),
              dict(n=2, t_us=0.2, transfer_us=0.1, share_moved=None, hot_share=0.4),
              dict(n=16, t_us=0.2, transfer_us=0.0, share_moved=None, hot_share=0.4),
              dict(n=1, t_us=0.2, transfer_us=0.1, share_moved=None, hot_share=0.4),
              dict(n=8, t_us=180.0, transfer_us=55.0, share_moved=0.7, hot_share=0.17)]
    for kw in cases:
        got = call(g, "lock_mlffr", **kw)
        n, t, x = kw["n"], kw["t_us"], kw["transfer_us"]
        share, hot = kw.get("share_moved"), kw.get("hot_share")
        want = ref_lock(n, t, x, share, hot)
        if close(got, want):
            continue
        m = ref_moved(n) if share is None else share
        if close(got, want / 1e6) or close(got, want * 1e6):
            why = "t and the transfer are µs per packet: a rate in pps is 1e6 / µs"
        elif close(got, ref_lock(n, t, x, 1.0, hot)):
            why = (f"only the share of packets whose key moved (here {m:.3g}) pays the "
                   "transfer; the others find the state where they left it")
        elif close(got, n * 1e6 / (t + (n - 1) * x)):
            why = ("a moved key costs one transfer, not one per other core (that is "
                   "SCR's history: n-1 records)")
        elif share is None and close(got, ref_lock(n, t, x, 0.0, hot)):
            why = "share_moved=None means the default: moved_share(n)"
        elif hot and close(got, ref_lock(n, t, x, share, None)):
            why = (f"with hot_share={hot}, the hot key's lock is busy {m:.3g} x {x} µs per "
                   "packet of that key, so at most 1e6 / (hot_share x that) pps pass in "
                   "all: return the smaller rate")
        elif close(got, ref_lock(n, t, x, share, None) / n):
            why = "that is one core's rate: the n cores work in parallel"
        else:
            why = ("the lock's model is n * 1e6 / (t + share_moved * transfer) pps, "
                   "capped by 1e6 / (hot_share * share_moved * transfer) when hot_share "
                   "is given")
        g.fail(f"{case('lock_mlffr', **kw)} gave {show(got)}, not {show(want)}: {why}")


def check_crossover(g: Grade) -> None:
    cases = [dict(n=4, t_scr_us=180.0, c_us=1.5, t_lock_us=170.0),
             dict(n=4, t_scr_us=180.0, c_us=1.5, t_lock_us=170.0, share_moved=0.7),
             dict(n=4, t_scr_us=165.0, c_us=1.5, t_lock_us=175.0),
             dict(n=4, t_scr_us=170.0, c_us=0.0, t_lock_us=170.0),
             dict(n=16, t_scr_us=0.2, c_us=0.01, t_lock_us=0.25),
             dict(n=2, t_scr_us=100.0, c_us=10.0, t_lock_us=100.0),
             dict(n=1, t_scr_us=180.0, c_us=1.5, t_lock_us=170.0),
             dict(n=1, t_scr_us=160.0, c_us=1.5, t_lock_us=170.0),
             dict(n=4, t_scr_us=180.0, c_us=1.5, t_lock_us=170.0, share_moved=0.0)]
    for kw in cases:
        got = call(g, "crossover", **kw)
        n, ts, c, tl = kw["n"], kw["t_scr_us"], kw["c_us"], kw["t_lock_us"]
        share = kw.get("share_moved")
        want = ref_crossover(n, ts, c, tl, share)
        if close(got, want):
            continue
        m = ref_moved(n) if share is None else share
        gap = ts + (n - 1) * c - tl
        if isinstance(got, (int, float)) and got < 0:
            why = ("the lock loses even with free transfers here: return 0.0 (a transfer "
                   "cost is never negative)")
        elif want == 0 and isinstance(got, float) and math.isinf(got):
            why = ("the lock costs at least as much per packet as SCR even with free "
                   "transfers, so it loses at x = 0 whether or not keys move: return 0.0")
        elif math.isinf(want):
            why = ("no key moves here (share_moved is 0), so no transfer cost makes the "
                   "lock lose: return math.inf")
        elif close(got, gap):
            why = (f"a packet pays the transfer only when its key moved ({m:.3g} of them):"
                   " divide the difference in cost per packet by that share")
        elif close(got, (ts - tl) / m if m else math.inf):
            why = (f"SCR's cost per packet on {n} cores is t + (n-1) c, not t: the history "
                   "counts")
        else:
            why = ("solve t_lock + share_moved * x == t_scr + (n-1) * c for x (0.0 if the "
                   "lock already loses at x = 0, math.inf if no key moves)")
        g.fail(f"{case('crossover', **kw)} gave {show(got)}, not {show(want)}: {why}")


#: The answers, what range each must be in, and the hint when it is still TODO.
ANSWERS = {
    "scr_4_over_1": ((0.5, 8.0), "capacity of scr on 4 cores / on 1 core (make measure)"),
    "lock_4_over_1_free": ((0.5, 8.0), "lock on 4 cores with transfer 0 / lock on 1 core"),
    "lock_4_over_1": ((0.5, 8.0), "lock on 4 cores with transfer 55 / lock on 1 core"),
    "moved_share": ((0.0, 1.0), "the moved column of lock on 4 cores, transfer 55"),
    "transfer_slowdown_model": ((0.0, 1.0), "lock_mlffr(4, t, 55, moved) / "
                                            "lock_mlffr(4, t, 0, moved), t: lock on 4 "
                                            "cores with transfer 0, µs per packet"),
}


def check_answers_filled(g: Grade) -> None:
    for key, ((low, high), hint) in ANSWERS.items():
        value = g.answer(key, float, hint)
        if not low <= value <= high:
            g.fail(f"answers.toml: {key} = {value} is outside [{low}, {high}]: {hint}")


# -- the live check -----------------------------------------------------------------------
def model_slowdown(t_us: float, moved: float, transfer_us: float) -> float:
    return ref_lock(4, t_us, transfer_us, moved) / ref_lock(4, t_us, 0.0, moved)


def check_measured(g: Grade) -> None:
    try:
        rows = measure.measure(g.out_dir / "measure", g.costs(), g.info)
    except TrialError as err:  # the testbed's trouble, not the student's answers
        g.fail(f"the measurement could not run (not your answers' fault): {err}; run make "
               "check again")
    for line in measure.table(rows).splitlines():
        g.info(line)
    by = {r.point: r for r in rows}
    scr1, scr4, lock1, free4, lock4 = (by[p] for p in measure.POINTS)
    if not all(r.faithful for r in rows):
        g.info("some trial was not faithful (the machine was busy): if a ratio fails, "
               "run make check again on a quieter machine")
    measured = {"scr_4_over_1": scr4.capacity_pps / scr1.capacity_pps,
                "lock_4_over_1_free": free4.capacity_pps / lock1.capacity_pps,
                "lock_4_over_1": lock4.capacity_pps / lock1.capacity_pps}
    names = {"scr_4_over_1": "SCR on 4 cores over SCR on 1",
             "lock_4_over_1_free": "lock on 4 cores (transfer 0) over lock on 1",
             "lock_4_over_1": "lock on 4 cores (transfer 55 µs) over lock on 1"}
    answers = {key: g.answer(key, float) for key in ANSWERS}
    for key, want in measured.items():
        got = answers[key]
        if abs(got - want) > RATIO_TOLERANCE * want:
            g.fail(f"{key} = {got:g}, but this check measured {want:.2f} ({names[key]}, "
                   f"capacity pps; tolerance ±{RATIO_TOLERANCE:.0%}): divide the two "
                   "configurations' capacities from ONE run of make measure (if you did, "
                   "that run was unlucky: run it again)")
    slowdown = measured["lock_4_over_1"] / measured["lock_4_over_1_free"]
    yours = answers["lock_4_over_1"] / answers["lock_4_over_1_free"]
    if abs(yours - slowdown) > SLOWDOWN_TOLERANCE * slowdown:
        g.fail(f"your lock_4_over_1 / lock_4_over_1_free = {yours:.3f}, but the 55 µs "
               f"transfer slowed the lock on 4 cores to {slowdown:.3f} of its speed here "
               f"(tolerance ±{SLOWDOWN_TOLERANCE:.0%}): take both ratios from the same run "
               "of make measure, each over the lock on 1 core")
    moved = lock4.moved
    if abs(answers["moved_share"] - moved) > MOVED_TOLERANCE:
        g.fail(f"moved_share = {answers['moved_share']:g}, but this check measured "
               f"{moved:.3f} (tolerance ±{MOVED_TOLERANCE}): the measured 'moved' column "
               f"of lock on 4 cores, not the model's (n-1)/n = 0.75")
    model = model_slowdown(free4.cpu_us, moved, lock4.transfer_us)
    got = answers["transfer_slowdown_model"]
    if abs(got - model) > MODEL_TOLERANCE * model:
        g.fail(f"transfer_slowdown_model = {got:g}, but the model gives {model:.3f} with "
               f"this run's t = {free4.cpu_us} µs (lock, 4 cores, transfer 0) and moved = "
               f"{moved:.3f} (tolerance ±{MODEL_TOLERANCE:.0%}): lock_mlffr(4, t, "
               f"{lock4.transfer_us:g}, moved) / lock_mlffr(4, t, 0, moved)")
    # Not graded: the lock and SCR cost about the same on 4 cores here, so where they cross
    # is a difference of two trials' costs, 0 to 34 µs over 27 passes (see the README).
    cross = ref_crossover(4, scr1.cpu_us, (scr4.cpu_us - scr1.cpu_us) / 3, free4.cpu_us,
                          moved)
    g.info(f"measured: the transfer slowed the lock on 4 cores to {slowdown:.3f}; the "
           f"model says {model:.3f}; the lock loses to SCR on 4 cores from a transfer of "
           f"{cross:.1f} µs")


LAB = Lab(
    number=6, title="Locks versus replicas: measure, then model", files=("model.py",),
    checks=(
        Check("scr_mlffr is the paper's model (TODO 1)", check_scr),
        Check("moved_share: how often a key's state moves (TODO 2)", check_moved),
        Check("lock_mlffr: the lock's model (TODO 3)", check_lock),
        Check("crossover: where the lock starts to lose (TODO 4)", check_crossover),
        Check("answers.toml is filled in", check_answers_filled),
        Check("live: your answers match a new measurement (~50 s)", check_measured,
              live=True),
    ),
    run=RunSpec(nf="ddos", strategy="lock", cores=4, rate_pps=1000, packets=3000,
                flows=200, config={"nf_params": {"threshold": measure.NEVER}}),
    plugin=False,
    measure=measure.report,
)
