"""The wire package's import rules, read from the source (function-level imports included):

* nothing under ``sequencer/`` imports ``nfs``, ``controller``, ``experiments`` or
  ``topologies``, and nothing under ``controller/`` imports ``nfs``;
* no codec in ``sequencer/wire`` imports Scapy or ``scapy_layers`` (only ``pcap`` may, inside
  the function that writes), and the modules of ``sequencer/wire`` import each other without
  a cycle;
* importing every codec, in a fresh interpreter, loads no Scapy at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
WIRE = ROOT / "sequencer" / "wire"
CODECS = sorted(p.stem for p in WIRE.glob("*.py") if p.stem not in ("__init__", "scapy_layers"))


def imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, anywhere in it, and whether at its top level."""
    tree = ast.parse(path.read_text(), str(path))
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(name, id(node) in top) for name in [node.module, *names]]
    return found


def test_the_scan_sees_function_level_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\ndef f():\n    from nfs import base\n")
    assert ("nfs", False) in imports(probe) and ("os", True) in imports(probe)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("sequencer", ("nfs", "controller", "experiments", "topologies")),
    ("controller", ("nfs",)),
])
def test_no_package_imports_from_above_it(package, forbidden):
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name, _top in imports(path)
        if name.split(".")[0] in forbidden
    ]
    assert offenders == []


@pytest.mark.parametrize("codec", CODECS)
def test_no_codec_imports_scapy(codec):
    for name, top in imports(WIRE / f"{codec}.py"):
        assert name != "sequencer.wire.scapy_layers" and not name.endswith(".scapy_layers")
        if name.split(".")[0] == "scapy":
            assert codec == "pcap" and not top, f"{codec} imports {name}"


def test_the_wire_modules_import_each_other_without_a_cycle():
    graph = {
        module: {name.split(".")[2] for name, _top in imports(WIRE / f"{module}.py")
                 if name.startswith("sequencer.wire.") and name.split(".")[2] != module}
        for module in [*CODECS, "scapy_layers"]
    }
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    done: set[str] = set()
    while len(done) < len(graph):
        ready = {m for m, deps in graph.items() if m not in done and deps <= done}
        assert ready, f"an import cycle among {sorted(set(graph) - done)}"
        done |= ready
    assert "scapy_layers" not in set().union(*graph.values())  # nothing imports the layers


def test_importing_every_codec_loads_no_scapy():
    code = ("import sys\n"
            + "".join(f"import sequencer.wire.{codec}\n" for codec in CODECS)
            + "import sequencer.shim, sequencer.dataplane\n"
            + "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
