"""``python -m labs.kit run|check|measure LAB_DIR [--solution]``: what a lab's Makefile calls.

* ``run``: the lab's pipeline and the Mininet CLI (:mod:`labs.kit.session`);
* ``measure``: the measurement a lab asks the student to make (``Lab.measure``), printed;
* ``check``: grade the student's files in ``LAB_DIR`` (``--solution``: those in
  ``LAB_DIR/solution``) with the lab's checks (:mod:`labs.kit.grading`); ``--offline``
  runs only the checks that need no network.

Exit status: 0 when every check passed, 1 when one failed (its one line says why), 2 for
bad usage or a machine that cannot run the lab (one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.analysis.errors import TrialError
from experiments.runtime.preflight import EnvironmentProblem, check_environment
from experiments.runtime.results import new_run_dir
from labs.kit.grading import Grade, LabFailure, grade, load_lab
from labs.kit.session import Session


def measure(lab, lab_dir: Path, solution: bool, results_root: Path | None) -> int:
    """Run the lab's measurement (live) with the student's files and print its lines."""
    g = Grade(lab, lab_dir, solution, new_run_dir(f"labs/{lab.name}-measure", results_root))
    if lab.plugin:  # the workers load it; a lab's own file (plugin=False) is not needed
        g.load()
    print(f"Lab {lab.number}: measuring (trials in {g.out_dir}) ...", flush=True)
    for line in lab.measure(g):
        print(line, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labs.kit", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("action", choices=("run", "check", "measure"))
    parser.add_argument("lab_dir", type=Path, help="the lab's folder (labs/NN-name)")
    parser.add_argument("--solution", action="store_true",
                        help="use the files in the lab's solution/ folder")
    parser.add_argument("--offline", action="store_true",
                        help="check: only the checks that need no network")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where results/labs/... goes (default: the checkout's results/)")
    args = parser.parse_args(argv)
    if not (args.lab_dir / "lab.py").is_file():
        parser.error(f"{args.lab_dir} is not a lab folder (it has no lab.py)")
    try:
        if args.action == "check":
            return grade(args.lab_dir, args.solution, args.results_dir, args.offline)
        lab = load_lab(args.lab_dir)
        if args.action == "measure" and lab.measure is None:
            raise ValueError(f"lab {lab.number} has nothing to measure (make check grades it)")
        check_environment()
        if args.action == "measure":
            return measure(lab, args.lab_dir, args.solution, args.results_dir)
        Session(lab, args.lab_dir, args.solution, args.results_dir).serve()
        return 0
    except LabFailure as err:  # the student's file does not load: the pipeline cannot run
        print(f"FAIL {err}", file=sys.stderr)
        return 1
    except (ValueError, EnvironmentProblem, TrialError) as err:
        print(f"labs: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unusable results folder, a full disk
        print(f"labs: cannot write the results: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the testbed has cleaned up by now (its teardown runs first)
        print("labs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
