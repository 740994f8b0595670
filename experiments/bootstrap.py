"""Run an experiment script inside the project's virtual environment, whatever started it.

The README's commands start scripts with the system Python (``python
experiments/skew_sweep.py`` as root), which has none of the testbed's packages. Each script
calls :func:`into_venv` first thing, with the standard library only; it re-executes the
script with ``.venv/bin/python`` (made by ``make setup``) unless it already runs there.

A script imports this module by its bare name (``import bootstrap``): run as a file, a
script's own folder is the first entry of ``sys.path``. Run as a module (``python -m
experiments.x``) a script skips it: ``-m`` needs the package installed, i.e. the venv.

Caveat: standard library only, and nothing in ``experiments/__init__.py`` may change that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / ".venv"


def into_venv(script: str) -> None:
    """Re-execute ``script`` (its ``__file__``) with the venv's Python, same arguments,
    unless this is that Python already; one line and exit status 1 if there is no venv."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    name = Path(script).stem
    if not python.exists():
        sys.exit(f"{name}: the testbed is not set up: run `make setup` as root in {VENV.parent}")
    os.execv(python, [str(python), str(Path(script).resolve()), *sys.argv[1:]])
