"""The strategy registry: every layer asks it, and a new strategy is one module + one line.

A toy strategy (``toy_strategy.py``, a module of its own) is registered for the length of a
test and runs through everything short of a live network: the worker's option parser, the
trial's configuration and worker flags, the real shim and the real cores in one process,
and the oracle, which passes it, and catches its buggy variant. Also: what every registered
strategy declares is consistent with the shim's and the controller's modes.
"""

from __future__ import annotations

import pytest

from controller.dispatch import MODES
from experiments.analysis.offline import run_offline
from experiments.runtime.config import TrialConfig
from experiments.workload.traffic import TraceSpec, make_trace
from nfs import make_nf, worker
from nfs.cores.base import run
from nfs.strategies import REPLICAS, SHARED, Strategy, TrialPlaces, get, names, register
from sequencer.shim import SPRAY_MODES
from tests.unit.nfs.strategies import toy_strategy

WORKER_ARGV = ["--iface", "lo", "--core", "1", "--cores", "4", "--nf", "ddos", "--out", "/tmp"]


@pytest.fixture
def toy():
    with register(toy_strategy.STRATEGY) as strategy:  # the one registry line
        yield strategy


def test_the_toy_exists_only_while_registered(toy):
    assert "toy" in names() and get("toy") is toy


def test_unregistered_after_the_block():
    with register(toy_strategy.STRATEGY):
        pass
    assert "toy" not in names()
    with pytest.raises(ValueError, match="unknown strategy 'toy'; choose from scr, lock"):
        get("toy")


def test_a_name_registers_once(toy):
    with pytest.raises(ValueError, match="registered twice"), register(toy):
        pass
    assert get("toy") is toy  # the failed registration left the first one alone


def test_the_worker_parses_the_toys_own_options(toy):
    args = worker.parse_args([*WORKER_ARGV, "--strategy", "toy", "--toy-label", "x"])
    core = get(args.strategy).make_core(make_nf("ddos"), args.core, args.cores, args)
    assert isinstance(core, toy_strategy.ToyReplica) and core.label == "x"


def test_other_strategies_refuse_the_toys_options(toy, capsys):
    with pytest.raises(SystemExit):
        worker.parse_args([*WORKER_ARGV, "--strategy", "scr", "--toy-label", "x"])
    assert "unrecognized arguments: --toy-label x" in capsys.readouterr().err


def test_a_trial_configures_the_toy_and_passes_its_flags(toy):
    config = TrialConfig(strategy="toy", cores=4)
    assert toy.worker_flags(config, TrialPlaces()) == ("--toy-label", "4-cores")


def test_the_oracle_passes_the_toy_through_the_real_shim_and_cores(toy):
    frames = make_trace(TraceSpec(packets=300, flows=10, seed=3))
    out = run_offline(lambda: make_nf("knock"), frames, 3, strategy="toy")
    assert all(isinstance(core, toy_strategy.ToyReplica) for core in out.cores)
    assert out.sequencer.mode == "scr"
    assert sum(core.stats["toy_records"] for core in out.cores) > 0
    assert out.result.equivalent, out.result.problems


def test_the_oracle_catches_the_buggy_toy(toy):
    frames = make_trace(TraceSpec(packets=300, flows=10, seed=3))
    buggy = toy.core_args(("--skip", "7"))
    out = run_offline(lambda: make_nf("ddos"), frames, 3, strategy="toy",
                      make_core=lambda nf, core, n: toy.make_core(nf, core, n, buggy))
    assert not out.result.equivalent
    assert not out.result.consistent, "a silent skip is no declared gap"


def test_unknown_strategies_fail_everywhere():
    with pytest.raises(ValueError, match="unknown strategy 'rss'"):
        TrialConfig(strategy="rss")
    with pytest.raises(SystemExit):
        worker.parse_args([*WORKER_ARGV, "--strategy", "rss"])
    with pytest.raises(ValueError, match="unknown strategy 'rss'"):
        run_offline(lambda: make_nf("ddos"), [], 2, strategy="rss")


@pytest.mark.parametrize("name", names())
def test_every_strategy_is_declared_consistently(name):
    strategy = get(name)
    assert strategy.spray in SPRAY_MODES and strategy.spray in MODES
    # History is what the scr and single sprays send; no other spray carries records.
    assert strategy.history == (strategy.spray in ("scr", "single"))
    # A strategy without replicas says which one state the oracle compares.
    assert (strategy.view_kind == SHARED) == (strategy.view is not None)
    assert strategy.view_kind in (REPLICAS, SHARED)
    assert strategy.view_kind == REPLICAS or not strategy.history
    assert strategy.store is None or strategy.runtime is not run  # stores run asyncio
    assert strategy.core_args() is not None  # its options all have defaults


def test_a_shared_view_needs_its_function():
    with pytest.raises(ValueError, match="needs its view function"):
        Strategy(name="bad", summary="", spray="lock", make_core=lambda *a: None,
                 view_kind=SHARED)
    with pytest.raises(ValueError, match="view_kind must be"):
        Strategy(name="bad", summary="", spray="lock", make_core=lambda *a: None,
                 view_kind="union")


def test_fixed_cores():
    get("single").check_cores(1)
    with pytest.raises(ValueError, match="exactly one core"):
        get("single").check_cores(2)
    get("scr").check_cores(7)
