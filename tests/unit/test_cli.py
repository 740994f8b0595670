"""The command-line entry points: ``--help`` documents every flag; bad values end with a
one-line message and exit status 2, before any network is built."""

from __future__ import annotations

import subprocess
import sys

import pytest

from experiments.results import REPO_ROOT

SWEEP = str(REPO_ROOT / "experiments" / "skew_sweep.py")


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)


def test_skew_sweep_help_documents_every_flag():
    result = run(SWEEP, "--help")
    assert result.returncode == 0
    for flag in ("--nf", "--skews", "--cores", "--rate", "--packets", "--flows", "--work",
                 "--seed", "--quick", "--results-dir"):
        assert flag in result.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--rate", "-5"], "must be > 0"),
    (["--cores", "0"], "must be >= 1"),
    (["--skews", "-1"], "must be >= 0"),
    (["--nf", "nope"], "invalid choice"),
    (["--work", "-1"], "--work must be >= 0"),
    (["--packets", "many"], "invalid positive_int value"),
])
def test_skew_sweep_rejects_bad_flags_in_one_line(argv, message):
    result = run(SWEEP, *argv)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in result.stderr


@pytest.mark.parametrize("module", ["nfs.worker", "sequencer.shim", "experiments.sink",
                                    "experiments.generator", "controller.launcher"])
def test_process_entry_points_have_help(module):
    result = run("-m", module, "--help")
    assert result.returncode == 0 and "--" in result.stdout


def test_generator_reports_an_unreadable_trace_in_one_line(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap at all, sorry")
    result = run("-m", "experiments.generator", "--iface", "lo", "--trace", str(bad),
                 "--rate", "10", "--out", str(tmp_path))
    magic = int.from_bytes(bad.read_bytes()[:4], "little")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"generator: {bad} is not a little-endian microsecond pcap (magic {magic:#x})")


def test_plotting_a_folder_without_results_says_so(tmp_path):
    result = run("-m", "experiments.plotting", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"plotting: no results.csv in {tmp_path}"
