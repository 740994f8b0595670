"""RSS++ (``rsspp``) without a network: the greedy rebalancer, the shim's indirection table
and its plan, and the cores' handover of moved buckets, checked against sequential
processing. A handover that goes wrong (keys kept by the old owner, a mailbox that never
comes) is shown failing the same check."""

from __future__ import annotations

import json

import pytest

from experiments.analysis.offline import ground_truth
from experiments.workload.traffic import TraceSpec, make_trace
from nfs import make_nf
from nfs.cores.rsspp import RssppCore
from nfs.oracle import TABLE, protocol_errors
from nfs.reference import StateView, check_views
from nfs.strategies import get as get_strategy
from sequencer import rss
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire.packet import parse

SKEWED = TraceSpec(packets=1500, flows=40, skew=1.2, seed=5)
NF_PARAMS = {"ddos": {"threshold": 20}}


def nf_for(name):
    return make_nf(name, **NF_PARAMS.get(name, {}))


def ts_of(i: int) -> int:
    return 1_000_000 + 1_500 * i


# --- the rebalancer --------------------------------------------------------------------


def test_rebalance_moves_load_from_the_busiest_to_the_idlest_core():
    table = rss.initial_table(2)  # even buckets on core 0, odd on core 1
    loads = [0] * rss.RETA_SIZE
    for b in range(0, 16, 2):
        loads[b] = 10  # core 0: 80 packets in 8 buckets, core 1: none
    moves = rss.rebalance(table, loads, 2)
    assert moves and all(src == 0 and dst == 1 for _b, src, dst in moves)
    per_core = [sum(loads[b] for b in range(rss.RETA_SIZE) if table[b] == c) for c in (0, 1)]
    assert per_core == [40, 40]


def test_rebalance_cannot_split_the_hottest_bucket():
    table = rss.initial_table(2)
    loads = [0] * rss.RETA_SIZE
    loads[0] = 100  # one flow, one bucket, on core 0
    loads[1] = 5
    assert rss.rebalance(table, loads, 2) == []
    assert table == rss.initial_table(2)


def test_rebalance_leaves_a_balanced_table_alone_and_bounds_its_moves():
    table = rss.initial_table(4)
    assert rss.rebalance(table, [1] * rss.RETA_SIZE, 4) == []
    loads = [1 if table[b] == 0 else 0 for b in range(rss.RETA_SIZE)]
    assert len(rss.rebalance(table, loads, 4, max_moves=3)) == 3
    with pytest.raises(ValueError):
        rss.rebalance([0], [1, 2], 1)


def test_the_plan_is_read_in_whole_lines(tmp_path):
    plan = tmp_path / "plan"
    plan.touch()
    reader = rss.PlanReader(plan)
    writer = rss.PlanWriter(plan)
    assert reader.new() == []
    writer.add(rss.Migration(10, 3, 0, 1))
    with open(plan, "a") as f:
        f.write("12 4 1")  # a line being written
    assert reader.new() == [rss.Migration(10, 3, 0, 1)]
    with open(plan, "a") as f:
        f.write(" 0\n")
    assert reader.new() == [rss.Migration(12, 4, 1, 0)]
    writer.close()
    reader.close()


# --- the shim and the cores together ---------------------------------------------------


def run_rsspp(tmp_path, name: str, n: int, frames: list[bytes], every: int = 100,
              core_class=RssppCore, timeout_s: float = 2.0):
    """Sequence ``frames`` in rsspp mode, rebalancing every ``every`` packets; deliver
    each output (and each MIGRATE frame) to its core in order, then STOP; return the
    sequencer and the cores."""
    plan = tmp_path / "plan"
    plan.touch()
    seq = Sequencer(nf_for(name), n, "rsspp", plan=plan, rebalance_ms=every * 1.5e-3)
    cores = [core_class(nf_for(name), c, n, plan, timeout_s=timeout_s) for c in range(n)]
    for i, frame in enumerate(frames):
        for migrate in seq.tick(ts_of(i)):
            cores[h.unpack_header(migrate).slot].handle(migrate)
        slot, out = seq.sequence(frame, ts_of(i))
        assert h.unpack_header(out).count == 0  # no history
        cores[slot].handle(out)
    for core, stop in zip(cores, seq.stop_frames(ts_of(len(frames))), strict=True):
        core.handle(stop)
        core.finish()
    seq.close()
    return seq, cores


def problems(name, frames, cores) -> list[str]:
    """What the oracle's rsspp view finds wrong: a key in two cores, or the union of the
    cores' states and their verdicts against sequential processing."""
    packets = {i: (parse(frame), ts_of(i)) for i, frame in enumerate(frames)}
    union: dict = {}
    for core in cores:
        state = core.state_json()
        if set(union) & set(state):
            return [f"keys in two cores: {sorted(set(union) & set(state))[:3]}"]
        union.update(state)
    log = sorted((s, c.core, v) for c in cores
                 for s, v in zip(c.log_seq, c.log_verdict, strict=True))
    view = StateView("cores", dict(sorted(union.items())), len(frames) - 1)
    result = check_views(nf_for(name), packets, log, [view], {c.core: 0 for c in cores})
    return [] if result.equivalent else [str(result.summary())]


@pytest.mark.parametrize("name", ["ddos", "hh", "knock", "tb", "conntrack"])
def test_moved_buckets_keep_every_key_sequential(tmp_path, name):
    frames = make_trace(SKEWED)
    seq, cores = run_rsspp(tmp_path, name, 4, frames)
    assert seq.migrations, "the skewed trace made the shim rebalance"
    assert sum(c.stats["migrations_out"] for c in cores) == len(seq.migrations)
    assert sum(c.stats["migrations_in"] for c in cores) == len(seq.migrations)
    assert sum(c.stats["handover_timeouts"] for c in cores) == 0
    assert problems(name, frames, cores) == []
    # Every packet went where the table said at its sequence number.
    table = rss.initial_table(4)
    moves = iter(sorted((m["seq"], m["bucket"], m["to"]) for m in seq.migrations))
    pending = next(moves, None)
    nf = nf_for(name)
    for i, frame in enumerate(frames):
        while pending is not None and pending[0] <= i:
            table[pending[1]] = pending[2]
            pending = next(moves, None)
        assert seq.cores[i] == table[rss.bucket_of(nf.key_bytes(parse(frame)))]
    assert not list(tmp_path.glob("plan.*"))  # every mailbox was taken in


def test_the_rebalanced_load_is_more_even_than_rss(tmp_path):
    frames = make_trace(SKEWED)
    seq, cores = run_rsspp(tmp_path, "ddos", 4, frames)
    busiest = max(c.stats["processed"] for c in cores)
    counts = [0] * 4  # what the initial table, never rebalanced, would have given
    nf = nf_for("ddos")
    table = rss.initial_table(4)
    for frame in frames:
        counts[table[rss.bucket_of(nf.key_bytes(parse(frame)))]] += 1
    assert busiest < max(counts)


class KeepsItsKeys(RssppCore):
    """Hands a bucket over empty: the old owner keeps the keys (a handover bug)."""

    def _hand_over(self, upto, deadline=None):
        due = [m for m in self.outgoing if m.seq <= upto]
        self.outgoing = [m for m in self.outgoing if m.seq > upto]
        for move in due:
            path = rss.mailbox_path(self.plan_path, move)
            path.write_text(json.dumps([]))


def test_a_handover_bug_fails_the_check(tmp_path):
    frames = make_trace(SKEWED)
    _seq, cores = run_rsspp(tmp_path, "ddos", 4, frames, core_class=KeepsItsKeys)
    assert problems("ddos", frames, cores)


class NeverHandsOver(RssppCore):
    def _hand_over(self, upto, deadline=None):
        self.outgoing = []


def test_a_mailbox_that_never_comes_times_out_and_is_caught(tmp_path):
    frames = make_trace(SKEWED)
    _seq, cores = run_rsspp(tmp_path, "ddos", 4, frames, core_class=NeverHandsOver,
                            timeout_s=0.01)
    assert sum(c.stats["handover_timeouts"] for c in cores) > 0
    assert problems("ddos", frames, cores)


def test_rsspp_is_registered_and_needs_its_plan(tmp_path):
    spec = get_strategy("rsspp")
    assert spec.spray == "rsspp" and spec.rebalance_plan and not spec.history
    with pytest.raises(ValueError, match="needs --plan"):
        spec.make_core(nf_for("ddos"), 0, 2, spec.core_args())
    with pytest.raises(ValueError, match="plan file"):
        Sequencer(nf_for("ddos"), 2, "rsspp")


def test_the_oracle_replays_the_table_and_catches_a_wrong_spray(tmp_path):
    frames = make_trace(SKEWED)
    seq, _cores = run_rsspp(tmp_path, "ddos", 4, frames)
    truth = ground_truth(seq)
    assert truth.mode == TABLE and truth.migrations
    assert protocol_errors(truth, nf_for("ddos")) == []
    moved = truth.migrations[0]
    wrong = moved["seq"]  # the first packet under the new table ...
    truth.cores[wrong] = (truth.cores[wrong] + 1) % 4  # ... sprayed elsewhere
    errors = protocol_errors(truth, nf_for("ddos"))
    assert errors and f"seq {wrong} was sprayed" in errors[0]
    truth.cores[wrong] = (truth.cores[wrong] - 1) % 4
    truth.migrations[0] = {**moved, "from": (moved["from"] + 1) % 4}  # a move from nowhere
    assert any("says from core" in e for e in protocol_errors(truth, nf_for("ddos")))
    with pytest.raises(ValueError, match="needs the NF"):
        protocol_errors(truth)


def test_a_bucket_moved_on_before_its_packets_came_is_handed_on_whole(tmp_path):
    """A to B, then B to C, with no packet of the bucket reaching B in between: B takes
    A's keys in before it hands the bucket to C."""
    plan = tmp_path / "plan"
    plan.touch()
    nf = nf_for("ddos")
    frames = make_trace(SKEWED)
    key = nf.key_bytes(parse(frames[0]))
    bucket = rss.bucket_of(key)
    cores = [RssppCore(nf_for("ddos"), c, 3, plan, timeout_s=0.5) for c in range(3)]
    a = rss.initial_table(3)[bucket]
    b, c = (a + 1) % 3, (a + 2) % 3
    cores[a].state[nf.unpack_key(key)] = (5,) * len(nf.value_format.format.strip("!<>="))
    writer = rss.PlanWriter(plan)
    writer.add(rss.Migration(10, bucket, a, b))
    writer.add(rss.Migration(20, bucket, b, c))
    writer.close()
    for core in cores:
        core._read_plan()
    cores[a]._hand_over(10)
    cores[b]._hand_over(20)  # B never saw a packet of the bucket
    cores[c]._take_over(bucket, 20)
    assert nf.unpack_key(key) in cores[c].state
    assert not cores[a].state and not cores[b].state
    assert sum(core.stats["handover_timeouts"] for core in cores) == 0
