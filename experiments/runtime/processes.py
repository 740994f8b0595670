"""Processes in Mininet hosts, and an experiment's signal handling.

:class:`HostProcess` starts a data-path process (generator, shim, sink, a core, a store) in
a host, waits until it prints ``READY`` and stops it by its own handle: SIGTERM first (so
it writes its results), SIGKILL if it hangs. Nothing is ever stopped by name.

:func:`start_experiment` is what an experiment's ``main`` does first: check the machine,
then make Ctrl-C and SIGTERM raise ``KeyboardInterrupt``; :func:`deferred_interrupts` holds
those signals off while a teardown runs, so that the network, the quotas and the shared
memory are always cleaned up, and delivers the interrupt afterwards.

Caveat: a process's stdout is a pipe read only for ``READY``; what it prints after that
goes unread (the processes write their results to files and log to stderr).
"""

from __future__ import annotations

import contextlib
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.analysis.errors import TrialError
from experiments.runtime.preflight import EnvironmentProblem, check_environment
from sequencer.dataplane import READY


class HostProcess:
    """A data-path process started in a Mininet host, stopped only by its own handle."""

    def __init__(self, name: str, host, argv: list[str], log_dir: Path,
                 pass_fds: tuple[int, ...] = ()):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.ready = False
        with open(self.log_path, "w") as log:
            # pass_fds: files opened out here that the process cannot open in its host
            # (a Mininet host's /sys has no cgroup file system).
            self.popen = host.popen(argv, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, pass_fds=pass_fds)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_ready(self, deadline: float) -> None:
        """Block until the process prints READY; TrialError if it dies or is late."""
        if self.ready:
            return
        out = self.popen.stdout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], 0.1)
            if ready:
                line = out.readline().decode(errors="replace").strip()
                if line == READY:
                    self.ready = True
                    return
                if not line and not self.alive():
                    break
        raise TrialError(f"{self.name} did not start; see {self.log_path}: {self.tail()}")

    def tail(self, lines: int = 3) -> str:
        try:
            return " | ".join(self.log_path.read_text().strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the process writes its results), then SIGKILL if it hangs."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout:
            self.popen.stdout.close()


# --- signals ---------------------------------------------------------------------------


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def start_experiment(name: str) -> int | None:
    """What an experiment's ``main`` does first: check the machine (a one-line message on
    stderr and exit status 2 when it cannot run the testbed), then make Ctrl-C and SIGTERM
    stop the experiment cleanly. None when the experiment may go on."""
    try:
        check_environment()
    except EnvironmentProblem as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    interrupt_on_stop_signals()
    return None


def interrupt_on_stop_signals() -> None:
    """Make Ctrl-C and SIGTERM raise KeyboardInterrupt in an experiment's main process.

    SIGINT is set explicitly: a process started in the background by a non-interactive
    shell inherits it ignored, and Python leaves it so; an experiment must stop either way.
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


@contextlib.contextmanager
def deferred_interrupts():
    """Hold off Ctrl-C/SIGTERM while cleaning up, then deliver it: cleanup runs to the end."""
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            raise KeyboardInterrupt
