"""What the testbed's two kinds of cgroups share: finding a controller, naming, removing.

CPU quotas (``experiments.runtime.cpu_quota``: the ``cpu`` controller) and real-core
placement (``experiments.runtime.placement``: ``cpuset``) each make a group
``scr-testbed-<pid>-<n>`` with one child per core. This module finds a controller's
hierarchy on cgroup v1 or v2 (:func:`hierarchy`), names the groups from one counter (two
kinds in one process never collide, which matters on v2 where both live under the same
root) and removes them (:func:`remove_groups`).

Caveat: removal is best effort by design: it runs in teardown, often after another error,
which it must never mask.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


def hierarchy(controller: str, v1_file: str) -> tuple[Path, int] | None:
    """``controller``'s root directory and the cgroup version (1 or 2); None if neither
    a v1 hierarchy with ``v1_file`` nor a v2 root offering the controller is there."""
    v1 = CGROUP_ROOT / controller
    if (v1 / v1_file).exists():
        return v1, 1
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and controller in controllers.read_text().split():
        return CGROUP_ROOT, 2
    return None


def new_group(root: Path) -> Path:
    """A fresh group path under ``root`` for this process (not made yet)."""
    return root / f"scr-testbed-{os.getpid()}-{next(_counter)}"


def remove_groups(root: Path, groups: list[Path]) -> None:
    """Remove ``groups`` in order; any process still in one goes back to ``root`` first."""
    for group in groups:
        if not group.exists():
            continue
        try:
            for pid in (group / "cgroup.procs").read_text().split():
                try:
                    (root / "cgroup.procs").write_text(pid)
                except OSError:
                    pass  # already gone
            group.rmdir()
        except OSError:
            pass  # best effort: never mask the error that brought us here
