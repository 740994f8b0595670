"""A lab's definition (:class:`Lab`) and its grader: ``make check`` and ``make solution-check``.

A lab declares, in its folder's ``lab.py``, ``LAB = Lab(...)``: its number and title, the
files the student edits (the first one is loaded as a plugin, :mod:`nfs.plugins`, so that
the NFs, strategies or sequencer it declares run in the grader, in every worker and in the
shim), the pipeline ``make run`` brings up (:class:`RunSpec`) and its checks, in order.

A check is a function of a :class:`Grade`, which gives it the student's module, their
``answers.toml``, live trials (:meth:`Grade.trial`: the real testbed, with the student's file
as a plugin, checked by the same oracle as every experiment) and :meth:`Grade.fail`, which
ends the check with one line in the student's terms. :func:`grade` runs the checks in order
and stops at the first failure (a later check builds on an earlier one). Whatever goes
wrong becomes one line, never a traceback:

* a ``TODO`` left as ``raise NotImplementedError("TODO 2: ...")``: the file, line and TODO;
* an exception raised in the student's file: the file, line, exception and message;
* a worker that crashed in a live trial: its log's last error in the student's file;
* anything else: "the grader failed", which is the lab's bug, not the student's.

Every grading run writes ``results/labs/<lab>/<timestamp>/`` with its config (the lab, the
files graded, the git commit, versions) and the live trials' folders.

Caveat: the student's code runs with root's rights (as every process of a trial does): a
lab is for one's own machine, not for grading untrusted code on a shared one.
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from experiments.analysis.errors import TrialError
from experiments.runtime.calibration import Costs, calibrate
from experiments.runtime.config import TrialConfig
from experiments.runtime.preflight import EnvironmentProblem, check_environment
from experiments.runtime.results import new_run_dir, write_config
from experiments.runtime.trial import run_trial
from nfs.plugins import import_file, innermost_frame, load_plugin

ANSWERS = "answers.toml"


class LabFailure(Exception):
    """A check's verdict: the student's code or answer is wrong; the message says how."""


@dataclass(frozen=True)
class RunSpec:
    """The pipeline ``make run`` brings up: the NF, the strategy and the trace it sends."""

    nf: str = "ddos"
    strategy: str = "scr"
    cores: int = 4
    rate_pps: float = 300.0
    packets: int = 600  # the trace ``send`` replays by default
    flows: int = 40
    skew: float = 1.0
    trace: dict = field(default_factory=dict)  # any other TraceSpec field
    #: The lab's own trace instead of a TraceSpec's (a SYN flood, a crafted order), as frames.
    frames: Callable[[], list[bytes]] | None = None
    calibrated: bool = True  # give the NF its calibrated costs (µs of CPU time)
    config: dict = field(default_factory=dict)  # any other TrialConfig field


@dataclass(frozen=True)
class Check:
    """One check: ``run(grade)`` returns normally if it passes (``live``: it needs root and
    builds networks, ``name``: what the student sees)."""

    name: str
    run: Callable[[Grade], None]
    live: bool = False


@dataclass(frozen=True)
class Lab:
    """A lab, as its ``lab.py`` declares it (see the module docstring)."""

    number: int
    title: str
    files: tuple[str, ...]  # what the student edits; files[0] is loaded as a plugin
    checks: tuple[Check, ...]
    run: RunSpec = RunSpec()
    plugin: bool = True  # load files[0] as a plugin (False: e.g. a lab of answers only)
    #: ``make measure``: the lab's measurement for the student, as lines to print (live).
    measure: Callable[[Grade], list[str]] | None = None

    @property
    def name(self) -> str:
        return f"lab{self.number:02d}"


def run_option(name: str, default: str, choices: tuple[str, ...] = ()) -> str:
    """An option of ``make run`` (``make run NAME=value``: make passes it to the kit in the
    environment); ValueError (one line) if it is not one of ``choices``."""
    value = os.environ.get(name, default)
    if choices and value not in choices:
        raise ValueError(f"make run {name}={value}: choose from {', '.join(choices)}")
    return value


def flag_option(name: str) -> bool:
    """A yes/no option of ``make run`` (``NAME=1``/``0``, ``yes``/``no``), off by default."""
    value = run_option(name, "0").lower()
    if value not in ("0", "1", "yes", "no", "true", "false", "on", "off", ""):
        raise ValueError(f"make run {name}={value}: say 1 or 0")
    return value in ("1", "yes", "true", "on")


def int_option(name: str, default: int, minimum: int = 0) -> int:
    """An integer option of ``make run`` (at least ``minimum``)."""
    value = run_option(name, str(default))
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise ValueError(f"make run {name}={value}: an integer >= {minimum}, please")
    return number


def load_lab(lab_dir: Path) -> Lab:
    """The ``LAB`` that ``lab_dir/lab.py`` declares; ValueError (one line) if none."""
    module = import_file(lab_dir / "lab.py")
    lab = getattr(module, "LAB", None)
    if not isinstance(lab, Lab):
        raise ValueError(f"{lab_dir / 'lab.py'} declares no LAB = Lab(...)")
    return lab


class Grade:
    """What a check works with: the student's code and answers, live trials, ``fail``."""

    def __init__(self, lab: Lab, lab_dir: Path, solution: bool, out_dir: Path):
        self.lab = lab
        self.lab_dir = Path(lab_dir).resolve()
        self.solution = solution
        self.code_dir = self.lab_dir / "solution" if solution else self.lab_dir
        self.out_dir = out_dir
        self.module: ModuleType | None = None
        self._costs: Costs | None = None
        self._trials = 0
        self.last_trial_dir: Path | None = None  # the folder of the last live trial

    # -- the student's work --
    def path(self, name: str | None = None) -> Path:
        """The graded copy of the student's file ``name`` (default: the first)."""
        return self.code_dir / (name or self.lab.files[0])

    @property
    def plugins(self) -> tuple[str, ...]:
        return (str(self.path()),) if self.lab.plugin else ()

    def load(self) -> ModuleType:
        """Import the student's main file (the grader does it first): as a plugin, or, for a
        lab whose file declares nothing the testbed runs (``plugin=False``), as a module."""
        try:
            self.module = (load_plugin if self.lab.plugin else import_file)(self.path())
        except ValueError as err:
            self.fail(str(err))
        return self.module

    def answers(self) -> dict:
        """The student's ``answers.toml``, parsed."""
        path = self.path(ANSWERS)
        try:
            return tomllib.loads(path.read_text())
        except FileNotFoundError:
            self.fail(f"{ANSWERS} is missing: copy it back from git (git checkout {ANSWERS})")
        except tomllib.TOMLDecodeError as err:
            self.fail(f"{ANSWERS} is not valid TOML: {err}")

    def answer(self, key: str, kind: type = float, hint: str = "") -> Any:
        """The student's answer ``key`` as ``kind``; a failure if it is missing or a TODO."""
        value = self.answers().get(key, "TODO")
        if value == "TODO" or value == "":
            self.fail(f"{ANSWERS}: {key} is still TODO{': ' + hint if hint else ''}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            self.fail(f"{ANSWERS}: {key} = {value!r} is not a {kind.__name__}")

    # -- verdicts --
    @staticmethod
    def fail(message: str) -> NoReturn:
        """End the check: the student's code or answer is wrong, as ``message`` says."""
        raise LabFailure(message)

    @staticmethod
    def info(message: str) -> None:
        print(f"      {message}", flush=True)

    # -- the testbed --
    def costs(self) -> Costs:
        """This machine's calibrated NF costs (measured once per grading run)."""
        if self._costs is None:
            self._costs = calibrate()
        return self._costs

    def config(self, calibrated: bool = True, **fields) -> TrialConfig:
        """A trial's configuration with the student's file as a plugin; ``calibrated``
        gives the NF this machine's calibrated costs."""
        if calibrated:
            costs = self.costs()
            fields = {"nf_params": {**costs.nf_params(), **fields.get("nf_params", {})},
                      "spin_ns": costs.ns_per_round, "transfer_work": costs.transfer_work,
                      **{k: v for k, v in fields.items() if k != "nf_params"}}
        try:
            return TrialConfig(plugins=self.plugins, **fields)
        except ValueError as err:
            self.fail(f"the trial cannot run: {err}")

    def trial(self, trace: Path, config: TrialConfig, label: str = "") -> dict:
        """One live trial (a real network, the student's code in the workers and the shim),
        judged by the oracle; its result row. A crash of any process (the student's code
        in a worker or the shim) fails the check with the crash's line."""
        self._trials += 1
        out = self.out_dir / f"trial{self._trials:02d}{'-' + label if label else ''}"
        self.last_trial_dir = out
        try:
            result = run_trial(config, trace, out)
        except TrialError as err:
            self.fail(crash_line(out, self.student_paths()) or f"the live trial failed: {err}")
        crash = crash_line(out, self.student_paths())
        if crash:  # a core wrote its results as it died: the crash says more than the oracle
            self.fail(crash)
        return result

    def student_paths(self) -> list[Path]:
        return [self.path(name) for name in self.lab.files]


def first_problem(result: dict) -> str:
    """The oracle's first finding in a trial's result row (its problems are in order)."""
    return (result["check_problems"] or ["(no detail)"])[0]


def crash_line(out_dir: Path, student_paths: list[Path]) -> str | None:
    """The first crash in a live trial's process logs, in the student's terms (None)."""
    paths = {str(p.resolve()) for p in student_paths}
    for log in sorted(Path(out_dir).glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        if not any(line.startswith("Traceback") for line in lines):
            continue
        where = ""
        for line in lines:  # the innermost frame in a student's file
            stripped = line.strip()
            if stripped.startswith('File "'):
                parts = stripped.split(",")
                if str(Path(parts[0][6:-1]).resolve()) in paths:
                    where = f"{Path(parts[0][6:-1]).name}, {parts[1].strip()}"
        error = next((line for line in reversed(lines) if line and not line[0].isspace()),
                     "")
        return f"{log.stem} crashed{' in ' + where if where else ''}: {error}"
    return None


def student_line(err: BaseException, student_paths: list[Path]) -> str | None:
    """``"file.py, line N"`` of the innermost frame of ``err`` in a student's file."""
    found = innermost_frame(err, student_paths)
    return f"{found[0].name}, line {found[1]}" if found else None


def explain(err: BaseException, student_paths: list[Path]) -> str:
    """One line for an exception a check raised (see the module docstring)."""
    if isinstance(err, LabFailure):
        return str(err)
    where = student_line(err, student_paths)
    if isinstance(err, NotImplementedError) and where:
        return f"{where}: {err or 'a TODO is not done yet'}"
    if isinstance(err, SystemExit):
        return f"{where or 'the code'} called sys.exit({err.code!r}): a lab's code must return"
    if where:
        return f"{where} raised {type(err).__name__}: {err}"
    return (f"the grader failed ({type(err).__name__}: {err}); this is a bug in the lab, "
            "not in your code: please report it")


def grade(lab_dir: Path, solution: bool = False, results_root: Path | None = None,
          offline_only: bool = False) -> int:
    """Run ``lab_dir``'s checks on the student's files (``solution``: on ``solution/``);
    print one line per check, and one line per failure; 0 if every check passed."""
    started = time.monotonic()
    lab = load_lab(lab_dir)
    out_dir = new_run_dir(f"labs/{lab.name}{'-solution' if solution else ''}", results_root)
    g = Grade(lab, lab_dir, solution, out_dir)
    write_config(out_dir, {"lab": lab.name, "title": lab.title, "solution": solution,
                           "files": [str(p) for p in g.student_paths()]},
                 run=asdict(lab.run))
    which = "the solution" if solution else "your code"
    print(f"Lab {lab.number}: {lab.title} - grading {which} ({g.code_dir})", flush=True)
    checks = [c for c in lab.checks if not (offline_only and c.live)]
    try:
        g.load()
    except LabFailure as err:
        print(f"FAIL {err}", flush=True)
        return 1
    for i, check in enumerate(checks, 1):
        print(f"[{i}/{len(checks)}] {check.name} ...", flush=True)
        if check.live and not any(c.live for c in checks[:i - 1]):
            try:  # only now: an offline failure needs no network, nor a free machine
                check_environment()
            except EnvironmentProblem as err:
                print(f"cannot grade the live checks: {err}", file=sys.stderr)
                return 2
        try:
            check.run(g)
        except (Exception, SystemExit) as err:  # every failure is one line; see explain()
            print(f"FAIL {explain(err, g.student_paths())}", flush=True)
            print(f"({i - 1} of {len(checks)} checks passed; results: {out_dir})")
            return 1
        print("      ok", flush=True)
    print(f"PASS: all {len(checks)} checks in {time.monotonic() - started:.0f} s "
          f"(results: {out_dir})")
    return 0

