"""Real cores: each NF core process alone on a CPU of its own, for machines with many CPUs.

The default emulates k cores with CPU quotas (``experiments.runtime.cpu_quota``): on a
2-CPU machine that is the only way to have 16. On a machine with more CPUs than cores,
placement ``cpus`` gives each NF core process a cpuset of one CPU and no quota, so a core
is a real core; the infrastructure (the generator, the shim, the sink, the outside store
when it is not a core, and the threads of ovs-vswitchd) runs on the CPUs left over, kept
off the cores' CPUs.

:func:`plan_cpus` decides which CPU is whose, from the CPUs this process may use (its
affinity: a container or ``taskset`` limits it), and refuses with a one-line
:class:`PlacementError` when there are too few: ``cores`` + ``INFRA_CPUS`` at least.
The cores take the highest-numbered CPUs: CPU 0 usually takes the most interrupts.
:class:`CpuPlacement` makes the cpusets (cgroup v1 ``cpuset`` or v2), moves processes into
them, pins ovs-vswitchd's threads to the infrastructure's CPUs, and undoes all of it on
:meth:`CpuPlacement.close`: the cpusets are removed (their processes go back to the root
group) and every OVS thread gets back the affinity it had.

Caveats: nothing keeps *other* work on the machine off the cores' CPUs (use ``isolcpus``
or a quiet machine); hyperthread siblings are distinct CPUs here, so two cores may share a
physical core unless the affinity given to the run leaves one sibling of each out. A
thread OVS starts while pinned inherits the pin (Linux copies the creator's affinity):
:meth:`CpuPlacement.close` gives those the main thread's old affinity. With cgroup v2 the
``cpuset`` controller is enabled at the root if it is not (and left so: other groups may
use it by then).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from experiments.runtime.cgroups import CGROUP_ROOT, hierarchy, new_group, remove_groups

#: CPUs kept for the infrastructure. One is the least that runs at all (this 2-CPU machine
#: runs one real core that way); ovs-vswitchd's single forwarding thread and the shim each
#: want a CPU of their own at high rates, so give a big machine's run two or more.
INFRA_CPUS = 1
PLACEMENTS = ("quota", "cpus")


class PlacementError(ValueError):
    """Cores cannot be placed on CPUs of their own here; the message says why (one line).
    A ValueError: like a bad flag, it is the run's configuration that cannot be had."""


@dataclass(frozen=True)
class CpuPlan:
    """Which CPU each NF core runs on, and the CPUs the infrastructure keeps."""

    cores: tuple[int, ...]
    infra: tuple[int, ...]

    def to_json(self) -> dict:
        return {"mode": "cpus", "core_cpus": list(self.cores), "infra_cpus": list(self.infra)}


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def plan_cpus(cores: int, cpus: list[int] | None = None, infra: int = INFRA_CPUS) -> CpuPlan:
    """A CPU of its own for each of ``cores`` NF cores, ``infra`` or more for the rest;
    PlacementError (one line) when ``cpus`` (default: :func:`usable_cpus`) are too few."""
    cpus = sorted(usable_cpus() if cpus is None else cpus)
    if cores < 1:
        raise PlacementError(f"placement cpus needs at least one core, not {cores}")
    if cores + infra > len(cpus):
        raise PlacementError(
            f"placement cpus needs {cores + infra} CPUs ({cores} cores + {infra} for the "
            f"infrastructure), this machine lets us use {len(cpus)}: use placement quota "
            f"(emulated cores) or fewer cores")
    return CpuPlan(tuple(cpus[len(cpus) - cores:]), tuple(cpus[:len(cpus) - cores]))


def _cpuset_hierarchy() -> tuple[Path, int]:
    found = hierarchy("cpuset", "cpuset.cpus")
    if found is None:
        raise PlacementError(f"no cgroup cpuset controller found under {CGROUP_ROOT}")
    return found


def _cpu_list(cpus) -> str:
    return ",".join(str(c) for c in cpus)


def _threads(pid: int) -> list[int]:
    """The thread ids of process ``pid`` now (none if it is gone)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


class CpuPlacement:
    """The cpusets of a :class:`CpuPlan` (``core<i>``, ``infra``) and OVS's pinned threads."""

    def __init__(self, plan: CpuPlan):
        self.plan = plan
        self.root, self.version = _cpuset_hierarchy()
        self.base = new_group(self.root)
        self.groups: list[Path] = []
        self._pinned: dict[int, set[int]] = {}  # thread id -> the affinity it had
        self._pinned_pid: int | None = None
        try:
            mems = self._mems()
            if self.version == 2:
                control = self.root / "cgroup.subtree_control"
                if "cpuset" not in control.read_text().split():
                    control.write_text("+cpuset")
            self.base.mkdir()
            self._configure(self.base, [*plan.infra, *plan.cores], mems)
            if self.version == 2:
                (self.base / "cgroup.subtree_control").write_text("+cpuset")
            for name, cpus in [*((f"core{i}", (cpu,)) for i, cpu in enumerate(plan.cores)),
                               ("infra", plan.infra)]:
                group = self.base / name
                group.mkdir()
                self.groups.append(group)
                self._configure(group, cpus, mems)
        except OSError as err:
            self.close()
            raise PlacementError(f"cannot set up cpusets in {self.root}: {err}") from None

    def _mems(self) -> str:
        name = "cpuset.mems.effective" if self.version == 2 else "cpuset.mems"
        return (self.root / name).read_text().strip() or "0"

    def _configure(self, group: Path, cpus, mems: str) -> None:
        # v1 needs both set before a task may join; v2 inherits mems but takes them too.
        (group / "cpuset.cpus").write_text(_cpu_list(cpus))
        (group / "cpuset.mems").write_text(mems)

    def add_core(self, core: int, pid: int) -> None:
        """Put process ``pid`` (all its threads) on core ``core``'s CPU."""
        self._add(self.groups[core], pid)

    def add_infra(self, pid: int) -> None:
        """Put process ``pid`` on the infrastructure's CPUs."""
        self._add(self.groups[-1], pid)

    @staticmethod
    def _add(group: Path, pid: int) -> None:
        try:
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as err:
            raise PlacementError(f"cannot move process {pid} into {group}: "
                                 f"{err.strerror or err}") from None

    def pin_threads(self, pid: int) -> None:
        """Keep every thread of ``pid`` (not ours: ovs-vswitchd) on the infrastructure's
        CPUs until :meth:`close`, which gives each its old affinity back."""
        self._pinned_pid = pid
        for tid in _threads(pid):
            try:
                old = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, self.plan.infra)
            except OSError:
                continue  # the thread ended meanwhile
            self._pinned.setdefault(tid, old)

    def close(self) -> None:
        """Give OVS's threads their affinity back and remove the cpusets (their processes
        go back to the root group first)."""
        pid = self._pinned_pid
        if pid is not None and self._pinned:
            # Threads started while pinned inherited the pin: they get the main thread's
            # old affinity (what they would have had).
            default = self._pinned.get(pid) or next(iter(self._pinned.values()))
            for tid in _threads(pid):
                self._pinned.setdefault(tid, default)
        for tid, old in self._pinned.items():
            try:
                os.sched_setaffinity(tid, old)
            except OSError:
                pass  # the thread is gone
        self._pinned, self._pinned_pid = {}, None
        remove_groups(self.root, [*reversed(self.groups), self.base])
        self.groups = []

    def __enter__(self) -> CpuPlacement:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
