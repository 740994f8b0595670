"""Emulated cores: a CPU quota of their own for each NF core process (cgroup CFS bandwidth).

This machine has two CPUs, so "k cores" are emulated the way Mininet's ``CPULimitedHost``
(Mininet-HiFi) limits hosts: each core process gets its own cgroup with a CFS bandwidth
quota of ``share`` of one CPU. k such cores then have k times the capacity of one, whether
k is 1 or 8, as long as the machine has spare CPU for them and for the infrastructure (the
fidelity monitor checks that).

Unlike ``CPULimitedHost``, which limits a whole host, the quota here is per *process*:
all cores live in one Mininet host (one interface each, like one NIC's RX queues).

The CFS period is kept short (``period_us``, 10 ms by default with ``share`` 0.1, i.e. a
1 ms quota: the kernel's minimum) so that a core runs in short slices rather than long
bursts; a longer period lets a core run flat out for a long stretch and then stall. A
smaller share gets the shortest period whose quota is still 1 ms (:func:`period_for`:
0.05 of a CPU runs 1 ms every 20 ms), which the 16-core sweeps use.

Works with cgroup v1 (``/sys/fs/cgroup/cpu``, as on these Debian 12 machines) and v2
(``cpu.max``). Groups are named ``scr-testbed-<pid>-<n>`` under the cpu hierarchy's root and
removed by :meth:`CoreQuotas.close` (processes still in them are moved back to the root first).

Caveat: a quota caps CPU *time*, not speed: a core that holds a lock when its quota runs out
stalls every core waiting for that lock until its next period (see the lock strategy).
"""

from __future__ import annotations

import math
from pathlib import Path

from experiments.runtime.cgroups import CGROUP_ROOT, hierarchy, new_group, remove_groups

MIN_QUOTA_US = 1000  # the kernel refuses a smaller CFS quota
#: Each emulated core: 0.1 of a CPU, 1 ms every 10 ms (see the module docstring).
DEFAULT_CORE_SHARE = 0.1
DEFAULT_PERIOD_US = 10_000


class QuotaError(RuntimeError):
    """CPU quotas cannot be set up here (no cgroup cpu controller, not root, ...)."""


def _cpu_hierarchy() -> tuple[Path, int]:
    """The cpu controller's root directory and the cgroup version (1 or 2)."""
    found = hierarchy("cpu", "cpu.cfs_quota_us")
    if found is None:
        raise QuotaError(f"no cgroup cpu controller found under {CGROUP_ROOT}")
    return found


def period_for(share: float) -> int:
    """The quota period for ``share``: the default 10 ms, or the shortest whole number of
    milliseconds whose quota is the kernel's 1 ms minimum (0.05 of a CPU: 20 ms)."""
    if not 0 < share <= 1:
        raise ValueError(f"core share must be in (0, 1], got {share}")
    return max(DEFAULT_PERIOD_US, 1000 * math.ceil(MIN_QUOTA_US / share / 1000 - 1e-9))


def quota_us(share: float, period_us: int) -> int:
    """The CFS quota for ``share`` of a CPU per ``period_us``; ValueError if not settable."""
    if not 0 < share <= 1:
        raise ValueError(f"core share must be in (0, 1], got {share}")
    quota = round(share * period_us)
    if quota < MIN_QUOTA_US:
        raise ValueError(f"a {share:g} CPU share needs a period of at least "
                         f"{MIN_QUOTA_US / share / 1000:g} ms (the quota must be >= 1 ms)")
    return quota


class CoreQuotas:
    """One cgroup per emulated core, each limited to ``share`` of a CPU."""

    def __init__(self, n_cores: int, share: float = DEFAULT_CORE_SHARE,
                 period_us: int = DEFAULT_PERIOD_US):
        self.share = share
        self.period_us = period_us
        self.quota_us = quota_us(share, period_us)
        self.root, self.version = _cpu_hierarchy()
        self.base = new_group(self.root)
        self.groups: list[Path] = []
        try:
            self.base.mkdir()
            if self.version == 2:
                (self.base / "cgroup.subtree_control").write_text("+cpu")
            for core in range(n_cores):
                group = self.base / f"core{core}"
                group.mkdir()
                self.groups.append(group)
                self._limit(group)
        except OSError as err:
            self.close()
            raise QuotaError(f"cannot set up CPU quotas in {self.root}: {err}") from None

    def _limit(self, group: Path) -> None:
        if self.version == 1:
            (group / "cpu.cfs_period_us").write_text(str(self.period_us))
            (group / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        else:
            (group / "cpu.max").write_text(f"{self.quota_us} {self.period_us}")

    def add(self, core: int, pid: int) -> None:
        """Put process ``pid`` (all its threads) under core ``core``'s quota."""
        (self.groups[core] / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> list[dict]:
        """Per core: periods run, periods throttled and time throttled (from cpu.stat)."""
        stats = []
        for group in self.groups:
            try:
                fields = dict(line.split() for line in (group / "cpu.stat").read_text()
                              .splitlines())
            except OSError:
                fields = {}
            stats.append({k: int(v) for k, v in fields.items()
                          if k in ("nr_periods", "nr_throttled", "throttled_time",
                                   "throttled_usec")})
        return stats

    def close(self) -> None:
        """Remove the groups; any process still in one goes back to the root group."""
        remove_groups(self.root, [*reversed(self.groups), self.base])
        self.groups = []

    def __enter__(self) -> CoreQuotas:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
