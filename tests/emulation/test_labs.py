"""The teaching labs, as a teacher and a student use them: through each lab's Makefile.

* every lab's ``make solution-check`` passes (the same grader as ``make check``, live checks
  included, on ``solution/``);
* every pristine starter's ``make check`` fails with exactly one ``FAIL`` line and no
  traceback;
* ``make run`` reaches the lab's Mininet CLI with the pipeline up, through a pseudo-terminal
  as a student's shell would: ``send`` runs a trial judged by the oracle, ``counters``,
  ``dissect`` and ``oracle`` answer, and ``exit`` leaves nothing behind.

Results go to pytest's temporary folders (``RESULTS=``), never into the checkout.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from experiments.runtime.results import REPO_ROOT
from tests.emulation.conftest import leftovers

LABS = sorted(p for p in (REPO_ROOT / "labs").glob("[0-9][0-9]-*") if p.is_dir())
MAKE_TIMEOUT_S = 240


def make(lab: Path, target: str, results: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(lab), target, f"RESULTS={results}"],
                          capture_output=True, text=True, timeout=MAKE_TIMEOUT_S, check=False)


def test_there_are_at_least_six_labs_each_complete():
    assert len(LABS) >= 6, [p.name for p in LABS]
    for lab in LABS:
        for name in ("README.md", "Makefile", "lab.py", "solution"):
            assert (lab / name).exists(), f"{lab.name} has no {name}"
        assert "include ../kit/lab.mk" in (lab / "Makefile").read_text()


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_the_solution_passes(lab, tmp_path):
    done = make(lab, "solution-check", tmp_path)
    assert done.returncode == 0 and "PASS: all" in done.stdout, done.stdout + done.stderr
    assert leftovers() == {}


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_the_pristine_starter_fails_with_one_line(lab, tmp_path):
    done = make(lab, "check", tmp_path)
    output = done.stdout + done.stderr
    fails = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert done.returncode != 0 and len(fails) == 1, output  # make says 2 for the kit's 1
    assert "Traceback" not in output, output
    assert len(fails[0]) > len("FAIL ") + 20, fails  # it says what is wrong
    assert leftovers() == {}


class Terminal:
    """A command on a pseudo-terminal, driven like a student at the keyboard."""

    def __init__(self, argv: list[str]):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.output = ""

    def expect(self, pattern: str, timeout_s: float = 90) -> str:
        """Read until ``pattern`` (a regex) appears after what was read before; the text
        up to it."""
        start = len(self.output)
        deadline = time.monotonic() + timeout_s
        while not (match := re.search(pattern, self.output[start:])):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout_s} s; the terminal "
                                     f"showed:\n{self.output[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    self.output += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the command exited and closed the terminal
                    if self.proc.poll() is not None:
                        raise AssertionError("the command exited; the terminal showed:\n"
                                             + self.output[-3000:]) from None
        return self.output[start:start + match.end()]

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            os.close(self.master)

    def end(self) -> None:
        """After a failure: end the command's whole session (make, the kit, its network),
        by its process group, SIGTERM first so that the testbed tears down."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.mark.parametrize("name, solved", [("01-one-core", False), ("04-fast-forward", True)])
def test_make_run_reaches_the_cli_and_exit_leaves_nothing(tmp_path, name, solved):
    lab = REPO_ROOT / "labs" / name
    work = lab
    if solved:  # the student has done the lab: a copy with the solution in place
        work = tmp_path / "lab"
        subprocess.run(["cp", "-r", str(lab), str(work)], check=True)
        for path in (lab / "solution").iterdir():
            (work / path.name).write_text(path.read_text())
        (work / "Makefile").write_text(f"include {REPO_ROOT / 'labs' / 'kit' / 'lab.mk'}\n")
    term = Terminal(["make", "-s", "-C", str(work), "run", f"RESULTS={tmp_path / 'res'}"])
    try:
        term.expect(r"pipeline up")
        term.expect(r"lab> ")
        term.type("send 200 300")
        sent = term.expect(r"lab> ", timeout_s=120)
        assert "oracle: EQUIVALENT" in sent, sent
        term.type("counters")
        counters = term.expect(r"lab> ")
        assert re.search(r"\n\s*0\s+nf-eth0\s+\d+", counters), counters
        term.type("dissect 0 2")
        dissected = term.expect(r"lab> ")
        assert re.search(r"seq=\d+", dissected), dissected
        term.type("oracle")
        assert "oracle: EQUIVALENT" in term.expect(r"lab> ")
        term.type("exit")
        assert term.close() == 0, term.output[-2000:]
    finally:
        term.end()
    assert leftovers() == {}


def test_make_run_with_the_starter_says_what_went_wrong(tmp_path):
    lab = REPO_ROOT / "labs" / "04-fast-forward"
    term = Terminal(["make", "-s", "-C", str(lab), "run", f"RESULTS={tmp_path}"])
    try:
        term.expect(r"lab> ")
        term.type("send 100 300")
        sent = term.expect(r"lab> ", timeout_s=120)
        assert "crashed in fast_forward.py, line" in sent and "TODO 1" in sent, sent
        assert "Traceback" not in sent, sent
        term.type("exit")
        assert term.close() == 0
    finally:
        term.end()
    assert leftovers() == {}
