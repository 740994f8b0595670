"""One trial: a real Mininet network, the controller, the shim and N workers, one trace.

``run_trial(config, trace, out_dir)`` runs steps 1-5 with
:class:`~experiments.runtime.testbed.Testbed` (the network, the pipeline, the shared table
or record rings, the CPU quotas, every process in its host, the trace at the configured
rate with the fidelity monitor around it, and a teardown that always runs), then step 6
with :func:`~experiments.analysis.collect.collect`: reads the processes' result files,
replays the sequenced packets through the sequential reference (every strategy; losses
accounted for, see ``check_views``) and writes ``trial.json`` and ``verdicts.csv``
(``seq,core,verdict,trace_id``) into ``out_dir``.

The pieces live where they belong, and this module re-exports none of them: the
configuration and the runtime's constants in ``experiments.runtime.config``, host processes
and signals in ``experiments.runtime.processes``, OVS helpers in ``experiments.runtime.ovs``,
``TrialError`` and the result readers in ``experiments.analysis``.

Caveat: on this 2-core machine the generator, OVS, the shim, the sink and the workers share
two CPUs; ``fidelity`` in the results says whether the infrastructure kept up, and a point
where it did not (``faithful`` false) does not measure the NF cores.
"""

from __future__ import annotations

from pathlib import Path

from experiments.analysis.collect import collect
from experiments.runtime.config import TrialConfig
from experiments.runtime.testbed import Testbed


def run_trial(config: TrialConfig, trace_path: Path, out_dir: Path) -> dict:
    """Run one trial on a fresh network and return its result row (also in trial.json)."""
    with Testbed(config, out_dir) as bed:
        bed.send_trace(trace_path)
    return collect(config, trace_path, out_dir, bed.window)
