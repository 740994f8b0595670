"""Async vs. blocking: a core's throughput and latency as its outside store gets farther.

NetStar's point: a middlebox that waits for an outside service (a state store, a DNS
server) should keep processing other packets meanwhile. This sweep injects a latency
before every round trip to the store (``--store-delays-us``; a Redis transition makes
two) and measures, on one core, the MLFFR and the per-packet latency of the ``service``
and ``remote`` strategies on the asyncio runtime (``--inflight`` packets in flight) and on
the blocking one (one packet at a time). A
blocking core's rate falls as ``1 / (latency + compute)``; the async core's stays at its
compute limit until ``inflight / latency`` drops below it.

The core here is a whole CPU (``--core-share 1``) and the NF's compute is light
(``--work-us 7.5``): the comparison is about waiting, and a core that waits 1 ms per packet
must have far less than 1 ms of compute per packet for overlap to matter at all (with the
sweeps' 0.1-CPU cores, 110 µs of work already cost ~1.1 ms of the core's time).

Usage (as root)::

    python experiments/async_latency.py --quick
    python experiments/async_latency.py
    python experiments/async_latency.py --strategies service service-blocking \\
        --store-delays-us 0 250 500 1000 2000 4000

Writes ``results/async_latency/<timestamp>/`` like every sweep
(``experiments.campaigns.sweep``), with ``store_delay.png`` (throughput and median latency
vs. injected latency). Caveat: the delay is an ``asyncio.sleep`` (about 1 ms granularity,
rounded up); the ``latency_us`` columns give what the cores measured. Started with any
Python, it re-executes itself in the project's virtual environment.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file, maybe by the system Python
    import bootstrap

    bootstrap.into_venv(__file__)

from experiments.campaigns import sweep

DEFAULTS = {"nf": ["ddos"],
            "strategies": ["service", "service-blocking", "remote", "remote-blocking"],
            "cores": [1], "skews": [0.0], "mode": "mlffr", "duration": 2.0,
            "precision": 0.08, "max_steps": 5, "store_delays_us": [0.0, 1000.0, 2000.0,
                                                                   4000.0, 8000.0],
            "core_share": 1.0, "work_us": 7.5, "state_work_us": 0.0, "max_rate": 9000.0}
QUICK = {"strategies": ["service", "service-blocking"], "store_delays_us": [0.0, 1000.0],
         "duration": 1.5, "max_steps": 4, "precision": 0.1,
         "repeats": 1, "latency_loads": []}


def parse_args(argv: list[str] | None):
    parser = sweep.build_parser("async_latency", __doc__.split("\n\n")[0], DEFAULTS, QUICK)
    return sweep.finish_args(parser, parser.parse_args(argv), QUICK)


def main(argv: list[str] | None = None) -> int:
    return sweep.main("async_latency", parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
