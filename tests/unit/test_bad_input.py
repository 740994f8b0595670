"""Bad input ends every command with a one-line message and exit status 2, never a traceback.

Fed to each command-line entry point, in a subprocess (the experiment scripts' parsers run
in this process for most of their cases: each script imports Mininet and matplotlib, ~1.5 s
a start; a few cases run them end to end):

* bad flag values: the experiment scripts (``skew_sweep``, ``core_sweep``, ``async_latency``,
  ``failover``, ``bench_datapath``, ``plot``) and the processes a trial starts
  (``nfs.worker``, ``experiments.hosts.shim``, ``nfs.stores.service``,
  ``nfs.stores.redis_server``, ``controller.launcher``, ``experiments.hosts.generator``,
  ``experiments.hosts.sink``, the benchmark's ``--role`` processes), non-finite numbers included;
* unreadable or corrupt pcap files: missing, a directory (the tests run as root, so "no
  permission" cannot be made with modes), empty, truncated, wrong magic, another link type,
  a record longer than 262144 bytes, no packets;
* a machine that cannot run the testbed: no Open vSwitch on the PATH, an Open vSwitch that
  does not answer (a stand-in ``ovs-vsctl`` that fails), and no root (the script run in a
  process whose ``os.geteuid`` is not 0: a real unprivileged user could not read a
  checkout in a private folder);
* a port already taken on 127.0.0.1 (bound by the test first) for the controller and a
  backup worker's log (the state service's and Redis's are in ``test_stores``);
* a controller pipeline file that is missing, a directory, not JSON, or not a valid plan.

Safety: nothing here may build a network. An experiment script runs in a subprocess only
with a PATH that has no ``ovs-vsctl`` (or as a non-root user), so that a bad value the parser
wrongly accepted ends at the start-up check, not in a sweep; in this process only its
parser runs. Every data-path process is given an interface that does not exist
(``nosuch0``), so that none ever sends or listens on a real one; the processes run four at
a time.

``FIXED_CASES`` were tracebacks of the shim and the worker found by these tests, now one
line each. Tests that need root (the start-up checks pass the root check first) are skipped
without it.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from controller.launcher import read_pipeline
from experiments import (
    async_latency,
    bench_datapath,
    bench_sequencer,
    core_sweep,
    failover,
    plot,
    skew_sweep,
)
from experiments.runtime.results import REPO_ROOT
from experiments.workload.traffic import TraceError, read_pcap, write_pcap
from sequencer.dataplane import port_is_free
from sequencer.wire.packet import PROTO_TCP, build
from topologies.scr_topo import PortPlan

SCRIPTS = REPO_ROOT / "experiments"
NO_IFACE = "nosuch0"  # an interface that does not exist: nothing is ever sent
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the start-up check needs root "
                                                         "before it looks at Open vSwitch")


@pytest.fixture(scope="module")
def empty_path(tmp_path_factory) -> str:
    """A PATH with nothing on it: no ``ovs-vsctl``, so no experiment gets past its start-up
    check even if a bad value slipped through its parser."""
    return str(tmp_path_factory.mktemp("empty-path"))


def run(argv: list[str], path: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # The subprocess must import this checkout, whatever it was started as (a script's
    # sys.path[0] is its folder, and the package may be installed from another tree).
    env["PYTHONPATH"] = str(REPO_ROOT)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO_ROOT)


def check_one_line(code: int, stderr: str, message: str) -> None:
    """Exit status 2 and one line on stderr saying ``message`` (argparse's own errors may
    print their usage lines first), no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert lines and message in lines[-1], stderr
    if len(lines) > 1:  # argparse: "usage: ..." and its continuation lines, then the error
        assert lines[0].startswith("usage:") and ": error: " in lines[-1], stderr
        assert all(line.startswith(" ") for line in lines[1:-1]), stderr


def assert_one_line(result: subprocess.CompletedProcess, message: str) -> None:
    check_one_line(result.returncode, result.stderr, message)


def parse_error(parse, argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``parse(argv)``, a command's parser run in this process
    (the scripts import Mininet and matplotlib: a subprocess per case costs ~1.5 s)."""
    with pytest.raises(SystemExit) as info:
        parse(argv)
    return info.value.code, capsys.readouterr().err


def script(name: str) -> str:
    return str(SCRIPTS / f"{name}.py")


# --- experiment scripts --------------------------------------------------------------------


SWEEP_CASES = [
    (["--rate", "inf"], "--rate: must be a finite number, got inf"),
    (["--max-rate", "nan"], "--max-rate: must be a finite number, got nan"),
    (["--duration", "nan"], "--duration: must be a finite number"),
    (["--skews", "0", "inf"], "--skews: must be a finite number"),
    (["--store-delays-us", "inf"], "--store-delays-us: must be a finite number"),
    (["--threshold", "nan"], "--threshold: must be a finite number"),
    (["--precision", "1"], "--precision: must be in [0, 1)"),
    (["--core-share", "inf"], "--core-share: must be a finite number"),
    (["--probe-per-core", "0"], "--probe-per-core: must be > 0"),
    (["--cores", "1.5"], "invalid positive_int value: '1.5'"),
    (["--max-steps", "0"], "--max-steps: must be >= 1"),
    (["--flows", "-3"], "--flows: must be >= 1"),
    (["--inflight", "0"], "--inflight: must be >= 1"),
    (["--state-work-us", "x"], "invalid non_negative_float value: 'x'"),
    (["--work-us", "inf"], "--work-us: must be a finite number"),
    (["--transfer-work-us", "-1"], "--transfer-work-us: must be >= 0"),
    (["--seed", "one"], "invalid int value: 'one'"),
    (["--mode", "turbo"], "invalid choice: 'turbo'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("sweep", [skew_sweep, core_sweep, async_latency],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_sweeps_reject_bad_values(sweep, capsys):
    for argv, message in SWEEP_CASES:
        check_one_line(*parse_error(sweep.parse_args, argv, capsys), message)


@pytest.mark.parametrize(("argv", "message"), [
    (["--rate", "inf"], "--rate: must be a finite number"),
    (["--duration", "0"], "--duration: must be > 0"),
    (["--kill-at", "9"], "--kill-at must be less than --duration"),
    (["--timeout-ms", "nan"], "--timeout-ms: must be a finite number"),
    (["--skew", "-1"], "--skew: must be >= 0"),
    (["--nf", "nope"], "invalid choice: 'nope'"),
    (["--nf-params", "{bad"], "--nf-params is not valid JSON"),
    (["--nf-params", "[1]"], "--nf-params must be a JSON object"),
    (["--nf-params", '{"threshold": 0}'], "threshold must be >= 1, not 0"),
    (["--nf-params", '{"x": 1}'], "bad parameters for NF 'ddos'"),
])
def test_failover_rejects_bad_values(argv, message, capsys):
    check_one_line(*parse_error(failover.parse_args, argv, capsys), message)


@pytest.mark.parametrize(("argv", "message"), [
    (["--paths", "nope"], "unknown path 'nope'"),
    (["--paths", "ovs-shim-65"], "--paths"),
    (["--count", "0"], "--count: must be >= 1"),
    (["--rate", "-1"], "--rate: must be >= 0"),
    (["--rate", "inf"], "--rate: must be a finite number"),
])
def test_bench_datapath_rejects_bad_values(argv, message, capsys):
    check_one_line(*parse_error(bench_datapath.parse_args, argv, capsys), message)


@pytest.mark.parametrize(("argv", "message"), [
    (["--packets", "0"], "--packets: must be >= 1"),
    (["--live-count", "-5"], "--live-count: must be >= 1"),
    (["--nf", "nope"], "invalid choice: 'nope'"),
])
def test_bench_sequencer_rejects_bad_values(argv, message, capsys):
    check_one_line(*parse_error(bench_sequencer.parse_args, argv, capsys), message)


@pytest.mark.parametrize(("name", "argv", "message"), [
    ("core_sweep", ["--skews", "nan"], "--skews: must be a finite number, got nan"),
    ("bench_datapath", ["--rate", "inf"], "--rate: must be a finite number"),
])
def test_scripts_end_with_one_line(name, argv, message, empty_path):
    """The same, end to end: the script re-executed as a command."""
    assert_one_line(run([script(name), *argv], path=empty_path), message)


def test_plot_rejects_missing_and_corrupt_results(tmp_path, capsys):
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "results.csv").write_bytes(b"\x00\xff\xfe not a csv")
    columns = tmp_path / "columns"
    columns.mkdir()
    (columns / "results.csv").write_text("nf,strategy\nddos,scr\n")
    values = tmp_path / "values"
    values.mkdir()
    (values / "results.csv").write_text(
        "nf,strategy,cores,skew,throughput_pps,mode,faithful\nddos,scr,two,0,1,mlffr,True\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for folder, message in [
        (tmp_path / "missing", "no such folder"),
        (a_file, "no such folder"),
        (tmp_path, "no results.csv in"),
        (binary, "is not a readable CSV"),
        (columns, "lacks column(s) cores, skew, throughput_pps"),
        (values, "line 2: cores must be a number, got 'two'"),
    ]:
        try:
            code = plot.main([str(folder)])
        except SystemExit as exit_:
            code = exit_.code
        check_one_line(code, capsys.readouterr().err, message)
    assert_one_line(run(["-m", "experiments.plot", str(binary)]), "is not a readable CSV")


# --- the machine: Open vSwitch and root ---------------------------------------------------


@root_only
@pytest.mark.parametrize("name", ["skew_sweep"])
def test_experiments_without_ovs_on_the_path(name, empty_path, tmp_path):
    result = run([script(name), "--results-dir", str(tmp_path)], path=empty_path)
    assert_one_line(result, f"{name}: ovs-vsctl is not installed: run `make setup` as root")
    assert not any(tmp_path.iterdir())  # it stopped before making a results folder


@root_only
@pytest.mark.parametrize("name", ["bench_datapath", "failover"])
def test_experiments_with_ovs_not_answering(name, tmp_path):
    """``ovs-vsctl`` is there but fails, as it does when ovsdb-server is down."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("ovs-vsctl", "echo 'ovs-vsctl: unix:/var/run/openvswitch/db.sock: "
                                     "database connection failed' >&2; exit 1"),
                       ("mnexec", "exit 0")):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    results = tmp_path / "results"
    result = run([script(name), "--results-dir", str(results)], path=str(bin_dir))
    assert_one_line(result, f"{name}: Open vSwitch is not running: start it with "
                            "`make ovs` as root")
    assert not results.exists()


#: Runs an experiment script as ``__main__`` in a process whose ``os.geteuid`` says it is
#: not root. Running it as a real unprivileged user would make the test depend on where
#: the checkout lives and who may read it (a clone in a private folder is unreadable to
#: ``nobody``); what is under test is the script's start-up check, which asks ``geteuid``.
# Run the script as Python runs a file (its folder first on sys.path), as a non-root user.
AS_NON_ROOT = ("import os, runpy, sys; os.geteuid = lambda: 65534; "
               "sys.argv = sys.argv[1:]; sys.path.insert(0, os.path.dirname(sys.argv[0])); "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.mark.parametrize("name", ["skew_sweep", "core_sweep", "loss_sweep", "async_latency",
                                  "failover", "core_failover", "soak", "bench_datapath",
                                  "bench_failover"])
def test_experiments_without_root(name, tmp_path, empty_path):
    results = tmp_path / "results"
    # The empty PATH is the safety net: were the root check gone, the script would stop at
    # the next check (no ovs-vsctl) instead of building a network.
    result = run(["-c", AS_NON_ROOT, script(name), "--results-dir", str(results)],
                 path=empty_path)
    assert_one_line(result, f"{name}: needs root (Mininet makes network namespaces): "
                            "run it as root")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not results.exists()  # no results folder was made


# --- traces --------------------------------------------------------------------------------


def _trace(path: Path) -> Path:
    frames = [build(src=i + 1, dst=99, proto=PROTO_TCP, sport=1, dport=2, trace_id=i)
              for i in range(3)]
    write_pcap(path, frames)
    return path


@pytest.fixture
def bad_traces(tmp_path) -> dict[str, tuple[Path, str]]:
    """Bad trace files and what their one-line error must say."""
    good = _trace(tmp_path / "good.pcap").read_bytes()
    files = {
        "truncated record": (good[:-10], "is truncated in record 2"),
        "truncated record header": (good[:24 + 16 + 60 + 8], "is truncated in record 1"),
        "byte-swapped magic": (b"\xa1\xb2\xc3\xd4" + good[4:],  # lengths read big-endian
                               "has a record longer than 262144 bytes (record 0)"),
        "not a pcap": (b"GIF89a" + good[6:],
                       "is not a pcap or pcapng file (magic 47494638)"),
        "pcapng magic": (b"\x0a\x0d\x0d\x0a" + good[4:],
                         "is not a readable pcapng file (Bad magic in Section Header Block "
                         "(not a pcapng file?))"),
        "empty": (b"", "is empty, not a pcap or pcapng file"),
        "three bytes": (good[:3], "is not a pcap or pcapng file (only 3 bytes)"),
        "short header": (good[:10], "is truncated in its pcap file header"),
        "no packets": (good[:24], "has no packets"),
        "link type": (good[:20] + struct.pack("<I", 101) + good[24:],
                      "has link type 101 (raw IP), not Ethernet: import it with "
                      "python -m experiments.workload.trace_files"),
        "huge record": (good[:24] + struct.pack("<IIII", 0, 0, 300_000, 300_000) + good[40:]
                        + bytes(300_000), "has a record longer than 262144 bytes (record 0)"),
    }
    out = {}
    for name, (data, message) in files.items():
        path = tmp_path / f"{name.replace(' ', '-')}.pcap"
        path.write_bytes(data)
        out[name] = (path, f"{path} {message}")
    out["missing"] = (tmp_path / "nope.pcap", f"cannot read trace {tmp_path / 'nope.pcap'}: "
                                              "No such file or directory")
    out["directory"] = (tmp_path, f"cannot read trace {tmp_path}: Is a directory")
    return out


def test_read_pcap_raises_one_line_trace_errors(bad_traces):
    for path, message in bad_traces.values():
        with pytest.raises(TraceError) as info:
            read_pcap(path)
        assert str(info.value) == message


def test_read_pcap_reads_a_good_trace(tmp_path):
    assert len(read_pcap(_trace(tmp_path / "t.pcap"))) == 3


def test_generator_rejects_bad_traces_before_sending(bad_traces, tmp_path):
    for path, message in bad_traces.values():
        result = run(["-m", "experiments.hosts.generator", "--iface", NO_IFACE, "--trace",
                      str(path), "--rate", "10", "--out", str(tmp_path)])
        assert_one_line(result, f"generator: {message}")
        assert result.stdout == ""  # never READY: nothing was sent
    assert not (tmp_path / "generator.json").exists()


def test_bench_sender_rejects_bad_traces(bad_traces, tmp_path):
    for name in ("truncated record", "directory"):
        path, message = bad_traces[name]
        result = run(["-m", "experiments.hosts.bench_roles", "--role", "sender", "--iface", "lo",
                      "--trace", str(path), "--out", str(tmp_path)])
        assert_one_line(result, f"bench_datapath: {message}")


# --- data-path processes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("out")


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    return _trace(tmp_path_factory.mktemp("trace") / "t.pcap")


def worker(*extra: str, out: str = "{out}") -> list[str]:
    return ["-m", "nfs.worker", "--iface", NO_IFACE, "--core", "0", "--cores", "1",
            "--nf", "ddos", "--out", out, *extra]


def shim(*extra: str, cores: str = "2") -> list[str]:
    return ["-m", "experiments.hosts.shim", "--in-iface", NO_IFACE, "--out-iface", NO_IFACE,
            "--cores", cores, "--nf", "ddos", "--out", "{out}", *extra]


PROCESS_CASES = [
    # nfs.worker
    (worker("--core", "1"), "--core must be in 0..0"),
    (worker("--rcvbuf", "100"), "--rcvbuf must be >= 4096 bytes"),
    (worker("--strategy", "service", "--store", "127.0.0.1:7", "--inflight", "0"),
     "worker: --inflight must be >= 1"),
    (worker("--strategy", "service", "--store", "127.0.0.1:7", "--store-delay-us", "-1"),
     "--store-delay-us in 0..10000000"),
    # A strategy's options are its own: another strategy's worker refuses them.
    (worker("--strategy", "scr", "--inflight", "4"), "unrecognized arguments: --inflight 4"),
    (worker("--strategy", "lock", "--recovery", "/dev/shm/x"),
     "unrecognized arguments: --recovery"),
    (worker("--nf", "nope"), "invalid choice: 'nope'"),
    (worker("--strategy", "magic"), "invalid choice: 'magic'"),
    (worker("--nf-params", "{{bad"), "worker: --nf-params is not valid JSON"),
    (worker("--nf-params", '{{"threshold": -1}}'), "worker: threshold must be >= 1, not -1"),
    (worker("--strategy", "lock"), "worker: the lock strategy needs --table"),
    (worker("--strategy", "lock", "--table", "/nonexistent.table"),
     "worker: /nonexistent.table: no shared table there"),
    (worker("--strategy", "lock", "--table", "/dev/null"), "worker: /dev/null: not a shared "
                                                           "table (0 bytes)"),
    (worker("--cores", "2", "--strategy", "single"),
     "worker: the single strategy runs on exactly one core"),
    (worker("--strategy", "service"), "worker: the service strategy needs --store"),
    (worker("--strategy", "service", "--store", "nohost"),
     "worker: store address must be HOST:PORT"),
    (worker("--strategy", "single", "--replicate-to", "x"),
     "worker: address must be HOST:PORT"),
    (worker("--strategy", "single", "--backup-listen", "127.0.0.1:99999"),
     "worker: address must be HOST:PORT with a port in 1..65535"),
    (worker("--strategy", "scr", "--backup-listen", "127.0.0.1:1"),
     "worker: primary-backup runs the single strategy"),
    (worker("--strategy", "single", "--replicate-to", "127.0.0.1:1", "--backup-listen",
            "127.0.0.1:2"), "worker: --replicate-to and --backup-listen exclude each other"),
    (worker("--strategy", "single", "--backup-listen", "127.0.0.1:7", "--heartbeat-ms",
            "-1"), "worker: --heartbeat-ms must be >= 0"),
    # sequencer.shim
    (shim("--nf", "nope"), "invalid choice: 'nope'"),
    (shim("--strategy", "magic"), "invalid choice: 'magic'"),
    (shim(cores="two"), "invalid int value: 'two'"),
    # nfs.stores.service
    (["-m", "nfs.stores.service", "--nf", "ddos", "--listen", "10.0.0.1:5", "--out", "{out}"],
     "state_service: the service listens on a loopback IP address only"),
    (["-m", "nfs.stores.service", "--nf", "ddos", "--listen", "127.0.0.1:x", "--out",
      "{out}"], "state_service: listen address must be HOST:PORT"),
    (["-m", "nfs.stores.service", "--nf", "ddos", "--listen", "127.0.0.1:7", "--out",
      "/nonexistent"], "state_service: no such results folder: /nonexistent"),
    (["-m", "nfs.stores.service", "--nf", "ddos", "--listen", "127.0.0.1:7", "--out", "{out}",
      "--nf-params", "[]"], "state_service: --nf-params must be a JSON object"),
    (["-m", "nfs.stores.service", "--nf", "ddos", "--listen", "127.0.0.1:7", "--out", "{out}",
      "--nf-params", "{{bad"], "state_service: --nf-params is not valid JSON"),
    # nfs.stores.redis_server
    (["-m", "nfs.stores.redis_server", "--nf", "ddos", "--port", "0", "--out", "{out}"],
     "redis_store: port must be in 1..65535, not 0"),
    (["-m", "nfs.stores.redis_server", "--nf", "ddos", "--port", "70000", "--out", "{out}"],
     "redis_store: port must be in 1..65535, not 70000"),
    (["-m", "nfs.stores.redis_server", "--nf", "ddos", "--port", "6390", "--out", "/nonexistent"],
     "redis_store: no such results folder: /nonexistent"),
    (["-m", "nfs.stores.redis_server", "--nf", "ddos", "--port", "6390", "--out", "{out}",
      "--nf-params", '{{"x": 1}}'], "redis_store: bad parameters for NF 'ddos'"),
    # controller.launcher
    (["-m", "controller.launcher", "--pipeline", "{plan}", "--port", "0"],
     "launcher: --port must be in 1..65535, not 0"),
    (["-m", "controller.launcher", "--pipeline", "{plan}", "--port", "70000"],
     "launcher: --port must be in 1..65535, not 70000"),
    (["-m", "controller.launcher", "--pipeline", "/nonexistent.json", "--port", "6999"],
     "launcher: cannot read pipeline /nonexistent.json: No such file or directory"),
    (["-m", "controller.launcher", "--pipeline", "{out}", "--port", "6999"],
     "launcher: cannot read pipeline {out}: Is a directory"),
    # experiments.hosts.generator
    (["-m", "experiments.hosts.generator", "--iface", NO_IFACE, "--trace", "{trace}", "--rate",
      "0", "--out", "{out}"], "--rate: must be > 0, got 0"),
    (["-m", "experiments.hosts.generator", "--iface", NO_IFACE, "--trace", "{trace}", "--rate",
      "inf", "--out", "{out}"], "--rate: must be a finite number, got inf"),
    (["-m", "experiments.hosts.generator", "--iface", NO_IFACE, "--trace", "{trace}", "--rate",
      "10", "--count", "-1", "--out", "{out}"], "--count must be >= 0"),
    (["-m", "experiments.hosts.generator", "--iface", NO_IFACE, "--trace", "{trace}", "--rate",
      "10", "--out", "/nonexistent"], "generator: no such results folder: /nonexistent"),
    (["-m", "experiments.hosts.generator", "--iface", NO_IFACE, "--trace", "{trace}", "--rate",
      "10", "--out", "{out}"], f"generator: cannot send on {NO_IFACE}: No such device"),
    # experiments.hosts.sink
    (["-m", "experiments.hosts.sink", "--iface", NO_IFACE, "--out", "{out}"],
     f"sink: cannot use interface {NO_IFACE}"),
    (["-m", "experiments.hosts.sink", "--iface", NO_IFACE, "--out", "/nonexistent"],
     "sink: no such results folder: /nonexistent"),
    # the benchmark's processes
    (["-m", "experiments.hosts.bench_roles", "--role", "receiver", "--iface", NO_IFACE, "--out",
      "{out}"], f"bench_datapath: cannot use interface {NO_IFACE}"),
    (["-m", "experiments.hosts.bench_roles", "--role", "relay", "--iface", "lo",
      "--out-iface", NO_IFACE, "--out", "{out}"],
     f"bench_datapath: cannot use interface {NO_IFACE}"),
    (["-m", "experiments.hosts.bench_roles", "--role", "sender", "--iface", NO_IFACE,
      "--trace", "{trace}", "--out", "{out}"], f"bench_datapath: cannot use interface {NO_IFACE}"),
    (["-m", "experiments.hosts.bench_roles", "--role", "sender", "--iface", NO_IFACE,
      "--trace", "{trace}", "--rate", "nan", "--out", "{out}"],
     "--rate: must be a finite number"),
    (["-m", "experiments.hosts.bench_roles", "--role", "receiver", "--iface", NO_IFACE,
      "--out", "/nonexistent"], "bench_datapath: no such results folder: /nonexistent"),
    # the parallel sequencer's process
    (["-m", "experiments.hosts.pipeline_shim", "--in-iface", NO_IFACE, "--out-iface",
      NO_IFACE, "--cores", "4", "--nf", "ddos", "--out", "{out}"],
     f"pipeline_shim: cannot use interface {NO_IFACE}"),
    (["-m", "experiments.hosts.pipeline_shim", "--in-iface", NO_IFACE, "--out-iface",
      NO_IFACE, "--cores", "300", "--nf", "ddos", "--out", "{out}"],
     "pipeline_shim: cores must be in 1..255"),
    (["-m", "experiments.hosts.pipeline_shim", "--in-iface", NO_IFACE, "--out-iface",
      NO_IFACE, "--cores", "4", "--builders", "0", "--nf", "ddos", "--out", "{out}"],
     "--builders: must be >= 1"),
    (["-m", "experiments.hosts.pipeline_shim", "--in-iface", NO_IFACE, "--out-iface",
      NO_IFACE, "--cores", "4", "--nf", "ddos", "--nf-params", '{{"x": 1}}', "--out",
      "{out}"], "pipeline_shim: bad parameters for NF 'ddos'"),
]

#: Bugs in files this change must not edit (see the module docstring): each is a traceback
#: today. The message checked is loose on purpose: whatever one line the fix prints.
FIXED_CASES = [  # tracebacks this fuzzing found, now one line each
    (worker("--nf-params", "[1]"), "worker: --nf-params must be a JSON object"),
    (worker(), f"worker: cannot use interface {NO_IFACE}"),
    (worker("--cores", "300", "--core", "0"), "--cores must be in 1..255"),
    (worker(out="/nonexistent"), "worker: no such results folder: /nonexistent"),
    (shim(cores="0"), "shim: cores must be in 1..255"),
    (shim(cores="300"), "shim: cores must be in 1..255"),
    (shim("--nf-params", "{{bad"), "shim: --nf-params is not valid JSON"),
    (shim("--nf-params", "[1]"), "shim: --nf-params must be a JSON object"),
    (shim("--nf-params", '{{"threshold": 0}}'), "threshold"),
    (shim(), f"shim: cannot use interface {NO_IFACE}"),
]


def _fill(argv: list[str], out_dir: Path, trace: Path, plan: Path) -> list[str]:
    return [a.format(out=out_dir, trace=trace, plan=plan) for a in argv]


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "pipeline.json"
    path.write_text(json.dumps({**PortPlan(2).to_json(), "mode": "scr"}))
    return path


@pytest.fixture(scope="module")
def outcomes(out_dir, trace, plan) -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Every case's command run once, four at a time (each is a ~0.2 s Python start-up)."""
    commands = [tuple(_fill(argv, out_dir, trace, plan))
                for argv, *_ in [*PROCESS_CASES, *FIXED_CASES]]
    with ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda argv: run(list(argv), timeout=30), commands)
        return dict(zip(commands, results, strict=True))


@pytest.mark.parametrize(("argv", "message"), PROCESS_CASES,
                         ids=[f"{a[1]}-{i}" for i, (a, _m) in enumerate(PROCESS_CASES)])
def test_process_entry_points_reject_bad_values(argv, message, outcomes, out_dir, trace,
                                                plan):
    result = outcomes[tuple(_fill(argv, out_dir, trace, plan))]
    assert_one_line(result, message.format(out=out_dir))
    assert "READY" not in result.stdout  # none of them got as far as its loop


@pytest.mark.parametrize(("argv", "message"), FIXED_CASES,
                         ids=[f"{a[1]}-fixed-{i}" for i, (a, _m) in enumerate(FIXED_CASES)])
def test_former_tracebacks_are_one_line(argv, message, outcomes, out_dir, trace, plan):
    assert_one_line(outcomes[tuple(_fill(argv, out_dir, trace, plan))], message)


# --- the controller's pipeline and ports taken ------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    (b"\x00\xff", "is not valid JSON"),
    (b"{bad", "is not valid JSON: Expecting property name"),
    (b"[1, 2]", "must hold a JSON object, not list"),
    (b'{"mode": "warp"}', "unknown mode 'warp'"),
    (b'{"mode": "scr"}', "pipeline plan lacks gen_port"),
    (b'{"mode": "scr", "gen_port": 1, "shim_in_port": 2, "shim_out_port": 3, '
     b'"sink_port": 4, "core_ports": 10}', "is not a valid plan: TypeError"),
    (b'{"mode": "shard", "gen_port": 1, "shim_in_port": 2, "shim_out_port": 3, '
     b'"sink_port": 4, "core_ports": [10, 11], "shard_fields": ["tcp_flags"]}',
     "unknown shard field(s) 'tcp_flags'"),
])
def test_launcher_rejects_bad_pipelines(content, message, tmp_path):
    path = tmp_path / "pipeline.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_pipeline(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)
    if content.startswith((b"{bad", b'{"mode": "warp"')):  # end to end: the command says it
        assert_one_line(run(["-m", "controller.launcher", "--pipeline", str(path), "--port",
                             "6999"], timeout=30), message)


def test_launcher_accepts_the_trials_pipeline(plan):
    assert read_pipeline(str(plan))["mode"] == "scr"


@pytest.fixture
def taken_port():
    """A port on 127.0.0.1 that a listening socket of the test holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_is_free(taken_port):
    assert not port_is_free(taken_port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    assert port_is_free(free)


def test_launcher_refuses_a_taken_port(taken_port, plan):
    result = run(["-m", "controller.launcher", "--pipeline", str(plan), "--port",
                  str(taken_port)], timeout=30)
    assert_one_line(result, f"launcher: 127.0.0.1:{taken_port} is already in use")
    assert len(result.stderr.strip().splitlines()) == 1


def test_backup_worker_refuses_a_taken_port(taken_port, out_dir):
    result = run(worker("--strategy", "single", "--backup-listen",
                        f"127.0.0.1:{taken_port}", out=str(out_dir)), timeout=30)
    assert_one_line(result, "worker: [Errno 98] Address already in use")

