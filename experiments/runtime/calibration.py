"""Costs in CPU time: an NF's compute given in microseconds, turned into spin rounds here.

The NFs burn their compute as rounds of ``nfs.base.spin`` (``work`` per packet,
``state_work`` per state transition, the lock strategy's ``transfer_work`` per moved key).
A round's duration depends on the machine: ~74 ns on the machine the defaults were first
chosen on, ~150 ns on another, so the same number of rounds is a different experiment on
each. Experiments therefore take the costs in microseconds of CPU time
(``--work-us``, ``--state-work-us``, ``--transfer-work-us``), :func:`calibrate` measures the
duration of a round once at start-up and converts, and ``config.json`` records both (the
:class:`Costs`), so an emulated core has the same capacity on a fast or a slow machine.

A round's cost also moves *during* a run: on this VM it is ~87 ns on an idle machine and
~150 ns when the other CPU is busy (its sibling hyperthread on the host, most likely).
So the cores do not keep the calibrated rounds: given the calibration
(``TrialConfig.spin_ns``), each core times its work with its thread's CPU clock and sets
its rounds to keep the work at its CPU time (``nfs.base.SpinGovernor``; each core reports
what it found in ``core<i>.json``'s ``spin``).

Caveats: the calibration is the median of several short runs of CPU time, in the
experiment's own process before any network exists; the governed work follows a moving
average, so it lags a sudden change by some tens of packets. The rest of a core's
per-packet cost (receiving, parsing, the history) is Python's own and is not governed:
measure a configuration's capacity (``experiments.runtime.capacity``) where a rate matters.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

from nfs.base import spin

CALIBRATION_ROUNDS = 20_000  # a few ms per sample
CALIBRATION_SAMPLES = 9

#: Defaults, in µs of CPU time per packet (work), per state transition (state work, the
#: model's c; SCR pays it for every history record) and per key moved between cores (lock).
DEFAULT_WORK_US = 110.0
DEFAULT_STATE_WORK_US = 1.5
#: The lock's transfer cost, as a ratio to a packet's processing time on the paper's class
#: of hardware, applied to this emulation's packet (DEFAULT_WORK_US): a core reading a
#: cache line another core modified pays a cache-to-cache intervention, ~40 ns on a
#: Broadwell-EP Xeon by Intel's Memory Latency Checker (J. McCalpin, Intel forums, "Core-
#: to-Core Communication Latency in Skylake/Kaby Lake") and 50-100 ns on Ice Lake-SP and
#: Sapphire Rapids (AnandTech's Xeon 8380 review; chipsandcheese.com, "Core to Core
#: Latency Data on Large Systems", 2023); an XDP NF that looks up and updates a map
#: handles a packet in ~100 ns on one such core (XDP drops at ~24 Mpps, ~40 ns, per core:
#: Høiland-Jørgensen et al., CoNEXT 2018). So a transfer costs ~0.5 of a packet
#: (0.25-1 across those machines): 55 µs here. The sweeps take several values
#: (``--transfer-work-us 0 55 110``: none, this calibration, twice it) for the
#: sensitivity figure, since "lock loses" depends on it.
TRANSFER_PER_PACKET = 0.5
DEFAULT_TRANSFER_WORK_US = TRANSFER_PER_PACKET * DEFAULT_WORK_US


#: Sweeps past 8 emulated cores (``scale_for``): the cores together keep 0.8 of a CPU
#: (16 x 0.05) and a packet costs 450 µs of work, so that 16 cores carry ~1.2 k pps, a rate
#: at which the infrastructure (OVS on AF_XDP ports, the shim, the generator, the sink)
#: took ~0.35 CPU and left this 2-CPU machine ~37 % idle (measured on a 16-core SCR trial
#: at 1200 pps). At 8 cores and below the defaults hold (verified faithful to 8).
LEGACY_MAX_CORES = 8
SCALE_CORES_CPU = 0.8
SCALE_WORK_US = 450.0


def scale_for(max_cores: int, default_share: float) -> tuple[float, float]:
    """The core share and the work per packet (µs) of a sweep whose largest point has
    ``max_cores`` emulated cores: ``default_share`` and ``DEFAULT_WORK_US`` up to
    ``LEGACY_MAX_CORES``, beyond it ``SCALE_CORES_CPU / max_cores`` (to the 1/1000 below)
    and ``SCALE_WORK_US``. The same for every point of the sweep, so that its points
    compare."""
    if max_cores <= LEGACY_MAX_CORES:
        return default_share, DEFAULT_WORK_US
    return math.floor(SCALE_CORES_CPU / max_cores * 1000) / 1000, SCALE_WORK_US


def spin_ns_per_round(rounds: int = CALIBRATION_ROUNDS,
                      samples: int = CALIBRATION_SAMPLES) -> float:
    """The CPU time of one ``spin`` round here, in ns: the median of ``samples`` runs."""
    if rounds < 1 or samples < 1:
        raise ValueError("rounds and samples must be >= 1")
    spin(rounds)  # warm up: the first run pays for caches and the interpreter's specialising
    times = []
    for _ in range(samples):
        started = time.process_time_ns()
        spin(rounds)
        times.append((time.process_time_ns() - started) / rounds)
    return statistics.median(times)


@dataclass(frozen=True)
class Costs:
    """An NF's costs in µs of CPU time and in spin rounds of this machine."""

    work_us: float
    state_work_us: float
    transfer_work_us: float
    ns_per_round: float

    def __post_init__(self):
        for name in ("work_us", "state_work_us", "transfer_work_us"):
            value = getattr(self, name)
            if not 0 <= value < 1e7:  # NaN fails this too
                raise ValueError(f"{name} must be in [0, 1e7) µs, not {value}")
        if not self.ns_per_round > 0:
            raise ValueError(f"a spin round must take > 0 ns, not {self.ns_per_round}")

    def rounds(self, us: float) -> int:
        return round(us * 1000 / self.ns_per_round)

    @property
    def work(self) -> int:
        return self.rounds(self.work_us)

    @property
    def state_work(self) -> int:
        return self.rounds(self.state_work_us)

    @property
    def transfer_work(self) -> int:
        return self.rounds(self.transfer_work_us)

    def nf_params(self) -> dict:
        """The NF parameters (in rounds) these costs stand for."""
        return {"work": self.work, "state_work": self.state_work}

    def to_json(self) -> dict:
        return {**asdict(self), "work": self.work, "state_work": self.state_work,
                "transfer_work": self.transfer_work}


def calibrate(work_us: float = DEFAULT_WORK_US, state_work_us: float = DEFAULT_STATE_WORK_US,
              transfer_work_us: float = DEFAULT_TRANSFER_WORK_US) -> Costs:
    """Measure this machine's spin round and express the costs in it."""
    return Costs(work_us, state_work_us, transfer_work_us, round(spin_ns_per_round(), 2))
