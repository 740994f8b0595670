"""Lab 2, part (b): measure shard's capacity on 1 and on 4 cores at skew 2 (as root).

Run ``python measure.py`` in this folder. It replays ``make run``'s trace (200 clients,
Zipf skew 2) through the ``shard`` strategy twice, on 1 core and on 4, each time offering
more than one core can carry (the same rate for both), and prints, from each core's own
counters, its share of the packets, the rate it processed them at, and the offered rate at
which the busiest core saturates: the configuration's capacity. The last line is the ratio
to copy into ``answers.toml`` (``measured_ratio``). It is the same measurement as the live
check of ``make check`` (``lab.py``'s ``measure_ceiling``); its trials are kept under
``results/labs/lab02-measure/``.

Caveats: two trials of a few seconds each, about 15 s in all; a core's capacity varies by
10-20 % between runs on a small machine, so two runs rarely print the same ratio.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":  # re-run with the testbed's Python, whatever Python started it
    VENV = HERE.parent.parent / ".venv"
    if Path(sys.prefix).resolve() != VENV.resolve():
        python = VENV / "bin" / "python"
        if not python.exists():
            sys.exit(f"measure: the testbed is not set up: run `make setup` in {VENV.parent}")
        os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def main() -> int:
    from experiments.analysis.errors import TrialError
    from experiments.runtime.preflight import EnvironmentProblem, check_environment
    from experiments.runtime.results import new_run_dir
    from labs.kit.grading import Grade, LabFailure
    from nfs.plugins import import_file

    try:
        check_environment()
        lab_module = import_file(HERE / "lab.py")
        grade = Grade(lab_module.LAB, HERE, False, new_run_dir("labs/lab02-measure"))
        grade.load()
        print(f"measuring shard at skew {lab_module.HIGH_SKEW:g} on 1 and "
              f"{lab_module.CORES} cores (about 15 s; trials in {grade.out_dir}) ...",
              flush=True)
        for line in lab_module.measure_ceiling(grade).lines():
            print(line)
    except (LabFailure, EnvironmentProblem, TrialError, ValueError) as err:
        print(f"measure: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
