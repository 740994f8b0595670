"""The architecture's layer contracts (``pyproject.toml``, run by ``make lint``) hold, and
fail on the imports they exist to forbid.

Each case copies the five packages into a temporary folder, injects one import, and runs
``lint-imports`` on the copy: a sequencer module importing an NF, the controller importing
``nfs``, one NF importing another, a script importing another script, and a cycle between
two sibling modules. The unchanged copy is the control.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.runtime.results import REPO_ROOT

PACKAGES = ("topologies", "controller", "sequencer", "nfs", "experiments")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def tree(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def lint(tree: Path) -> subprocess.CompletedProcess:
    # The copy, not the installed checkout; wide lines, so no contract's name is wrapped.
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "300"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def inject(path: Path, line: str) -> None:
    text = path.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in text, path
    path.write_text(text.replace(marker, marker + line + "\n", 1))


def test_the_tree_keeps_every_contract(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("sequencer/wire/header.py", "import nfs.ddos", "Packages:"),
    ("controller/dispatch.py", "import nfs.base", "Packages:"),
    ("nfs/token_bucket.py", "import nfs.heavy_hitter", "NFs:"),
    ("experiments/soak.py", "import experiments.core_failover", "Experiments:"),
    ("experiments/hosts/generator.py", "import experiments.runtime.trial", "Experiments:"),
    ("sequencer/wire/spray.py", "import sequencer.wire.scapy_layers", "No import cycles"),
])
def test_a_forbidden_import_breaks_its_contract(tree, module, line, contract):
    inject(tree / module, line)
    result = lint(tree)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.rstrip().endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout
