"""The command-line entry points: ``--help`` documents every flag; bad values end with a
one-line message and exit status 2, before any network is built."""

from __future__ import annotations

import subprocess
import sys

import pytest

from experiments.runtime.results import REPO_ROOT

SWEEPS = [str(REPO_ROOT / "experiments" / f"{name}.py")
          for name in ("skew_sweep", "core_sweep", "loss_sweep")]


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_help_documents_every_flag(sweep):
    result = run(sweep, "--help")
    assert result.returncode == 0
    for flag in ("--nf", "--strategies", "--skews", "--cores", "--mode", "--rate",
                 "--max-rate", "--threshold", "--duration", "--flows", "--work-us",
                 "--state-work", "--core-share", "--transfer-work", "--seed", "--quick",
                 "--results-dir", "--losses", "--recovery", "--loss-seed"):
        assert flag in result.stdout


@pytest.mark.parametrize("sweep", SWEEPS)
@pytest.mark.parametrize(("argv", "message"), [
    (["--rate", "-5"], "must be > 0"),
    (["--cores", "0"], "must be >= 1"),
    (["--skews", "-1"], "must be >= 0"),
    (["--nf", "nope"], "invalid choice"),
    (["--strategies", "magic"], "invalid choice"),
    (["--work-us", "-1"], "must be >= 0"),
    (["--duration", "soon"], "invalid positive_float value"),
    (["--threshold", "1.5"], "must be in [0, 1)"),
    (["--losses", "1.5"], "must be in [0, 1)"),
    (["--core-share", "3"], "--core-share must be at most 1"),
    (["--placement", "cpus", "--strategies", "scr", "--cores", "1", "64"],
     "placement cpus needs 65 CPUs"),
    (["--placement", "cpus", "--core-share", "0.5"], "--core-share is for placement quota"),
    (["--port-type", "dpdk"], "invalid choice"),
])
def test_sweep_rejects_bad_flags_in_one_line(sweep, argv, message):
    result = run(sweep, *argv)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in result.stderr


@pytest.mark.parametrize("module", ["nfs.worker", "experiments.hosts.shim",
                                    "experiments.hosts.sink", "experiments.hosts.generator",
                                    "controller.launcher"])
def test_process_entry_points_have_help(module):
    result = run("-m", module, "--help")
    assert result.returncode == 0 and "--" in result.stdout


def test_generator_reports_an_unreadable_trace_in_one_line(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap at all, sorry")
    result = run("-m", "experiments.hosts.generator", "--iface", "lo", "--trace", str(bad),
                 "--rate", "10", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"generator: {bad} is not a pcap or pcapng file (magic {bad.read_bytes()[:4].hex()})")


def test_plotting_a_folder_without_results_says_so(tmp_path):
    result = run("-m", "experiments.plots.plotting", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"plotting: no results.csv in {tmp_path}"
