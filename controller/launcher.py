"""Start the dispatch app on 127.0.0.1, as a process of its own.

os-ken 4.x ships no ``osken-manager``: an app is started by parsing the configuration with
``cfg.CONF(args=[...])`` and calling ``AppManager.run_apps``. This module does that
(``python -m controller.launcher --pipeline FILE --port PORT``) and offers
:class:`ControllerProcess`, a context manager that runs it for the length of a trial, waits
until it listens, and always stops it, by its own handle.

The controller listens on loopback only. On SIGTERM or Ctrl-C ``run_apps`` raises from its
thread teardown (``AttributeError: ... 'kill'``), so the process leaves with ``os._exit``.

Bad input ends the command with one line and exit status 2 before os-ken starts: a port
outside 1..65535 or already taken on 127.0.0.1 (os-ken itself would exit 0 without a word),
a pipeline file that is missing, unreadable or not a valid plan (``check_plan``, and
the rules built from it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from mininet.log import warn
from mininet.node import RemoteController

from sequencer.dataplane import port_is_free

LOOPBACK = "127.0.0.1"
APP = "controller.dispatch"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def is_listening(port: int, host: str = LOOPBACK) -> bool:
    """Whether a TCP socket listens on ``host:port`` (read from /proc, connects to nothing)."""
    wanted = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            return any(
                line.split()[1] == wanted and line.split()[3] == "0A" for line in f
            )
    except OSError:
        return False


class _StopSignalsHeld:
    """Holds SIGINT and SIGTERM from creation to ``release()``, which restores the previous
    handlers and then raises KeyboardInterrupt if either came meanwhile (how an
    experiment's stop signals end it). Only the main thread can hold signals; elsewhere
    this does nothing."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: list[int] = []
        self.previous: dict | None = None
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._hold) for sig in self._SIGNALS}

    def _hold(self, signum, _frame) -> None:
        self.received.append(signum)

    def release(self) -> None:
        previous, self.previous = self.previous, None
        if previous is None:
            return
        for sig, handler in previous.items():
            # None: the previous handler was not set from Python; the default is closest.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if self.received:
            raise KeyboardInterrupt


class LoopbackController(RemoteController):
    """Mininet's handle on our controller, which cleans up after itself.

    Mininet's ``RemoteController.stop`` does nothing, so the bash shell Mininet opens for
    every node outlives ``net.stop()`` (``mn -c`` would then kill it by name). This one ends
    its own shell, by its own pid, when the network stops.

    Mininet checks a remote controller by running ``telnet`` to its port in that shell and
    decoding what telnet prints as UTF-8; when the controller's OpenFlow HELLO (a random
    transaction id) arrives before telnet quits, the decode can fail, and the exception
    leaves the shell behind. :class:`ControllerProcess` has already waited until the port
    listens, so this one checks ``/proc/net/tcp`` instead and never connects.
    """

    def __init__(self, name: str, port: int):
        super().__init__(name, ip=LOOPBACK, port=port)

    def checkListening(self):  # noqa: N802 (Mininet's name)
        # Warn as Mininet does, never raise: an exception here would leave the shell behind,
        # and a controller that is not there shows as a pipeline that never arrives.
        if not is_listening(self.port, self.ip):
            warn(f"no controller listening on {self.ip}:{self.port}\n")

    def stop(self, *args, **kwargs):
        self.terminate()


class ControllerProcess:
    """The dispatch app in a child process, for a ``with`` block."""

    def __init__(self, pipeline: dict, workdir: Path, port: int | None = None,
                 start_timeout: float = 30.0):
        self.pipeline = pipeline
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ControllerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        pipeline_file = self.workdir / "pipeline.json"
        pipeline_file.write_text(json.dumps(self.pipeline, indent=1) + "\n")
        log = open(self.workdir / "controller.log", "w")
        # A Ctrl-C (or SIGTERM) inside Popen, after the fork, would lose the handle of a
        # controller that is already running: hold stop signals until the handle is ours.
        held = _StopSignalsHeld()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controller.launcher",
                 "--pipeline", str(pipeline_file), "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # Own session: a Ctrl-C at the terminal reaches the experiment, which then
                # stops the controller itself, after the network is down.
                start_new_session=True,
            )
        except BaseException:
            held.release()
            raise
        finally:
            log.close()
        try:
            held.release()  # a signal held meanwhile is raised here, where stop() follows
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not is_listening(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"controller exited with {self.process.returncode}; "
                    f"see {self.workdir / 'controller.log'}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"controller not listening on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()


def read_pipeline(path: str) -> dict:
    """The pipeline plan in the JSON file ``path``; a one-line ValueError if it is missing,
    unreadable or not a plan the dispatch app can install."""
    from controller.dispatch import check_plan, pipeline_rules, select_group

    try:
        with open(path) as f:
            plan = json.load(f)
    except OSError as err:
        raise ValueError(f"cannot read pipeline {path}: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise ValueError(f"pipeline {path} is not valid JSON: {err}") from None
    if not isinstance(plan, dict):
        raise ValueError(f"pipeline {path} must hold a JSON object, not {type(plan).__name__}")
    try:
        check_plan(plan)
        # check_plan looks at the fields' presence; building the rules (pure functions, no
        # switch) finds fields of the wrong type or range before the switch connects.
        pipeline_rules(plan)
        select_group(plan)
    except (KeyError, TypeError, AttributeError) as err:  # a field of the wrong type
        raise ValueError(f"pipeline {path} is not a valid plan: "
                         f"{type(err).__name__}: {err}") from None
    except ValueError as err:
        raise ValueError(f"pipeline {path}: {err}") from None
    return plan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", required=True, help="pipeline JSON file")
    parser.add_argument("--port", type=int, default=6653, help="OpenFlow TCP port")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.exit(2, f"launcher: --port must be in 1..65535, not {args.port}\n")
    try:
        read_pipeline(args.pipeline)
    except ValueError as err:
        parser.exit(2, f"launcher: {err}\n")
    if not port_is_free(args.port):
        parser.exit(2, f"launcher: {LOOPBACK}:{args.port} is already in use\n")
    # Imported here: the app module registers its option with the framework's config.
    import controller.dispatch  # noqa: F401
    from controller.compat import FRAMEWORK, app_manager, cfg

    cfg.CONF(
        args=["--ofp-listen-host", LOOPBACK, "--ofp-tcp-listen-port", str(args.port),
              "--scr-pipeline", args.pipeline],
        project=FRAMEWORK,
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        app_manager.AppManager.run_apps([APP])
    except (KeyboardInterrupt, AttributeError):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
