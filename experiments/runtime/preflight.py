"""Checks before building a network, each failing with a one-line message that says what to do.

Mininet needs root; the switch needs a running Open vSwitch; a bridge named like ours
means another run is going on (or one was killed with SIGKILL and left it behind), and
building on top of it would break both.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from topologies.scr_topo import SWITCH


class EnvironmentProblem(RuntimeError):
    """The machine cannot run a trial as it is; the message says how to fix it."""


def check_environment() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem("needs root (Mininet makes network namespaces): run it as root")
    for tool in ("ovs-vsctl", "mnexec"):
        if shutil.which(tool) is None:
            raise EnvironmentProblem(f"{tool} is not installed: run `make setup` as root first")
    try:
        bridges = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True,
                                 text=True, check=True).stdout.split()
    except subprocess.SubprocessError:
        raise EnvironmentProblem(
            "Open vSwitch is not running: start it with `make ovs` as root") from None
    if SWITCH in bridges:
        raise EnvironmentProblem(
            f"an OVS bridge {SWITCH!r} exists already: another run is going on, or a killed "
            f"one left it (remove it as root with `ovs-vsctl del-br {SWITCH}`)")
