"""After every run, passing, failing or interrupted with Ctrl-C, nothing of the testbed is
left: no interfaces, no bridge, no testbed process, no Mininet host shell. A sweep stopped
with Ctrl-C (while its first network is being set up, right after its first point, or
during its second point) exits 130 and keeps every finished point in its results.csv."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.analysis.errors import TrialError
from experiments.runtime.config import TrialConfig
from experiments.runtime.results import REPO_ROOT
from experiments.runtime.testbed import Testbed
from experiments.runtime.trial import run_trial
from tests.emulation.conftest import leftovers, rate_for
from topologies.scr_topo import SWITCH


def test_nothing_left_after_a_passing_trial(tmp_path, trace_path, capacity):
    # Loss recovery too: its record rings in /dev/shm must go with the run.
    run_trial(TrialConfig(nf="ddos", cores=2, rate_pps=rate_for(capacity, 2),
                          recovery=True), trace_path, tmp_path)
    assert leftovers() == {}


def test_nothing_left_after_an_error_inside_the_network(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), Testbed(TrialConfig(cores=4), tmp_path):
        assert SWITCH in subprocess.run(["ovs-vsctl", "list-br"], capture_output=True,
                                        text=True).stdout
        raise RuntimeError("boom")
    assert leftovers() == {}


def test_nothing_left_after_a_failing_trial(tmp_path):
    with pytest.raises(TrialError, match="generator"):
        run_trial(TrialConfig(cores=2), tmp_path / "no-such-trace.pcap", tmp_path)
    assert leftovers() == {}


POINT_DONE = " pps (fixed"
#: When the Ctrl-C comes, and how many points were finished (kept in results.csv) by then.
CTRL_C_MOMENTS = {
    "first-network-set-up": 0,  # the first trial's bridge has just appeared
    "first-point-done": 1,  # the moment the first point's summary line is printed
    "second-point-running": 1,  # the second trial's network is up
}


def wait_for_bridge(deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while SWITCH not in subprocess.run(["ovs-vsctl", "list-br"], capture_output=True,
                                       text=True).stdout:
        assert time.monotonic() < deadline, "the trial's network never came up"
        time.sleep(0.05)


@pytest.mark.parametrize("moment", list(CTRL_C_MOMENTS))
def test_nothing_left_after_ctrl_c_in_a_sweep(tmp_path, moment):
    sweep = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "experiments" / "skew_sweep.py"), "--quick",
         "--mode", "fixed", "--rate", "1000", "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # like a terminal: SIGINT goes to this process alone
    )
    try:
        # The sweep prints one summary line per finished point ("... pps (fixed, ...)").
        printed = []
        if moment != "first-network-set-up":
            for line in sweep.stdout:
                printed.append(line)
                if POINT_DONE in line:
                    break
        if moment != "first-point-done":
            wait_for_bridge()  # the first point's, or (after its summary) the second's
        os.kill(sweep.pid, signal.SIGINT)
        output = "".join(printed) + sweep.communicate(timeout=60)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output, output
    assert leftovers() == {}
    # Every point reported finished before the interrupt is kept in results.csv.
    finished = output.count(POINT_DONE)
    assert finished == CTRL_C_MOMENTS[moment], output
    results = list(Path(tmp_path, "skew_sweep").glob("*/results.csv"))
    assert len(results) == 1 and len(results[0].read_text().splitlines()) == 1 + finished
