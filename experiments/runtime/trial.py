"""One trial: a real Mininet network, the controller, the shim and N workers, one trace.

``run_trial(config, trace, out_dir)`` does, in order:

1. starts the controller (loopback) and builds the ``ScrTopo`` network with the userspace
   OVS switch, waits until the controller's pipeline for the strategy is on the switch;
2. for ``lock``, creates the shared state table in ``/dev/shm``; gives every core process
   its own CPU quota (``core_share`` of a CPU: emulated cores, see ``cpu_quota``);
3. starts the sink, the outside store of the ``service``/``remote`` strategies (a state
   service, which gets a core's quota too, or a Redis server, which is outside the NF and
   gets none; both on the NF host's loopback), the N workers and the shim in their hosts,
   and waits for each to say READY;
4. replays the trace (or its first ``packets`` frames) from the generator host at the
   configured rate, sampling the fidelity monitor around it; the end-of-trace marker makes
   the shim send STOP to every core; waits until every worker has exited (or sits idle,
   its STOP lost to an overloaded queue, and is stopped by signal);
5. stops everything it started, by handle, removes the table and the quotas, and stops the
   network, in ``finally`` blocks;
6. collects the processes' result files, replays the sequenced packets through the
   sequential reference (every strategy; losses accounted for, see ``check_views``) and
   writes ``trial.json`` and ``verdicts.csv`` (``seq,core,verdict,trace_id``) into
   ``out_dir``.

:class:`Testbed` is steps 1-4 as a context manager, for tests that need to act on the live
network (inject frames on a port, read flows) before or after the traffic.

Caveat: on this 2-core machine the generator, OVS, the shim, the sink and the workers share
two CPUs; ``fidelity`` in the results says whether the infrastructure kept up, and a point
where it did not (``faithful`` false) does not measure the NF cores.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mininet.log import setLogLevel
from mininet.net import Mininet

from controller.dispatch import (
    COOKIE,
    DEFAULT_FAILOVER_TIMEOUT_MS,
    expected_flow_count,
    expected_groups,
)
from controller.launcher import ControllerProcess, LoopbackController
from experiments.runtime import fidelity
from experiments.runtime.cpu_quota import CoreQuotas, quota_us
from experiments.runtime.fidelity import pid_cpu_seconds
from experiments.runtime.preflight import EnvironmentProblem, check_environment
from experiments.workload.trace_files import TraceError, read_capture
from experiments.workload.traffic import read_pcap
from nfs import make_nf
from nfs.cores.recovery import PeerLog, create_logs, remove_logs, seq_ranges
from nfs.cores.store import DEFAULT_INFLIGHT
from nfs.oracle import SCR, SHARD, CoreReport, GroundTruth, check_run
from nfs.reference import check_access_order
from nfs.strategies import SHARED, TrialPlaces
from nfs.strategies import get as get_strategy
from sequencer.dataplane import READY, open_socket
from sequencer.shim import FATE_SENT, FATES, SEQUENCED_CSV, SEQUENCED_PCAP
from sequencer.wire.header import MalformedFrame
from sequencer.wire.heartbeat import DEFAULT_HEARTBEAT_MS
from sequencer.wire.packet import parse
from topologies.scr_topo import GEN, NF, SEQ, SINK, SWITCH, PortPlan, ScrTopo

HOST_IP_BASE = "198.19.254.0/24"  # RFC 2544 benchmark range; hosts never use their IPs
OVS_PIDFILE = Path("/var/run/openvswitch/ovs-vswitchd.pid")
SHM_DIR = Path("/dev/shm")
#: A core's receive queue: about 90 of our frames (the kernel charges each ~700 B). Like a
#: NIC's RX ring it absorbs the pauses of a CPU quota's period but not a sustained overload,
#: so an overloaded core loses packets (counted) instead of queueing for seconds.
CORE_RX_QUEUE = 64 << 10
#: Where a trial's outside store listens: the NF host's own loopback (its network namespace).
STORE_HOST = "127.0.0.1"
STORE_PORTS = {"service": 7000, "redis": 6379}
RECORD_LOGS_JSON = "record_logs.json"  # recovery: what each core's ring held at the end


class TrialError(RuntimeError):
    """A trial could not run or its processes did not produce their results."""


@dataclass
class TrialConfig:
    """What one trial runs: which NF, on how many cores, at which offered rate."""

    nf: str = "ddos"
    nf_params: dict = field(default_factory=dict)
    cores: int = 2
    rate_pps: float = 2000.0
    strategy: str = "scr"
    packets: int = 0  # send the trace's first `packets` frames (0: all of them)
    core_share: float | None = 0.1  # CPU quota of each core (None: no quota)
    quota_period_us: int = 10_000
    rx_queue_bytes: int = CORE_RX_QUEUE
    transfer_work: int = 0  # lock: spin rounds when a key's state moved between cores
    inflight: int = DEFAULT_INFLIGHT  # service/remote: packets in flight per core (async runtime)
    store_delay_us: float = 0.0  # service/remote: latency injected per store round trip
    loss: float = 0.0  # fraction of sequenced packets the dispatch stage drops (seeded)
    loss_seed: int = 1
    recovery: bool = False  # scr: cores fetch lost records from their peers' logs
    watch_cores: bool = False  # scr: heartbeats; the controller resprays when a core dies
    failover_timeout_ms: float = DEFAULT_FAILOVER_TIMEOUT_MS  # watch_cores: silence after which a core is dead
    ready_timeout_s: float = 30.0
    drain_timeout_s: float = 60.0
    idle_after_s: float = 1.0  # a worker this long without CPU time after the trace is done
    #: The calibrated cost of a spin round (ns): the cores keep the NF's costs at their CPU
    #: time as a round's speed drifts (nfs.base.SpinGovernor). None: fixed rounds.
    spin_ns: float | None = None
    #: Fault injection, to test the oracle on a live run: the shim sends these packets with
    #: their oldest history record withheld (see sequencer.shim --withhold).
    withhold: tuple[int, ...] = ()

    def __post_init__(self):
        strategy = get_strategy(self.strategy)  # ValueError for an unknown one
        strategy.check_cores(self.cores)
        if self.rate_pps <= 0:
            raise ValueError("rate must be > 0")
        if self.packets < 0 or self.transfer_work < 0:
            raise ValueError("packets and transfer work must be >= 0")
        if self.inflight < 1 or self.store_delay_us < 0:
            raise ValueError("in-flight packets must be >= 1 and the store delay >= 0")
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss must be in [0, 1), got {self.loss}")
        if (self.recovery or self.watch_cores) and not strategy.recovery:
            raise ValueError(f"loss recovery and core watching are not for the "
                             f"{self.strategy} strategy")
        if self.watch_cores and (not self.recovery or self.cores < 2):
            raise ValueError("watching cores needs recovery and 2 or more cores (a core "
                             "that rejoins fetches what it missed)")
        if not self.failover_timeout_ms > 0:
            raise ValueError("the failover timeout must be > 0")
        if self.rx_queue_bytes < 4096:
            raise ValueError("the core RX queue must be >= 4096 bytes")
        if self.core_share is not None:
            quota_us(self.core_share, self.quota_period_us)  # fails early if not settable
        make_nf(self.nf, **self.nf_params)  # fails early on a bad NF name or parameter
        PortPlan(self.cores)  # fails early on a bad core count


# --- processes in hosts ----------------------------------------------------------------


class HostProcess:
    """A data-path process started in a Mininet host, stopped only by its own handle."""

    def __init__(self, name: str, host, argv: list[str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.ready = False
        with open(self.log_path, "w") as log:
            self.popen = host.popen(argv, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL)

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


# --- the live testbed ------------------------------------------------------------------


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


def quiet_switch_ports(switches) -> None:
    """Turn IPv6 off on the switch-side veth ends (root namespace), ours alone.

    The root kernel would otherwise send router solicitations and MLD reports out of them
    for a few seconds, and OVS's socket on the port reads those as traffic from the host.
    """
    names = [intf.name for sw in switches for intf in sw.intfList() if intf.name != "lo"]
    subprocess.run(["sysctl", "-qw", *(f"net.ipv6.conf.{n}.disable_ipv6=1" for n in names)],
                   check=False, capture_output=True)


def ovs_ofctl(*args: str) -> str:
    result = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args],
                            capture_output=True, text=True, check=True)
    return result.stdout


def pipeline_flows(switch: str = SWITCH) -> list[str]:
    """The controller's rules on ``switch`` (one ``dump-flows`` line each)."""
    out = ovs_ofctl("dump-flows", switch, f"cookie={COOKIE:#x}/-1")
    return [line.strip() for line in out.splitlines() if "cookie=" in line]


def pipeline_groups(switch: str = SWITCH) -> list[str]:
    """The groups on ``switch`` (one ``dump-groups`` line each; OpenFlow 1.5 shows the
    selection method)."""
    result = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "dump-groups", switch],
                            capture_output=True, text=True, check=False)
    return [line.strip() for line in result.stdout.splitlines() if "group_id=" in line]


def ovs_pid() -> int | None:
    try:
        return int(OVS_PIDFILE.read_text())
    except (OSError, ValueError):
        return None


_table_names = itertools.count()


class Testbed:
    """Steps 1-5 of a trial as a context manager; see the module docstring."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, config: TrialConfig, out_dir: Path):
        self.config = config
        self.out_dir = Path(out_dir)
        self.plan = PortPlan(config.cores)
        self.nf = make_nf(config.nf, **config.nf_params)
        self.strategy = get_strategy(config.strategy)
        self.net: Mininet | None = None
        self.processes: list[HostProcess] = []
        self.workers: list[HostProcess] = []
        self.quotas: CoreQuotas | None = None
        self.store: HostProcess | None = None  # the service/remote strategies' store
        self.table_path: Path | None = None
        self.log_prefix: Path | None = None  # recovery: the cores' record rings
        self.window: dict = {}  # fidelity samples around the traffic
        self._stack = contextlib.ExitStack()

    @property
    def controller_plan(self) -> dict:
        """What the controller needs: the ports, the strategy, the RSS hash's fields."""
        plan = {**self.plan.to_json(), "mode": self.strategy.spray,
                "shard_fields": list(self.nf.shard_fields)}
        if self.config.watch_cores:
            plan.update(watch_cores=True, failover_timeout_ms=self.config.failover_timeout_ms)
        return plan

    # -- set-up --
    def __enter__(self) -> Testbed:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        setLogLevel("warning")
        try:
            controller = self._stack.enter_context(
                ControllerProcess(self.controller_plan, self.out_dir)
            )
            self.net = Mininet(topo=ScrTopo(self.plan), controller=None, build=False,
                               ipBase=HOST_IP_BASE)
            self._stack.callback(self._stop_network)
            self.net.addController(LoopbackController("c0", controller.port))
            self.net.build()
            quiet_switch_ports(self.net.switches)
            self.net.start()
            self._wait_for_pipeline()
            if self.strategy.shared_table:
                self._create_table()
            if self.config.recovery:
                self._create_record_logs()
            if self.config.core_share is not None:
                self.quotas = self._stack.enter_context(CoreQuotas(
                    self.config.cores + self.store_is_core, self.config.core_share,
                    self.config.quota_period_us))
            self._stack.callback(self._stop_processes)
            self._start_processes()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_pipeline(self) -> None:
        plan = self.controller_plan
        expected = expected_flow_count(plan)
        groups = expected_groups(plan)
        deadline = time.monotonic() + self.config.ready_timeout_s
        while len(pipeline_flows()) < expected or len(pipeline_groups()) < groups:
            if time.monotonic() > deadline:
                raise TrialError(f"controller did not install its {expected} rules and "
                                 f"{groups} groups; see {self.out_dir / 'controller.log'}")
            time.sleep(0.05)

    def _create_table(self) -> None:
        """The lock strategy's shared state, in /dev/shm; dumped and removed at teardown."""
        from nfs.cores.shared_table import SharedTable

        self.table_path = SHM_DIR / f"scr-testbed-{os.getpid()}-{next(_table_names)}.table"
        table = SharedTable(self.table_path, self.nf.key_format, self.nf.value_format,
                            create=True)
        self._stack.callback(self._dump_table, table)

    def _create_record_logs(self) -> None:
        """The cores' record rings, in /dev/shm; their contents are summed up into
        ``record_logs.json`` (for the oracle) and the files removed at teardown."""
        self.log_prefix = SHM_DIR / f"scr-testbed-{os.getpid()}-{next(_table_names)}-log"
        paths: list[Path] = []
        self._stack.callback(self._dump_record_logs, paths)
        paths += create_logs(self.log_prefix, self.config.cores, self.nf.record_size)

    def _dump_record_logs(self, paths: list[Path]) -> None:
        try:
            held = {}
            for core, path in enumerate(paths):
                ring = PeerLog(path, self.nf.record_size)
                try:
                    held[f"core{core}"] = seq_ranges(ring.seqs())
                finally:
                    ring.close()
            (self.out_dir / RECORD_LOGS_JSON).write_text(json.dumps(held) + "\n")
        finally:
            remove_logs(paths)

    def _dump_table(self, table) -> None:
        try:
            state = self.nf.state_to_json(table.items())
            (self.out_dir / "shared_state.json").write_text(json.dumps(state) + "\n")
        finally:
            table.close()
            table.unlink()

    def _python(self, module: str, *args) -> list[str]:
        return [sys.executable, "-m", module, *map(str, args), "--out", str(self.out_dir)]

    def _start(self, name: str, host_name: str, argv: list[str]) -> HostProcess:
        proc = HostProcess(name, self.net[host_name], argv, self.out_dir)
        self.processes.append(proc)
        return proc

    def _start_processes(self) -> None:
        c, plan = self.config, self.plan
        nf_args = ("--nf", c.nf, "--nf-params", json.dumps(c.nf_params))
        deadline = time.monotonic() + c.ready_timeout_s
        self._start("sink", SINK, self._python("experiments.hosts.sink", "--iface", plan.sink_iface))
        address = None
        if self.strategy.store:
            address = self._start_store(nf_args, deadline)  # the cores connect at start-up
        places = TrialPlaces(table=self.table_path, record_logs=self.log_prefix,
                             store=address, health_ms=DEFAULT_HEARTBEAT_MS if c.watch_cores else 0.0)
        strategy_args: tuple = ("--strategy", c.strategy,
                                *self.strategy.worker_flags(c, places))
        if places.health_ms:
            strategy_args += ("--health-ms", places.health_ms)
        if c.spin_ns:
            strategy_args += ("--spin-ns", c.spin_ns)
        self._worker_args = (*nf_args, *strategy_args, "--rcvbuf", c.rx_queue_bytes)
        for i in range(c.cores):
            self.workers.append(self._start_worker(i))
        self._start("shim", SEQ, self._python(
            "experiments.hosts.shim", "--in-iface", plan.shim_in_iface,
            "--out-iface", plan.shim_out_iface, "--cores", c.cores, *nf_args,
            "--strategy", c.strategy, "--loss", c.loss,
            "--loss-seed", c.loss_seed, *(("--withhold", *c.withhold) if c.withhold else ())))
        for proc in self.processes:
            proc.wait_ready(deadline)
        # The quota starts once a core is ready: start-up (imports) is not the NF's work.
        if self.quotas is not None:
            for i, worker in enumerate(self.workers):
                self.quotas.add(i, worker.pid)
            if self.store is not None and self.store_is_core:
                self.quotas.add(c.cores, self.store.pid)

    def _start_worker(self, core: int, *extra: str, name: str = "") -> HostProcess:
        return self._start(name or f"core{core}", NF, self._python(
            "nfs.worker", "--iface", self.plan.core_iface(core), "--core", core,
            "--cores", self.config.cores, *self._worker_args, *extra))

    # -- core failover (scr with watch_cores) --
    def kill_core(self, core: int) -> None:
        """SIGKILL core ``core``'s worker, as a crash: it writes no results."""
        worker = self.workers[core]
        worker.popen.kill()
        worker.popen.wait()

    def replace_core(self, core: int) -> HostProcess:
        """Start a replacement for the dead core ``core`` on its port: it copies a live
        peer's replica, then beats, and the controller sprays to it again. It writes its
        results as ``core<core>`` (the dead worker wrote none); its quota is the dead one's."""
        if self.workers[core].alive():
            raise TrialError(f"core {core} is alive: kill it before replacing it")
        joins = sum(p.name.startswith(f"core{core}-join") for p in self.processes)
        worker = self._start_worker(core, "--join", name=f"core{core}-join{joins + 1}")
        worker.wait_ready(time.monotonic() + self.config.ready_timeout_s)
        self.workers[core] = worker
        if self.quotas is not None:
            self.quotas.add(core, worker.pid)
        return worker

    @property
    def store_is_core(self) -> bool:
        """The state service is one more core of the NF; a Redis server is outside it."""
        return self.strategy.store == "service"

    def _start_store(self, nf_args: tuple, deadline: float) -> str:
        """Start the strategy's store in the NF host, wait until it serves; its address."""
        if self.strategy.store == "service":
            port = STORE_PORTS["service"]
            argv = self._python("nfs.stores.service", *nf_args,
                                "--listen", f"{STORE_HOST}:{port}")
        else:
            port = STORE_PORTS["redis"]
            argv = self._python("nfs.stores.redis_server", *nf_args, "--port", port)
        self.store = self._start("store", NF, argv)
        self.store.wait_ready(deadline)
        return f"{STORE_HOST}:{port}"

    # -- actions on the live network --
    def inject(self, port: int, frames: list[bytes]) -> None:
        """Send raw ``frames`` into the host end of switch port ``port``'s link.

        The frames leave the switch-side veth end, so they arrive at the host as if the
        switch had sent them: a way to reach a worker without passing the shim.
        """
        sock = open_socket(self.plan.switch_iface(port), None)
        try:
            for frame in frames:
                sock.send(frame)
        finally:
            sock.close()

    def send_trace(self, trace_path: Path, on_start=None) -> None:
        """Replay the trace, then wait until the workers have drained and stopped.

        The fidelity monitor samples the machine when the generator is ready and when it
        has sent its last frame: the window in which the offered load is on. ``on_start``,
        if given, is called when the generator starts sending (to act during the traffic).
        """
        c = self.config
        ovs = ovs_pid()
        gen = self._start("generator", GEN, self._python(
            "experiments.hosts.generator", "--iface", self.plan.gen_iface,
            "--trace", trace_path, "--rate", c.rate_pps, "--count", c.packets))
        gen.wait_ready(time.monotonic() + c.ready_timeout_s)
        if on_start is not None:
            on_start()
        # The generator is gone when the window closes; it reports its own sending CPU.
        pids = {p.name: p.pid for p in self.processes if p.name in ("shim", "sink")}
        if ovs:
            pids["ovs"] = ovs
        before = fidelity.take(pids, SWITCH)
        packets = c.packets or len(read_pcap(trace_path))
        try:
            gen.popen.wait(timeout=packets / c.rate_pps * 3 + 30)
        except subprocess.TimeoutExpired:
            raise TrialError("the generator did not finish its trace in time") from None
        after = fidelity.take(pids, SWITCH)
        if gen.popen.returncode:
            raise TrialError(f"the generator failed: {gen.tail()}")
        self._wait_workers_done()
        self.window = {"before": before, "after": after,
                       "throttled": self.quotas.throttled() if self.quotas else []}

    def _wait_workers_done(self) -> None:
        """Until every worker has exited or been idle (no CPU time) for ``idle_after_s``.

        A worker normally exits on its STOP frame; one whose STOP was dropped by a full
        queue sits idle in ``recv`` and is stopped by signal in teardown.
        """
        c = self.config
        deadline = time.monotonic() + c.drain_timeout_s
        last_cpu = {w.name: (-1.0, time.monotonic()) for w in self.workers}
        while time.monotonic() < deadline:
            busy = False
            for worker in self.workers:
                if not worker.alive():
                    continue
                cpu = pid_cpu_seconds(worker.pid)
                seen, since = last_cpu[worker.name]
                if cpu != seen:
                    last_cpu[worker.name] = (cpu, time.monotonic())
                    busy = True
                elif time.monotonic() - since < c.idle_after_s:
                    busy = True
            if not busy:
                return
            time.sleep(0.05)

    # -- teardown --
    def _stop_processes(self) -> None:
        # Workers first (they may still be draining), then the store (its final state must
        # hold every worker's last query), then the shim and the sink, which must outlive
        # the workers so that nothing a worker sends is counted as lost.
        def order(proc: HostProcess) -> int:
            return 0 if proc in self.workers else 1 if proc is self.store else 2

        for proc in sorted(self.processes, key=order):
            proc.stop()

    def _stop_network(self) -> None:
        if self.net is not None:
            self.net.stop()
            self.net = None

    def close(self) -> None:
        with deferred_interrupts():
            self._stack.close()

    def __exit__(self, *exc) -> None:
        self.close()



# --- results ---------------------------------------------------------------------------


def read_result(path: Path) -> dict:
    """A process's JSON result file; TrialError if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TrialError(f"missing or unreadable result {path.name}: {err}") from None


def read_int_csv(path: Path) -> list[list[int]]:
    """The rows of a results CSV of integers, header skipped; TrialError if unreadable."""
    try:
        with open(path) as f:
            rows = csv.reader(f)
            next(rows)
            return [[int(x) for x in row] for row in rows]
    except (OSError, ValueError, StopIteration) as err:
        raise TrialError(f"missing or unreadable result {path.name}: {err}") from None


def read_store(out_dir: Path) -> tuple[dict, list[int]]:
    """The store's results (``store.json``) and the sequence numbers in the order it
    applied them (``store_order.csv``)."""
    return (read_result(out_dir / "store.json"),
            [seq for _pos, seq in read_int_csv(out_dir / "store_order.csv")])


def _store_result(config: TrialConfig, nf, store_results: tuple[dict, list[int]] | None,
                  cores: list[dict], packets: dict,
                  log: list[tuple[int, int, int, int]]) -> dict:
    """What only the store strategies have: the access-order check, the store's counters,
    per-packet and per-query latency (``store_results``: ``read_store``'s, None for others)."""
    if store_results is None:
        return {}
    store, order = store_results
    check = check_access_order(nf, packets, order, ((s, c, v) for s, c, v, _t in log),
                               store["state"])
    stats = [core.get("store", {}) for core in cores]
    latency = [core.get("latency_us", {}) for core in cores]
    query = [s.get("latency_us", {}) for s in stats]

    def worst(samples: list[dict], key: str):
        values = [s[key] for s in samples if key in s]
        return max(values) if values else None

    return {
        "check_access_order": check.equivalent,
        "access_order_mismatches": len(check.verdict_mismatches),
        "store_ops": store.get("ops", len(order)),
        "store_retries": sum(s.get("retries", 0) for s in stats),
        "store_errors": sum(core["stats"].get("store_errors", 0) for core in cores),
        "inflight": 1 if get_strategy(config.strategy).blocking else config.inflight,
        "store_delay_us": config.store_delay_us,
        # The slowest core's figures: a percentile over cores would need the raw samples.
        "latency_us_p50": worst(latency, "p50"),
        "latency_us_p99": worst(latency, "p99"),
        "query_us_p50": worst(query, "p50"),
        "cpu_s_store": store.get("cpu_s", 0.0) + store.get("redis_cpu_s", 0.0),
    }


def read_ground_truth(out_dir: Path, mode: str) -> tuple[GroundTruth, list[int]]:
    """The sequencer's ground truth from its files (``sequenced.pcap``, ``sequenced.csv``,
    ``shim.json``), and the trace id each packet carried (to map results back)."""
    shim = read_result(out_dir / "shim.json")
    rows = read_int_csv(out_dir / SEQUENCED_CSV)  # seq, trace_id, ts_ns, core, history, fate
    try:  # a run that sequenced nothing has a pcap with no packets, which is no error here
        records = read_capture(out_dir / SEQUENCED_PCAP).records if rows else []
    except TraceError as err:
        raise TrialError(f"missing or unreadable result {SEQUENCED_PCAP}: {err}") from None
    if len(records) != len(rows) or any(row[0] != i for i, row in enumerate(rows)):
        raise TrialError(f"{SEQUENCED_PCAP} and {SEQUENCED_CSV} do not match")
    packets = []
    for (_seq, _tid, ts, *_rest), (_ts, _linktype, frame) in zip(rows, records, strict=True):
        try:
            packets.append((parse(frame), ts))
        except MalformedFrame as err:  # the shim sequences only frames that parse
            raise TrialError(f"the shim sequenced a malformed frame: {err}") from None
    truth = GroundTruth(
        packets=packets, cores=[row[3] for row in rows], history=[row[4] for row in rows],
        dropped={row[0]: FATES[row[5]] for row in rows if row[5] != FATE_SENT},
        n_cores=shim["n_cores"], mode=mode, reconfigs=shim.get("reconfigs", []),
        stops=shim.get("stops_sent", []))
    return truth, [row[1] for row in rows]


def read_core_report(out_dir: Path, core: dict) -> CoreReport:
    """One core's report from its results (``core<i>.json``, ``core<i>_log.csv``)."""
    log = read_int_csv(out_dir / f"core{core['core']}_log.csv")  # seq,trace_id,verdict,chain
    return CoreReport(
        core=core["core"], log=[(seq, verdict, chain) for seq, _t, verdict, chain in log],
        rx_dropped=core.get("rx_dropped", 0), stopped=core["stopped_by_marker"],
        state=core.get("state"), applied=core["applied"],
        gaps=[tuple(g) for g in core.get("gaps", [])], chain=core.get("chain"),
        joined_at=core.get("recovery", {}).get("joined_at", 0))


def read_held_records(out_dir: Path) -> set[int] | None:
    """Every sequence number some core's record log held at the end (``record_logs.json``,
    written by the testbed before it removed the rings); None without recovery."""
    path = out_dir / RECORD_LOGS_JSON
    if not path.exists():
        return None
    return {s for ranges in read_result(path).values() for lo, hi in ranges
            for s in range(lo, hi + 1)}


def percentiles(samples: list[float]) -> tuple[float | None, float | None]:
    """p50 and p99 of ``samples`` (None, None when there are none)."""
    if not samples:
        return None, None
    if len(samples) == 1:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return round(cuts[49], 1), round(cuts[98], 1)


def collect(config: TrialConfig, trace_path: Path, out_dir: Path,
            window: dict | None = None) -> dict:
    """Read the processes' results, check them against the ground truth and the sequential
    reference (:func:`nfs.oracle.check_run`), write trial.json and verdicts.csv."""
    out_dir = Path(out_dir)
    nf = make_nf(config.nf, **config.nf_params)
    gen = read_result(out_dir / "generator.json")
    shim = read_result(out_dir / "shim.json")
    sink = read_result(out_dir / "sink.json")
    # A core killed and never replaced (core failover) left no results: the others judge.
    ids = [i for i in range(config.cores)
           if not config.watch_cores or (out_dir / f"core{i}.json").exists()]
    cores = [read_result(out_dir / f"core{i}.json") for i in ids]
    strategy = get_strategy(config.strategy)
    mode = SCR if strategy.history else strategy.spray
    truth, trace_ids = read_ground_truth(out_dir, mode)
    reports = [read_core_report(out_dir, core) for core in cores]
    log = sorted((seq, r.core, verdict, trace_ids[seq]) for r in reports
                 for seq, verdict, _chain in r.log if 0 <= seq < len(trace_ids))
    with open(out_dir / "verdicts.csv", "w") as f:
        f.write("seq,core,verdict,trace_id\n")
        f.writelines(f"{s},{c},{v},{t}\n" for s, c, v, t in log)

    store_results = read_store(out_dir) if strategy.store else None
    shared, name = None, ""
    if strategy.view_kind == SHARED:
        shared, name = strategy.view(cores, lambda file: read_result(out_dir / file))
    oracle = check_run(nf, truth, reports, recovery=config.recovery,
                       held=read_held_records(out_dir), shared_state=shared,
                       shared_name=name)

    per_core = [core["stats"].get("processed", 0) for core in cores]
    processed = sum(per_core)
    firsts = [core["first_ns"] for core in cores if core["stats"].get("processed")]
    lasts = [core["last_ns"] for core in cores if core["stats"].get("processed")]
    span_s = (max(lasts) - min(firsts)) / 1e9 if firsts else 0.0
    sent = gen["sent"]
    injected = shim.get("injected_loss", 0)
    passed = [t for _s, _c, v, t in log if v == 1]
    recovery = [core["stats"] for core in cores]
    fetch_p50, fetch_p99 = percentiles(
        [t for core in cores for t in core.get("recovery", {}).get("fetch_us", [])])
    socket_drops = {"shim": shim.get("rx_dropped", 0), "sink": sink.get("rx_dropped", 0)}
    if window:
        fid = fidelity.assess(window["before"], window["after"], target_pps=config.rate_pps,
                              offered_pps=gen["offered_pps"], socket_drops=socket_drops,
                              generator_busy=gen.get("busy"))
    else:
        fid = {"faithful": None, "bottleneck": "not measured"}
    result = {
        "nf": config.nf,
        "strategy": config.strategy,
        "cores": config.cores,
        "target_pps": config.rate_pps,
        "offered_pps": round(gen["offered_pps"], 1),
        "sent": sent,
        "sequenced": shim["sequenced"],
        "processed": processed,
        "delivered_pps": round(processed / span_s, 1) if span_s > 0 else 0.0,
        # What the cores failed to process: the packets lost on purpose do not count.
        "loss": round(1 - processed / (sent - injected), 5) if sent > injected else 0.0,
        "injected_loss": injected,
        "recovered": sum(st.get("recovered", 0) for st in recovery),
        "fetches": sum(st.get("fetches", 0) for st in recovery),
        "fetch_timeouts": sum(st.get("fetch_timeouts", 0) for st in recovery),
        "fetch_s": max((c.get("recovery", {}).get("fetch_s", 0.0) for c in cores), default=0),
        "fetch_us_p50": fetch_p50,
        "fetch_us_p99": fetch_p99,
        "reconfigs": len(shim.get("reconfigs", [])),
        "core_rx_dropped": sum(core.get("rx_dropped", 0) for core in cores),
        "per_core": per_core,
        # Every packet was processed by the core the sequencer sprayed it to (the switch's
        # steering; shard's hash is the switch's own choice).
        "steered": all(truth.cores[s] == c for s, c, _v, _t in log)
        if truth.mode != SHARD else None,
        "passed": len(passed),
        "sink_received": sink["received"],
        "sink_missing": len(set(passed) - set(sink["trace_ids"])),
        "malformed_shim": shim["malformed_total"],
        "malformed_cores": sum(core["malformed_total"] for core in cores),
        "gap_records": sum(core["stats"].get("gap_records", 0) for core in cores),
        "stopped_by_marker": all(core["stopped_by_marker"] for core in cores),
        **{f"check_{k}": v for k, v in oracle.summary().items()
           if k not in ("lost_everywhere", "lost_updates")},
        "lost_everywhere": oracle.lost_everywhere,
        "lost_updates": oracle.lost_updates,
        "faithful": fid["faithful"],
        "bottleneck": fid["bottleneck"],
        "fidelity": fid,
        "cpu_s": {
            "generator": gen["cpu_s"], "shim": shim["cpu_s"], "sink": sink["cpu_s"],
            "ovs": window["after"].cpu.get("ovs", 0) - window["before"].cpu.get("ovs", 0)
            if window else 0.0,
            "cores": [core["cpu_s"] for core in cores],
        },
        "throttled": window.get("throttled", []) if window else [],
        "span_s": round(span_s, 3),
        **_store_result(config, nf, store_results, cores, truth.packet_map(), log),
    }
    (out_dir / "trial.json").write_text(json.dumps(
        {"config": asdict(config), "trace": str(trace_path), "result": result}, indent=1,
        default=str) + "\n")
    return result


def run_trial(config: TrialConfig, trace_path: Path, out_dir: Path) -> dict:
    """Run one trial on a fresh network and return its result row (also in trial.json)."""
    with Testbed(config, out_dir) as bed:
        bed.send_trace(trace_path)
    return collect(config, trace_path, out_dir, bed.window)
