"""Results folders: one per run, with its configuration, CSVs and plots.

``new_run_dir("skew_sweep")`` makes ``results/skew_sweep/<timestamp>/``; ``write_config``
records the arguments with the git commit and the versions of everything that shapes the
numbers (kernel, Python, Mininet, Open vSwitch, os-ken, Scapy); ``CsvLog`` appends result
rows as they come, so an interrupted sweep keeps every finished trial.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_ROOT = REPO_ROOT / "results"


def new_run_dir(kind: str, root: Path | None = None) -> Path:
    """A fresh ``<root>/<kind>/<YYYYmmdd-HHMMSS>`` folder (suffixed if taken)."""
    base = Path(root or RESULTS_ROOT) / kind
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        path = base / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot make a results folder under {base}")


def _run(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True,
                              cwd=REPO_ROOT, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_revision() -> str:
    """The commit of the code, with ``-dirty`` if the work tree has changes."""
    commit = _run("git", "rev-parse", "HEAD")
    if commit != "unknown" and _run("git", "status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return commit


def versions() -> dict:
    def package(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    ovs = _run("ovs-vswitchd", "--version").splitlines()
    return {
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "mininet": package("mininet"),
        "openvswitch": ovs[0] if ovs else "unknown",
        "os-ken": package("os-ken"),
        "scapy": package("scapy"),
        "cpus": os.cpu_count(),
    }


def write_config(run_dir: Path, arguments: dict, **extra) -> None:
    config = {
        "arguments": arguments,
        "git": git_revision(),
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        **extra,
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=1, default=str) + "\n")


class CsvLog:
    """A CSV file written one row at a time (flushed, so a crash keeps what was done)."""

    def __init__(self, path: Path, columns: list[str]):
        self.path = Path(path)
        self.columns = columns
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerow(columns)

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(
                json.dumps(row.get(c)) if isinstance(row.get(c), (list, dict)) else row.get(c, "")
                for c in self.columns
            )


def read_csv(path: Path) -> list[dict]:
    """Rows of a results CSV as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
