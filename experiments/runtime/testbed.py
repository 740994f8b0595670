"""The live testbed: steps 1-5 of a trial (``experiments.runtime.trial``) as a context manager.

:class:`Testbed` does, in order:

1. starts the controller (loopback) and builds the ``ScrTopo`` network with the userspace
   OVS switch, turns its ports into AF_XDP ports where it can (``port_type``, see
   ``experiments.runtime.ovs.use_port_type``), waits until the controller's pipeline for
   the strategy is on the switch;
2. for ``lock``, creates the shared state table in ``/dev/shm``; with recovery, the cores'
   record rings there; gives every core process its own CPU quota (``core_share`` of a
   CPU: emulated cores, see ``cpu_quota``) or, with placement ``cpus``, a CPU of its own
   with the infrastructure kept on the others (real cores, see ``placement``);
3. starts the sink, the outside store of the ``service``/``remote`` strategies (a state
   service, which gets a core's quota too, or a Redis server, which is outside the NF and
   gets none; both on the NF host's loopback), the N workers and the shim in their hosts,
   and waits for each to say READY;
4. :meth:`Testbed.send_trace` replays the trace (or its first ``packets`` frames) from the
   generator host at the configured rate, sampling the fidelity monitor around it; the
   end-of-trace marker makes the shim send STOP to every core; waits until every worker
   has exited (or sits idle, its STOP lost to an overloaded queue, and is stopped by
   signal);
5. on exit, stops everything it started, by handle, dumps and removes the table and the
   rings, removes the quotas and stops the network, with Ctrl-C held off until it is done.

Tests use it directly to act on the live network (inject frames on a port, read flows,
kill and replace a core) before or after the traffic; step 6, reading and judging the
results, is ``experiments.analysis.collect``.

Caveat: on this 2-core machine the generator, OVS, the shim, the sink and the workers share
two CPUs; the fidelity window this class samples says whether the infrastructure kept up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mininet.log import setLogLevel
from mininet.net import Mininet

from controller.dispatch import expected_flow_count, expected_groups
from controller.launcher import ControllerProcess, LoopbackController
from experiments.analysis.collect import RECORD_LOGS_JSON
from experiments.analysis.errors import TrialError
from experiments.runtime import fidelity
from experiments.runtime.config import HOST_IP_BASE, SHM_DIR, STORE_HOST, STORE_PORTS, TrialConfig
from experiments.runtime.cpu_quota import CoreQuotas
from experiments.runtime.fidelity import pid_cpu_seconds
from experiments.runtime.ovs import (
    PortTypeError,
    ovs_pid,
    pipeline_flows,
    pipeline_groups,
    quiet_switch_ports,
    use_port_type,
)
from experiments.runtime.placement import CpuPlacement, PlacementError, plan_cpus
from experiments.runtime.processes import HostProcess, deferred_interrupts
from experiments.workload.traffic import read_pcap
from nfs import make_nf
from nfs.cores.recovery import PeerLog, create_logs, remove_logs, seq_ranges
from nfs.cores.shared_table import SharedTable
from nfs.strategies import TrialPlaces
from nfs.strategies import get as get_strategy
from nfs.strategies.lock import SHARED_STATE_JSON
from sequencer.dataplane import open_socket
from sequencer.wire.heartbeat import DEFAULT_HEARTBEAT_MS
from topologies.scr_topo import GEN, NF, SEQ, SINK, SWITCH, PortPlan, ScrTopo

_table_names = itertools.count()


@contextlib.contextmanager
def _as_trial_error(prefix: str = ""):
    """The machine refused a placement or a port type: a TrialError, which a sweep
    records for the point and goes on, not a traceback."""
    try:
        yield
    except (PlacementError, PortTypeError) as err:
        raise TrialError(f"{prefix}{err}") from None


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
        self.cpus: CpuPlacement | None = None  # placement "cpus": real cores
        self.store: HostProcess | None = None  # the service/remote strategies' store
        self.table_path: Path | None = None
        self.log_prefix: Path | None = None  # recovery: the cores' record rings
        self.plan_path: Path | None = None  # rsspp: the shim's rebalancing plan
        self.window: dict = {}  # fidelity samples around the traffic
        self.port_type = ""  # the switch ports' type in use, and why not AF_XDP if not
        self.port_type_note = ""
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
            with _as_trial_error(f"switch ports of type {self.config.port_type}: "):
                self.port_type, self.port_type_note = use_port_type(
                    [intf.name for intf in self.net[SWITCH].intfList() if intf.name != "lo"],
                    self.config.port_type)
            self._wait_for_pipeline()
            if self.strategy.shared_table:
                self._create_table()
            if self.strategy.rebalance_plan:
                self._create_plan()
            if self.config.recovery:
                self._create_record_logs()
            if self.config.placement == "cpus":
                with _as_trial_error():
                    self.cpus = self._stack.enter_context(CpuPlacement(
                        plan_cpus(self.config.cores + self.store_is_core)))
            elif self.config.core_share is not None:
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
        self.table_path = SHM_DIR / f"scr-testbed-{os.getpid()}-{next(_table_names)}.table"
        table = SharedTable(self.table_path, self.nf.key_format, self.nf.value_format,
                            create=True)
        self._stack.callback(self._dump_table, table)

    def _create_plan(self) -> None:
        """RSS++'s rebalancing plan, in /dev/shm (the shim writes it, the cores read it);
        it and its mailboxes are removed at teardown, the moves being in ``shim.json``."""
        self.plan_path = SHM_DIR / f"scr-testbed-{os.getpid()}-{next(_table_names)}.plan"
        self.plan_path.touch()
        self._stack.callback(self._remove_plan, self.plan_path)

    @staticmethod
    def _remove_plan(path: Path) -> None:
        for file in path.parent.glob(f"{path.name}*"):  # the plan, its mailboxes
            file.unlink(missing_ok=True)

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
            (self.out_dir / SHARED_STATE_JSON).write_text(json.dumps(state) + "\n")
        finally:
            table.close()
            table.unlink()

    def _python(self, module: str, *args) -> list[str]:
        return [sys.executable, "-m", module, *map(str, args), "--out", str(self.out_dir)]

    def _start(self, name: str, host_name: str, argv: list[str],
               pass_fds: tuple[int, ...] = ()) -> HostProcess:
        proc = HostProcess(name, self.net[host_name], argv, self.out_dir, pass_fds)
        self.processes.append(proc)
        return proc

    def _start_processes(self) -> None:
        c, plan = self.config, self.plan
        nf_args = ("--nf", c.nf, "--nf-params", json.dumps(c.nf_params))
        deadline = time.monotonic() + c.ready_timeout_s
        self._start("sink", SINK, self._python("experiments.hosts.sink",
                                               "--iface", plan.sink_iface))
        address = None
        if self.strategy.store:
            address = self._start_store(nf_args, deadline)  # the cores connect at start-up
        places = TrialPlaces(table=self.table_path, record_logs=self.log_prefix, store=address,
                             plan=self.plan_path)
        strategy_args: tuple = ("--strategy", c.strategy,
                                *self.strategy.worker_flags(c, places))
        if c.watch_cores:  # the controller resprays when a core's heartbeats stop
            strategy_args += ("--health-ms", DEFAULT_HEARTBEAT_MS)
        if c.spin_ns:
            strategy_args += ("--spin-ns", c.spin_ns)
        # Plugins (nfs.plugins) load in the workers and the shim; a store knows only the
        # package's NFs (it sits below the plugins' layer).
        plugins = tuple(arg for path in c.plugins for arg in ("--plugin", path))
        nf_args = (*plugins, *nf_args)
        self._worker_args = (*nf_args, *strategy_args, "--rcvbuf", c.rx_queue_bytes)
        for i in range(c.cores):
            self.workers.append(self._start_worker(i))
        self._start("shim", SEQ, self._python(
            "experiments.hosts.shim", "--in-iface", plan.shim_in_iface,
            "--out-iface", plan.shim_out_iface, "--cores", c.cores, *nf_args,
            "--strategy", c.strategy, "--loss", c.loss,
            "--loss-seed", c.loss_seed, *(("--withhold", *c.withhold) if c.withhold else ()),
            *(("--plan", self.plan_path, "--rebalance-ms", c.rebalance_ms)
              if self.plan_path else ())))
        for proc in self.processes:
            proc.wait_ready(deadline)
        # The quota starts once a core is ready: start-up (imports) is not the NF's work.
        if self.quotas is not None:
            for i, worker in enumerate(self.workers):
                self.quotas.add(i, worker.pid)
            if self.store is not None and self.store_is_core:
                self.quotas.add(c.cores, self.store.pid)
        if self.cpus is not None:  # each core on its CPU, everything else on the rest
            with _as_trial_error():
                self._place(c)

    def _place(self, c: TrialConfig) -> None:
        """Placement cpus: each core on its CPU, the rest (OVS's threads too) off them."""
        for i, worker in enumerate(self.workers):
            self.cpus.add_core(i, worker.pid)
        for proc in self.processes:
            if proc in self.workers:
                continue
            if proc is self.store and self.store_is_core:
                self.cpus.add_core(c.cores, proc.pid)
            else:
                self.cpus.add_infra(proc.pid)
        ovs = ovs_pid()
        if ovs:
            self.cpus.pin_threads(ovs)

    @property
    def placement(self) -> dict:
        """Where the cores ran: their CPUs (placement ``cpus``) or their quota."""
        if self.cpus is not None:
            return self.cpus.plan.to_json()
        if self.quotas is not None:
            return {"mode": "quota", "core_share": self.quotas.share,
                    "period_us": self.quotas.period_us, "quota_us": self.quotas.quota_us}
        return {"mode": "none"}

    def _start_worker(self, core: int, *extra: str, name: str = "") -> HostProcess:
        stat = self._quota_stat(core)
        try:
            if stat is not None:  # its own quota's cpu.stat, which its host cannot open
                extra = (*extra, "--quota-stat-fd", stat)
            return self._start(name or f"core{core}", NF, self._python(
                "nfs.worker", "--iface", self.plan.core_iface(core), "--core", core,
                "--cores", self.config.cores, *self._worker_args, *extra),
                pass_fds=() if stat is None else (stat,))
        finally:
            if stat is not None:
                os.close(stat)  # the worker has its own copy

    def _quota_stat(self, core: int) -> int | None:
        """A descriptor of core ``core``'s ``cpu.stat``, for a strategy that reads its
        quota's periods (``Strategy.quota_stat``: lock, quota-aware), else None."""
        if (self.quotas is None or not self.strategy.quota_stat
                or core >= len(self.quotas.groups)):
            return None
        return os.open(self.quotas.groups[core] / "cpu.stat", os.O_RDONLY)

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
        if self.cpus is not None:
            with _as_trial_error():
                self.cpus.add_core(core, worker.pid)
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
        if self.cpus is not None:
            with _as_trial_error():
                self.cpus.add_infra(gen.pid)
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
                       "throttled": self.quotas.throttled() if self.quotas else [],
                       "port_type": self.port_type, "port_type_note": self.port_type_note,
                       "placement": self.placement}

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
