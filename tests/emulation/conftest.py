"""Fixtures of the emulation tests: real Mininet networks, real OVS, the real controller.

These tests need root and a running Open vSwitch (``make test`` starts it); without them
every test errors with the preflight's one-line message rather than passing vacuously.
``leftovers()`` lists what a run could have left behind: interfaces, bridges, processes
of the testbed (the stores' servers too), Mininet host shells, the cores' CPU-quota cgroups
and the lock strategy's shared-memory tables. It only looks; it ends nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from experiments.runtime.calibration import Costs, calibrate
from experiments.runtime.capacity import Capacity, measure_capacity
from experiments.runtime.config import TrialConfig
from experiments.runtime.preflight import check_environment
from experiments.workload.traffic import TraceSpec, make_trace, write_pcap
from topologies.scr_topo import SWITCH

#: Correctness tests offer this fraction of what their cores carry (measured): wide
#: headroom, so that no queue drops a packet even on a noisy machine.
SAFE_LOAD = 0.3

TESTBED_MODULES = ("nfs.worker", "experiments.hosts.shim", "experiments.hosts.sink",
                   "experiments.hosts.generator",
                   "controller.launcher", "experiments/skew_sweep.py",
                   "experiments/core_sweep.py", "experiments.bench_datapath",
                   "experiments.hosts.bench_roles",
                   "nfs.stores.service", "nfs.stores.redis_server", "redis-server 127.0.0.1",
                   "experiments/async_latency.py", "experiments/failover.py",
                   "experiments.failover", "experiments/core_failover.py",
                   "experiments/soak.py", "experiments/loss_sweep.py",
                   "experiments/bench_failover.py", "labs.kit", "sequencer.dissect")


def leftovers() -> dict[str, list[str]]:
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    interfaces = [line.split(": ")[1].split("@")[0] for line in links.splitlines()
                  if f"{SWITCH}-eth" in line]
    bridges = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True,
                             text=True).stdout.split()
    processes = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(m in cmdline for m in TESTBED_MODULES) or "mininet:" in cmdline:
            processes.append(f"{pid}: {cmdline.strip()}")
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob("*/scr-testbed-*")]
    shared = [str(p) for p in Path("/dev/shm").glob("scr-testbed-*")]
    return {k: v for k, v in
            {"interfaces": interfaces, "bridges": bridges, "processes": processes,
             "cgroups": cgroups, "shared memory": shared}.items() if v}


@pytest.fixture(scope="session", autouse=True)
def environment():
    check_environment()  # a clear one-line error if not root, OVS down, or a bridge is left
    yield
    assert leftovers() == {}, "the emulation tests left testbed parts behind"


@pytest.fixture(scope="session")
def trace_frames() -> list[bytes]:
    """A small skewed trace with DDoS sources and knockers (good and bad)."""
    return make_trace(TraceSpec(packets=1200, flows=40, skew=1.2, attackers=2,
                                attack_share=0.1, knockers=3, seed=7))


@pytest.fixture(scope="session")
def trace_path(tmp_path_factory, trace_frames) -> Path:
    path = tmp_path_factory.mktemp("trace") / "trace.pcap"
    write_pcap(path, trace_frames)
    return path


@pytest.fixture(scope="session")
def costs() -> Costs:
    """The NF costs of the experiments' defaults (110 µs of work per packet), in this
    machine's spin rounds."""
    return calibrate()


@pytest.fixture(scope="session")
def capacity(tmp_path_factory, trace_path) -> Capacity:
    """What one light core (ddos, no work, 0.1 of a CPU) carries here, measured once per
    session: live tests offer fractions of it (:func:`rate_for`), never a fixed rate."""
    return measure_capacity(TrialConfig(nf="ddos", cores=1, strategy="single"), trace_path,
                            tmp_path_factory.mktemp("capacity"))


def rate_for(capacity: Capacity, cores: int, load: float = SAFE_LOAD) -> float:
    """``load`` times what ``cores`` light cores carry (one core's measured capacity times
    the count: an SCR core's history makes it a little slower, which the load absorbs)."""
    return round(capacity.rate(load, cores), 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is an emulation test (``-m "not emulation"`` skips them)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.emulation)
