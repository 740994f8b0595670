"""``ControllerProcess`` never loses the handle of a controller it started, even when a
Ctrl-C lands while it is starting one.

A Ctrl-C inside ``subprocess.Popen``, after the fork, used to leave an os-ken controller
running with nobody to stop it (seen in a sweep interrupted right after a point: the next
point's controller outlived the sweep). Here a timer thread sends SIGINT to this process
at delays from 0 to 10 ms into ``__enter__``, twice over, which spans Popen's fork and exec;
after each KeyboardInterrupt no controller of that attempt may be left (the old code left
one in every run of this test). Controllers on 127.0.0.1 only; no root needed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from controller.launcher import ControllerProcess
from topologies.scr_topo import PortPlan

ATTEMPTS = 80  # two rounds of delays from 0 to 10 ms: the first warms the caches up


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(pid))
    return pids


@pytest.fixture
def interruptible():
    """SIGINT raises KeyboardInterrupt during the test, whatever handler pytest had."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_starting_the_controller_leaves_none_behind(tmp_path, interruptible):
    plan = {**PortPlan(2).to_json(), "mode": "scr"}
    leaked = []
    for attempt in range(ATTEMPTS):
        workdir = tmp_path / f"attempt{attempt}"
        delay = (attempt % 40) * 0.00025
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        # Everything the one SIGINT of this attempt may interrupt is inside the try: once
        # its KeyboardInterrupt is caught, no other can come.
        try:
            timer.start()
            with ControllerProcess(plan, workdir):
                time.sleep(2)  # the interrupt comes before this ends
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("no KeyboardInterrupt while the controller started")
        timer.join()
        time.sleep(0.02)  # a stopped child may take a moment to leave /proc
        for pid in processes_mentioning(str(workdir)):
            leaked.append(attempt)
            os.kill(pid, signal.SIGKILL)  # ours: started by this attempt
    assert leaked == []
