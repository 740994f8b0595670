"""The labs' grader: every failure is one line in the student's terms, and it can fail.

Lab 4 (the fast-forward) is graded offline here, on a copy of its folder: the pristine
starter fails with its first TODO, the solution passes, and a bug injected into the solution
(records applied newest first, a record skipped, ``applied`` never advanced) is caught with
the line that names it. ``explain`` and ``crash_line`` turn exceptions and crashed workers'
logs into one line; ``first_record_error`` names a replica's first wrong record.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labs.kit.checks import first_record_error
from labs.kit.grading import LabFailure, crash_line, explain, grade

LABS_DIR = Path(__file__).resolve().parents[3] / "labs"
LAB4 = LABS_DIR / "04-fast-forward"
LABS = sorted(p for p in LABS_DIR.glob("[0-9][0-9]-*") if p.is_dir())


@pytest.fixture
def lab4(tmp_path):
    """A copy of lab 4 whose student file is the solution (bugs get injected into it)."""
    lab = tmp_path / "lab"
    shutil.copytree(LAB4, lab)
    shutil.copy(lab / "solution" / "fast_forward.py", lab / "fast_forward.py")
    return lab

pytestmark = pytest.mark.usefixtures("restore_registries")


def graded(lab: Path, tmp_path: Path, capsys, solution: bool = False) -> tuple[int, list[str]]:
    rc = grade(lab, solution, tmp_path / "results", offline_only=True)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return rc, [line for line in captured.out.splitlines() if line.startswith("FAIL")]


def test_the_pristine_starter_fails_on_its_first_todo(tmp_path, capsys):
    rc, fails = graded(LAB4, tmp_path, capsys)
    assert rc == 1 and len(fails) == 1
    assert fails[0].startswith("FAIL fast_forward.py, line ") and "TODO 1" in fails[0]


# Every lab offline (lab 8's offline checks start their own redis-server on 127.0.0.1:
# make setup installs it). The starter and the solution declare the same names, so each is
# graded in a test of its own (the registries are restored in between).
@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_every_pristine_starter_fails_offline_with_one_line(lab, tmp_path, capsys):
    rc, fails = graded(lab, tmp_path, capsys)
    assert rc == 1 and len(fails) == 1 and len(fails[0]) > 30, fails


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_every_solution_passes_offline(lab, tmp_path, capsys):
    rc, fails = graded(lab, tmp_path, capsys, solution=True)
    assert rc == 0 and fails == []


def test_a_students_sys_exit_is_one_line(lab4, tmp_path, capsys):
    path = lab4 / "fast_forward.py"
    path.write_text(path.read_text().replace(
        "    return range(max(first, applied + 1), seq)",
        "    import sys\n    sys.exit('bye')"))
    rc, fails = graded(lab4, tmp_path, capsys)
    assert rc == 1 and len(fails) == 1 and "called sys.exit('bye')" in fails[0], fails


@pytest.mark.parametrize("old, new, message", [
    ("for record_seq in records_to_apply(self.applied, first, seq):",
     "for record_seq in reversed(records_to_apply(self.applied, first, seq)):",
     "applied seq 3 before seq 1: records must be applied oldest first"),
    ("            self.apply_record(record_seq, fields)",
     "            if record_seq != 41:\n                self.apply_record(record_seq, fields)",
     "missed the record of seq 41"),
    ("        self.applied = max(self.applied, seq - 1)", "",
     "`applied` must be seq - 1"),
    ("return range(max(first, applied + 1), seq)", "return range(first, seq)",
     "records up to `applied` are in the state already"),
    ("(record_seq - first) * record_size", "(record_seq - first + 1) * record_size",
     "the records start right after the SCR header"),
])
def test_an_injected_bug_is_named(lab4, tmp_path, capsys, old, new, message):
    path = lab4 / "fast_forward.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    rc, fails = graded(lab4, tmp_path, capsys)
    assert rc == 1 and len(fails) == 1 and message in fails[0], fails


def test_an_exception_in_the_students_code_is_its_line(lab4, tmp_path, capsys):
    path = lab4 / "fast_forward.py"
    path.write_text(path.read_text().replace(
        "            fields = self._unpack_record(frame, offset)",
        "            fields = self._unpack_record(frame, offset)\n            {}['x']"))
    rc, fails = graded(lab4, tmp_path, capsys)
    assert rc == 1 and fails[0].startswith("FAIL fast_forward.py, line ")
    assert "raised KeyError" in fails[0]


def test_a_student_file_that_does_not_import_is_one_line(lab4, tmp_path, capsys):
    (lab4 / "fast_forward.py").write_text("def broken(:\n")
    rc, fails = graded(lab4, tmp_path, capsys)
    assert rc == 1 and fails == ["FAIL fast_forward.py, line 1: syntax error: invalid syntax"]


def test_explain_names_the_grader_when_the_bug_is_not_the_students(tmp_path):
    assert explain(LabFailure("wrong"), []) == "wrong"
    try:
        {}["key"]
    except KeyError as err:
        line = explain(err, [tmp_path / "student.py"])
    assert line.startswith("the grader failed (KeyError") and "bug in the lab" in line


def test_crash_line_reads_a_crashed_workers_log(tmp_path):
    student = tmp_path / "fast_forward.py"
    (tmp_path / "core2.log").write_text(
        "Traceback (most recent call last):\n"
        '  File "/x/nfs/cores/base.py", line 40, in run\n    core.handle(frame)\n'
        f'  File "{student}", line 12, in _fast_forward\n    1 / 0\n'
        "ZeroDivisionError: division by zero\n")
    (tmp_path / "core0.log").write_text("fine\n")
    # A file of the same name elsewhere (experiments/analysis/mlffr.py beside a lab's
    # mlffr.py) is not the student's.
    (tmp_path / "core1.log").write_text(
        "Traceback (most recent call last):\n"
        '  File "/elsewhere/fast_forward.py", line 3, in f\n    x\n'
        "NameError: name 'x' is not defined\n")
    assert crash_line(tmp_path, [student]) == (
        "core1 crashed: NameError: name 'x' is not defined")
    (tmp_path / "core1.log").unlink()
    assert crash_line(tmp_path, [student]) == (
        "core2 crashed in fast_forward.py, line 12: ZeroDivisionError: division by zero")
    assert crash_line(tmp_path / "nothing", [student]) is None


def test_first_record_error_names_the_first_wrong_record():
    fields = {s: (s * 10,) for s in range(10)}.get
    good = [(s, (s * 10,)) for s in (1, 2, 3, 5)]
    assert first_record_error(0, good, [1, 2, 3, 5], fields) is None
    assert "missed the record of seq 3" in first_record_error(
        0, good[:2] + good[3:], [1, 2, 3, 5], fields)
    assert "applied the record of seq 2 twice" in first_record_error(
        0, good[:2] + [good[1]] + good[2:], [1, 2, 3, 5], fields)
    assert "applied seq 3 before seq 2" in first_record_error(
        0, [good[0], good[2], good[1], good[3]], [1, 2, 3, 5], fields)
    assert "wrong fields (those of seq 1)" in first_record_error(
        0, [good[0], (2, (10,)), good[2], good[3]], [1, 2, 3, 5], fields)
    assert "although it processed that packet itself" in first_record_error(
        0, [*good, (6, (60,))], [1, 2, 3, 5], fields)


def test_the_kit_cli_refuses_bad_usage_with_one_line(tmp_path, capsys):
    from labs.kit.__main__ import main

    assert main(["measure", str(LAB4)]) == 2
    assert capsys.readouterr().err.strip() == (
        "labs: lab 4 has nothing to measure (make check grades it)")
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(tmp_path)])
    assert exit_.value.code == 2
    assert "is not a lab folder (it has no lab.py)" in capsys.readouterr().err


# One plausible student bug per lab, injected into a copy of its solution: the offline
# checks must catch it, with a line that names it (each lab's author tried many more; the
# READMEs list typical lines). Lab 4's are above.
INJECTED = [
    ("01-one-core", "answers.toml", "per_packet_us = 156", "per_packet_us = 0.000156",
     "in seconds"),
    ("02-sharding-skew", "sharding.py", 'shard_fields = ("ip_src", "ip_dst")',
     'shard_fields = ("ip_src", "ip_dst", "tcp_src", "tcp_dst")', "not part of the key"),
    ("03-nf-transition", "syn_flood.py", "            if not flags & (TCP_ACK | TCP_RST):",
     "            if not flags & TCP_ACK:", "a SYN+RST to 198.18.0.9"),
    ("05-sequencer", "sequencer_lab.py", "        self.next_seq += 1\n", "",
     "sequence numbers start at 0 and go up by one per packet"),
    ("06-locks-vs-replicas", "model.py", "    return (n - 1) / n", "    return 1 / n",
     "moved_share(n=1) gave 1, not 0"),
    ("07-lost-packets", "log_fetch.py", "ring.horizon >= hi", "ring.horizon > hi",
     "peer_is_final(ring, hi="),
    ("08-stateless-race", "atomic_store.py", "        pipe.multi()\n", "",
     "write must call pipe.multi()"),
]


# Lab 8's bug (writes outside MULTI) leaves redis-py's coroutines un-awaited: the warning is
# the bug's own symptom, expected here.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("lab, name, old, new, message", INJECTED, ids=lambda v: str(v)[:18])
def test_each_labs_checks_name_an_injected_bug(tmp_path, capsys, lab, name, old, new,
                                               message):
    work = tmp_path / "lab"
    shutil.copytree(LABS_DIR / lab, work)
    for path in (work / "solution").iterdir():  # the student has the solution ...
        shutil.copy(path, work / path.name)
    text = (work / name).read_text()
    assert old in text, f"{lab}/solution/{name} changed: update this test's bug"
    (work / name).write_text(text.replace(old, new, 1))  # ... but for one bug
    rc, fails = graded(work, tmp_path, capsys)
    assert rc == 1 and len(fails) == 1 and message in fails[0], fails
