"""The parallel sequencer (``sequencer.pipeline``) sends the shim's frames, byte for byte.

``FrameBuilder.build`` and ``.stops`` are the builders' work; cut a trace into batches any
way, give each its tail, and the frames must equal what :class:`sequencer.shim.Sequencer`
sends, and a bug a builder could have (a short tail, an off-by-one sequence number) must
show. ``well_formed``, the stamper's check at fixed offsets, may say "not sure" but never
vouch for a frame ``parse`` refuses (fuzzed). The live pipeline, its processes and its
order, is in ``tests/emulation/test_bench_datapath.py``.
"""

from __future__ import annotations

import random

import pytest

from experiments.workload.traffic import TraceSpec, make_trace
from nfs import NF_CLASSES, make_nf
from sequencer.pipeline import FrameBuilder, well_formed
from sequencer.shim import Sequencer
from sequencer.wire.header import MalformedFrame
from sequencer.wire.packet import parse


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return [bytes(f) for f in make_trace(TraceSpec(packets=300, flows=20, skew=1.0,
                                                   attackers=1, knockers=2, seed=3))]


def _shim(nf_name: str, n: int, frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    seq = Sequencer(make_nf(nf_name), n)
    out = [seq.sequence(f, 1000 + i)[1] for i, f in enumerate(frames)]
    return out, seq.stop_frames(99_999)


def _cuts(length: int, rng: random.Random) -> list[tuple[int, int]]:
    bounds, at = [], 0
    while at < length:
        size = rng.choice([1, 1, 2, 3, 7, 64])
        bounds.append((at, min(length, at + size)))
        at += size
    return bounds


@pytest.mark.parametrize("nf_name", sorted(NF_CLASSES))
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_any_batching_sends_the_shims_frames(frames, nf_name, n):
    expected, expected_stops = _shim(nf_name, n, frames)
    builder = FrameBuilder(make_nf(nf_name), n)
    stamped = [(f, 1000 + i) for i, f in enumerate(frames)]
    out = []
    for first, end in _cuts(len(frames), random.Random(n)):
        tail = stamped[max(0, first - (n - 1)):first]
        out += builder.build(first, tail, stamped[first:end])
    assert out == expected
    assert builder.stops(len(frames), stamped[-(n - 1):] if n > 1 else [],
                         99_999) == expected_stops


@pytest.mark.parametrize("bug", ["short tail", "seq off by one", "wrong ts"])
def test_a_builders_bug_changes_the_frames(frames, bug):
    n, nf = 4, make_nf("tb")  # its records carry the sequencer's timestamp
    expected, _ = _shim("tb", n, frames)
    stamped = [(f, 1000 + i) for i, f in enumerate(frames)]
    first = 100
    tail = stamped[first - (n - 1):first]
    batch = stamped[first:first + 10]
    if bug == "short tail":
        tail = tail[1:]
    if bug == "wrong ts":
        tail = [(f, ts + 1) for f, ts in tail]
    base = first + 1 if bug == "seq off by one" else first
    assert FrameBuilder(nf, n).build(base, tail, batch) != expected[first:first + 10]


def _parses(frame: bytes) -> bool:
    try:
        parse(frame)
    except MalformedFrame:
        return False
    return True


def test_the_fixed_offset_check_vouches_only_for_what_parse_accepts(frames):
    rng = random.Random(11)
    vouched = 0
    for _ in range(20_000):
        frame = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            what = rng.random()
            if not frame:
                break
            if what < 0.5:  # flip a byte of the headers
                frame[rng.randrange(min(len(frame), 60))] = rng.randrange(256)
            elif what < 0.8:  # cut it short
                del frame[rng.randrange(len(frame)):]
            else:  # pad it
                frame += bytes(rng.randrange(8))
        frame = bytes(frame)
        if well_formed(frame):
            vouched += 1
            assert _parses(frame), frame.hex()
    assert vouched > 1000  # it does vouch for most intact frames
    assert all(well_formed(f) for f in frames if f[23] in (6, 17) and f[14] == 0x45)
