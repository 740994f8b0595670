"""CPU quotas of emulated cores (``experiments.runtime.cpu_quota``).

``quota_us`` is pure and always tested. ``CoreQuotas`` makes real cgroups: the tests named
``test_real_cgroup_*`` need root and a cgroup cpu controller (as on the testbed machines and
in CI, which run as root) and are skipped elsewhere. They are short (about 1 s): a busy child
process runs for 1 s of wall time under a 0.1 CPU share and must get far less than 0.5 s of
CPU, and ``close()`` must remove the groups, moving any process still inside back out.
They create groups named ``scr-testbed-<pid>-<n>`` and always remove them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.runtime.cpu_quota import MIN_QUOTA_US, CoreQuotas, QuotaError, quota_us

# --- quota_us (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(("share", "period", "quota"), [
    (0.1, 10_000, 1_000),
    (0.25, 10_000, 2_500),
    (1, 10_000, 10_000),
    (0.05, 20_000, 1_000),
    (0.5, 100_000, 50_000),
    (0.333, 30_000, 9_990),
])
def test_quota_us(share, period, quota):
    assert quota_us(share, period) == quota
    assert isinstance(quota_us(share, period), int)


def test_quota_below_the_kernel_minimum_names_the_period_needed():
    with pytest.raises(ValueError) as info:
        quota_us(0.05, 10_000)
    assert str(info.value) == ("a 0.05 CPU share needs a period of at least 20 ms "
                               "(the quota must be >= 1 ms)")
    assert "\n" not in str(info.value)


def test_quota_at_the_kernel_minimum_is_accepted():
    assert quota_us(0.1, 10_000) == MIN_QUOTA_US == 1_000


@pytest.mark.parametrize("share", [0, -0.1, 1.01, 2, float("nan")])
def test_share_outside_zero_one(share):
    with pytest.raises(ValueError, match=r"core share must be in \(0, 1\]"):
        quota_us(share, 10_000)


# --- CoreQuotas on real cgroups (root only) -----------------------------------------------



def _cgroups_usable() -> str:
    """Why the real-cgroup tests cannot run here ('' if they can)."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        CoreQuotas(1).close()
    except QuotaError as err:
        return f"no usable cgroup cpu controller: {err}"
    return ""


_SKIP = _cgroups_usable()
CPU_ROOT = Path("/sys/fs/cgroup/cpu") if Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() \
    else Path("/sys/fs/cgroup")
real_cgroup = pytest.mark.skipif(bool(_SKIP), reason=_SKIP or "usable")

# Waits for a line on stdin (so that it is in the cgroup before it starts), then spins for
# one second of wall time.
BUSY_CHILD = ("import sys, time\n"
              "sys.stdin.readline()\n"
              "end = time.monotonic() + 1.0\n"
              "while time.monotonic() < end:\n"
              "    pass\n")


def _cpu_cgroup_of(pid: int) -> str:
    """The path of ``pid``'s group in the cpu hierarchy (from /proc/<pid>/cgroup)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(",") or controllers == "":
            return path
    raise AssertionError(f"no cpu cgroup line for {pid}")


@real_cgroup
def test_real_cgroup_quota_limits_a_busy_process():
    with CoreQuotas(2, share=0.1, period_us=10_000) as quotas:
        assert quotas.quota_us == 1_000
        assert len(quotas.groups) == 2
        assert all(group.is_dir() for group in quotas.groups)
        if quotas.version == 1:
            group = quotas.groups[1]
            assert (group / "cpu.cfs_quota_us").read_text().strip() == "1000"
            assert (group / "cpu.cfs_period_us").read_text().strip() == "10000"
        child = subprocess.Popen([sys.executable, "-c", BUSY_CHILD], stdin=subprocess.PIPE)
        try:
            quotas.add(1, child.pid)
            assert str(child.pid) in (quotas.groups[1] / "cgroup.procs").read_text().split()
            assert (quotas.groups[0] / "cgroup.procs").read_text().split() == []
            started = time.monotonic()
            child.stdin.write(b"go\n")
            child.stdin.close()
            # wait4, not Popen.wait: it also returns the child's CPU time (user + system).
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - started
        finally:
            if child.returncode is None:
                child.kill()
                child.wait()
        assert child.returncode == 0
        assert wall >= 1.0
        cpu = usage.ru_utime + usage.ru_stime
        # 0.1 of a CPU for ~1 s is ~0.1 s, plus the interpreter's start-up before it joined.
        assert cpu < 0.5, f"busy child got {cpu:.2f} s of CPU under a 0.1 share"
        stats = quotas.throttled()
        assert len(stats) == 2
        assert stats[1].get("nr_throttled", 0) > 0
        assert stats[0].get("nr_throttled", 0) == 0
        base, groups = quotas.base, list(quotas.groups)
    assert not base.exists()
    assert not any(group.exists() for group in groups)
    assert quotas.groups == []


@real_cgroup
def test_real_cgroup_close_moves_processes_out_and_removes_groups():
    quotas = CoreQuotas(1, share=0.5)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        quotas.add(0, sleeper.pid)
        assert _cpu_cgroup_of(sleeper.pid).endswith(f"/{quotas.base.name}/core0")
        base = quotas.base
        quotas.close()
        assert not base.exists()
        assert quotas.base.name not in _cpu_cgroup_of(sleeper.pid)
        assert sleeper.poll() is None  # moved, not killed
        quotas.close()  # idempotent
    finally:
        sleeper.kill()
        sleeper.wait()
        quotas.close()


@real_cgroup
def test_real_cgroup_bad_share_makes_no_group():
    # Only this process's groups: other runs on the machine may have their own meanwhile.
    mine = f"scr-testbed-{os.getpid()}-*"
    before = set(CPU_ROOT.glob(mine))
    with pytest.raises(ValueError, match="needs a period"):
        CoreQuotas(1, share=0.05, period_us=10_000)
    assert set(CPU_ROOT.glob(mine)) == before == set()


@pytest.mark.parametrize(("share", "period"), [
    (1, 10_000), (0.1, 10_000), (0.08, 13_000), (0.0667, 15_000), (0.05, 20_000),
    (0.02, 50_000),
])
def test_a_small_share_gets_the_shortest_period_with_a_1_ms_quota(share, period):
    from experiments.runtime.cpu_quota import period_for

    assert period_for(share) == period
    assert quota_us(share, period) >= MIN_QUOTA_US  # settable
    if period > 10_000:  # and the next shorter whole millisecond is not
        with pytest.raises(ValueError):
            quota_us(share, period - 1000)


def test_a_trial_derives_its_quota_period_from_its_share():
    from experiments.runtime.config import TrialConfig

    assert TrialConfig(core_share=0.05).quota_period_us == 20_000
    assert TrialConfig().quota_period_us == 10_000
    assert TrialConfig(core_share=0.05, quota_period_us=40_000).quota_period_us == 40_000
    with pytest.raises(ValueError, match="period of at least 20 ms"):
        TrialConfig(core_share=0.05, quota_period_us=10_000)
