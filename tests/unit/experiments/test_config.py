"""``TrialConfig`` refuses, when it is made, what its strategy (from the registry) cannot
run, so that no bad combination reaches a worker on a live network."""

from __future__ import annotations

import pytest

from experiments.runtime.config import TrialConfig


@pytest.mark.parametrize("strategy", ["scr", "lock", "shard", "service", "remote-naive"])
def test_every_strategy_runs_on_four_cores(strategy):
    assert TrialConfig(strategy=strategy, cores=4).strategy == strategy


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategy": "rss"}, "unknown strategy 'rss'"),
    ({"strategy": "single", "cores": 2}, "the single strategy runs on exactly one core"),
    ({"strategy": "lock", "recovery": True}, "not for the lock strategy"),
    ({"strategy": "service", "watch_cores": True, "recovery": True},
     "not for the service strategy"),
    ({"strategy": "scr", "watch_cores": True}, "watching cores needs recovery"),
    ({"strategy": "scr", "watch_cores": True, "recovery": True, "cores": 1},
     "2 or more cores"),
    ({"inflight": 0}, "in-flight packets must be >= 1"),
    ({"nf": "nope"}, "unknown NF 'nope'"),
])
def test_a_bad_combination_fails_when_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrialConfig(**kwargs)


def test_scr_takes_recovery_and_watching():
    config = TrialConfig(strategy="scr", cores=4, recovery=True, watch_cores=True)
    assert config.recovery and config.watch_cores
