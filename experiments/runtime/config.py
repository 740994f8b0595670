"""What one trial runs (:class:`TrialConfig`, validated when made) and the runtime's constants.

Defaults that another package owns are imported from it, never repeated: packets in flight
per store core (``nfs.cores.store.DEFAULT_INFLIGHT``), the failover timeout
(``controller.dispatch.DEFAULT_FAILOVER_TIMEOUT_MS``), a core's CPU share and quota period
(``experiments.runtime.cpu_quota``). The heartbeat interval of watched cores is the
sequencer's (``sequencer.wire.heartbeat.DEFAULT_HEARTBEAT_MS``, used by the testbed).

``TrialError``, the error of a trial that could not run or produced no usable result, is
not here but in ``experiments.analysis.errors``: reading results (the analysis layer,
below this one) raises it too.

Caveat: validation makes the NF and the strategy once to check them, so a bad NF parameter
fails when the config is made, not in a worker on the network; a CPU share that the kernel
cannot set (quota under 1 ms) fails here too, but whether this machine has cgroups at all
is only known when the testbed sets the quotas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from controller.dispatch import DEFAULT_FAILOVER_TIMEOUT_MS
from experiments.runtime.cpu_quota import DEFAULT_CORE_SHARE, period_for, quota_us
from experiments.runtime.ovs import PORT_TYPES
from experiments.runtime.placement import PLACEMENTS, plan_cpus
from nfs import make_nf
from nfs.cores.store import DEFAULT_INFLIGHT
from nfs.plugins import load_plugins
from nfs.strategies import get as get_strategy
from sequencer.shim import DEFAULT_REBALANCE_MS
from topologies.scr_topo import PortPlan

HOST_IP_BASE = "198.19.254.0/24"  # RFC 2544 benchmark range; hosts never use their IPs
SHM_DIR = Path("/dev/shm")  # the lock strategy's table and the cores' record rings
#: A core's receive queue: about 90 of our frames (the kernel charges each ~700 B). Like a
#: NIC's RX ring it absorbs the pauses of a CPU quota's period but not a sustained overload,
#: so an overloaded core loses packets (counted) instead of queueing for seconds.
CORE_RX_QUEUE = 64 << 10
#: The steady-state window of a trial's loss starts this long after its first packet
#: (``experiments.analysis.collect.steady_result``). The paper's artifact warms up 30 s on
#: hardware; here what settles is short: each core's spin governor converges within some
#: tens of its packets (~50 ms at 900 pps), the CPU quota's period is 10 ms, and OVS's flows
#: are installed before the first packet. Half a second is ten times the slowest of these
#: and leaves 1.5 s of a default 2 s trial to measure (see the README's measurement notes).
DEFAULT_WARMUP_S = 0.5
#: Where a trial's outside store listens: the NF host's own loopback (its network namespace).
STORE_HOST = "127.0.0.1"
STORE_PORTS = {"service": 7000, "redis": 6379}


@dataclass
class TrialConfig:
    """What one trial runs: which NF, on how many cores, at which offered rate."""

    nf: str = "ddos"
    nf_params: dict = field(default_factory=dict)
    cores: int = 2
    rate_pps: float = 2000.0
    strategy: str = "scr"
    packets: int = 0  # send the trace's first `packets` frames (0: all of them)
    core_share: float | None = DEFAULT_CORE_SHARE  # CPU quota of each core (None: no quota)
    quota_period_us: int | None = None  # None: cpu_quota.period_for(core_share)
    #: ``quota`` (emulated cores, ``core_share`` of a CPU each) or ``cpus`` (real cores:
    #: each core alone on a CPU, no quota; ``experiments.runtime.placement``).
    placement: str = "quota"
    rx_queue_bytes: int = CORE_RX_QUEUE
    #: The switch ports' type (``experiments.runtime.ovs.PORT_TYPES``): ``auto`` uses
    #: AF_XDP where the kernel allows it, else packet sockets; ``trial.json`` says which.
    port_type: str = "auto"
    transfer_work: int = 0  # lock: spin rounds when a key's state moved between cores
    #: lock: take a lock only with enough CPU quota left for the critical section
    #: (``nfs.cores.lock``; an option: it costs more capacity than the stalls it removes).
    lock_quota_aware: bool = False
    inflight: int = DEFAULT_INFLIGHT  # service/remote: packets in flight per core (async runtime)
    store_delay_us: float = 0.0  # service/remote: latency injected per store round trip
    loss: float = 0.0  # fraction of sequenced packets the dispatch stage drops (seeded)
    loss_seed: int = 1
    warmup_s: float = DEFAULT_WARMUP_S  # steady-state loss: skip this much of the start
    rebalance_ms: float = DEFAULT_REBALANCE_MS  # rsspp: the shim's rebalancing interval
    recovery: bool = False  # scr: cores fetch lost records from their peers' logs
    watch_cores: bool = False  # scr: heartbeats; the controller resprays when a core dies
    #: watch_cores: the silence after which the controller declares a core dead.
    failover_timeout_ms: float = DEFAULT_FAILOVER_TIMEOUT_MS
    ready_timeout_s: float = 30.0
    drain_timeout_s: float = 60.0
    idle_after_s: float = 1.0  # a worker this long without CPU time after the trace is done
    #: The calibrated cost of a spin round (ns): the cores keep the NF's costs at their CPU
    #: time as a round's speed drifts (nfs.base.SpinGovernor). None: fixed rounds.
    spin_ns: float | None = None
    #: Fault injection, to test the oracle on a live run: the shim sends these packets with
    #: their oldest history record withheld (see experiments.hosts.shim --withhold).
    withhold: tuple[int, ...] = ()
    #: Python files declaring NFs, strategies or a sequencer (``nfs.plugins``): loaded here
    #: and by every worker and the shim (a lab's student code).
    plugins: tuple[str, ...] = ()

    @property
    def lock_quota_us(self) -> int:
        """Each core's CPU quota per period, µs (0 without a quota)."""
        return quota_us(self.core_share, self.quota_period_us) if self.core_share else 0

    def __post_init__(self):
        self.plugins = tuple(str(Path(p).resolve()) for p in self.plugins)
        load_plugins(self.plugins)  # before the names below are looked up
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
        if not self.rebalance_ms > 0:
            raise ValueError(f"the rebalancing interval must be > 0 ms, not {self.rebalance_ms}")
        if not 0 <= self.warmup_s < 1e4:
            raise ValueError(f"warm-up must be in [0, 1e4) s, got {self.warmup_s}")
        if not self.failover_timeout_ms > 0:
            raise ValueError("the failover timeout must be > 0")
        if self.port_type not in PORT_TYPES:
            raise ValueError(f"port type must be one of {', '.join(PORT_TYPES)}, "
                             f"not {self.port_type!r}")
        if self.rx_queue_bytes < 4096:
            raise ValueError("the core RX queue must be >= 4096 bytes")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, "
                             f"not {self.placement!r}")
        if self.placement == "cpus":
            self.core_share = None  # a real core has no quota
            plan_cpus(self.cores + (strategy.store == "service"))  # PlacementError: too few
        if self.core_share is not None:
            if self.quota_period_us is None:
                self.quota_period_us = period_for(self.core_share)
            quota_us(self.core_share, self.quota_period_us)  # fails early if not settable
        make_nf(self.nf, **self.nf_params)  # fails early on a bad NF name or parameter
        PortPlan(self.cores)  # fails early on a bad core count
