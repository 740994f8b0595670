"""Random and mutated frames into a live testbed: counted and dropped, and the run goes on.

A few hundred frames, seeded (``random.Random(5)``), enter a real network at two places:

* at the generator side, mixed into the trace the real generator replays: random bytes,
  SCR-shaped bytes and trace frames with bytes flipped, cut or fields set to edge values.
  Only frames the shim must refuse go in (a frame that still parses as IPv4 would be
  sequenced like any packet, and is not bad input), and never the end-of-trace marker;
* at core 0's port (``Testbed.inject``), before the trace: random bytes, SCR frames for the
  wrong slot or the wrong number of cores, SCR frames with mutated headers, records or
  inner packets. Only frames that a fresh core of the same kind refuses go in (a frame a
  core accepts is a packet, not bad input).

Then the trace. What must hold: no process died early (each exited 0 and wrote its
results, no traceback in any log); the shim's and core 0's malformed counters equal, reason
by reason, what a local parser predicts for the frames injected (core 0 gets only the
frames of its socket's ethertype: SCR for ``scr``, everything for ``shard``); the trace is
processed in full and the run is equivalent to sequential processing, strictly.
Two trials (``scr`` and ``shard``, 2 cores), about 10 s each.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from experiments.analysis.collect import collect
from experiments.runtime.config import TrialConfig
from experiments.runtime.testbed import Testbed
from experiments.workload.traffic import write_pcap
from nfs import make_nf
from nfs.cores.replica import Replica
from nfs.cores.shard import ShardCore
from sequencer.shim import Sequencer
from sequencer.wire import header as h
from sequencer.wire.packet import parse
from tests.emulation.conftest import rate_for

SEED = 5
GEN_FRAMES = 200
CORE_FRAMES = 200
TRACE_PACKETS = 600
NF = "conntrack"
CORES = 2
MAX_SIZE = 300  # well under the links' MTU: every frame injected is sent

_SCR_FIELDS = [(12, 2), (14, 1), (15, 1), (16, 1), (17, 1), (18, 1), (19, 1), (20, 1),
               (21, 1), (22, 4)]
_IPV4_FIELDS = [(12, 2), (14, 1), (16, 2), (23, 1), (46, 1)]


def mutate(rng: random.Random, frame: bytes, fields: list[tuple[int, int]]) -> bytes:
    """``frame`` with one to three random mutations (negative offsets: from the end)."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(("field", "field", "flip", "truncate", "extend"))
        if op == "field":
            offset, size = rng.choice(fields)
            start = offset if offset >= 0 else len(data) + offset
            top = (1 << (8 * size)) - 1
            value = rng.choice((0, 1, 2, top, rng.randint(0, top)))
            if start >= 0 and start + size <= len(data):
                data[start:start + size] = value.to_bytes(size, "big")
        elif op == "flip" and data:
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
        elif op == "truncate":
            del data[rng.randint(14, max(14, len(data))):]
        elif op == "extend":
            data += rng.randbytes(rng.randint(1, 40))
    return bytes(data)


def scr_shaped(rng: random.Random) -> bytes:
    header = h.SCR_HEADER.pack(h.SCR_MAGIC, h.SCR_VERSION, rng.randint(0, 255) & ~h.FLAG_STOP,
                               rng.randint(0, 3), rng.randint(0, 40), rng.randint(0, 3),
                               rng.randint(0, 3), rng.randint(0, 3), rng.getrandbits(32),
                               rng.getrandbits(64))
    eth = h.ETH_HEADER.pack(h.mac_bytes(h.DUMMY_DST_MAC), h.mac_bytes(h.slot_mac(0)),
                            h.ETH_P_SCR)
    return eth + header + rng.randbytes(rng.randint(0, 80))


def generator_side(rng: random.Random, trace: list[bytes], count: int) -> list[bytes]:
    """Frames the shim must refuse, none of them an end-of-trace marker."""
    probe = Sequencer(make_nf(NF), CORES)
    frames = []
    while len(frames) < count:
        kind = rng.choice(("random", "scr", "mutated", "mutated"))
        if kind == "random":
            frame = rng.randbytes(rng.randint(14, 120))
        elif kind == "scr":
            frame = scr_shaped(rng)
        else:
            frame = mutate(rng, rng.choice(trace), _IPV4_FIELDS)
        if not 14 <= len(frame) <= MAX_SIZE or probe.is_stop_marker(frame):
            continue
        try:
            parse(frame)
        except h.MalformedFrame:
            frames.append(frame)
    return frames


def core_side(rng: random.Random, strategy: str, trace: list[bytes],
              count: int) -> tuple[list[bytes], Counter]:
    """Frames for core 0 that a fresh core refuses, and its malformed counters for them
    (only the frames its socket receives: SCR ones, or all of them for shard). A refused
    frame changes nothing, so the live core stays fresh and refuses each one the same way."""
    nf = make_nf(NF)
    seq = Sequencer(nf, CORES, strategy)
    valid = [out for _slot, out in (seq.sequence(frame, 1000 * i)
                                    for i, frame in enumerate(trace[:40]))]
    fields = _SCR_FIELDS + [(h.PAYLOAD_OFFSET + o, s) for o, s in _IPV4_FIELDS]
    if strategy == "shard":
        fields = [*_IPV4_FIELDS, (-14, 4), (-2, 2), *_SCR_FIELDS]
        valid += seq.stop_frames(0)  # SCR frames: a shard core takes only its own STOP
    frames, expected = [], Counter()
    while len(frames) < count:
        kind = rng.choice(("random", "scr", "mutated", "mutated", "mutated", "valid"))
        if kind == "random":
            frame = rng.randbytes(rng.randint(14, 120))
        elif kind == "scr":
            frame = scr_shaped(rng)
        elif kind == "mutated":
            frame = mutate(rng, rng.choice(valid), fields)
        else:  # a valid frame, often another slot's: refused unless it is core 0's
            frame = rng.choice(valid)
        if not 14 <= len(frame) <= MAX_SIZE:
            continue
        if strategy != "shard" and frame[12:14] != _SCR_TYPE:
            frames.append(frame)  # the kernel keeps it from the core: counted nowhere
            continue
        probe = ShardCore(nf, 0, CORES) if strategy == "shard" else Replica(nf, 0, CORES)
        probe.handle(frame)
        if sum(probe.malformed.values()) == 1:  # else a packet or a STOP: not bad input
            frames.append(frame)
            expected += probe.malformed
    return frames, expected


_SCR_TYPE = h.ETH_P_SCR.to_bytes(2, "big")


@pytest.mark.parametrize("strategy", ["scr", "shard"])
def test_random_and_mutated_frames_are_counted_and_the_run_goes_on(tmp_path, trace_frames,
                                                                   strategy, capacity):
    rng = random.Random(SEED)
    trace = trace_frames[:TRACE_PACKETS]
    at_generator = generator_side(rng, trace, GEN_FRAMES)
    at_core, core_expected = core_side(rng, strategy, trace, CORE_FRAMES)
    mixed = list(trace)
    for frame in at_generator:
        mixed.insert(rng.randint(1, len(mixed) - 1), frame)  # never first: that is a packet
    mixed_path = tmp_path / "mixed.pcap"
    write_pcap(mixed_path, mixed)

    # Whole CPUs and big queues at a fraction of what quota-limited cores carry: no drop
    # may blur the counts.
    config = TrialConfig(nf=NF, cores=CORES, rate_pps=rate_for(capacity, CORES),
                         strategy=strategy, core_share=None, rx_queue_bytes=4 << 20)
    out = tmp_path / "run"
    with Testbed(config, out) as bed:
        bed.inject(bed.plan.core_port(0), at_core)
        bed.send_trace(mixed_path)
    # Every process ended normally: exit status 0 (a worker that crashed exits 1).
    assert {p.name: p.popen.returncode for p in bed.processes} == {
        p.name: 0 for p in bed.processes}
    logs = {path.name: path.read_text() for path in Path(out).glob("*.log")}
    assert not [name for name, text in logs.items() if "Traceback" in text]
    result = collect(config, mixed_path, out, bed.window)  # reads every result file

    shim = (out / "shim.json").read_text()
    gen_expected = Counter(_reason(frame) for frame in at_generator)
    assert result["malformed_shim"] == len(at_generator) == sum(gen_expected.values())
    for reason, n in gen_expected.items():
        assert f'"{reason}": {n}' in shim, (reason, n, shim)
    cores = [json.loads((out / f"core{i}.json").read_text()) for i in range(CORES)]
    assert all(core["rx_dropped"] == 0 for core in cores)  # else the counts below may differ
    assert cores[0]["malformed"] == dict(core_expected)
    assert cores[1]["malformed"] == {}
    assert result["sequenced"] == result["processed"] == len(trace)
    assert result["stopped_by_marker"]
    assert result["check_equivalent"], result["check_problems"]


def _reason(frame: bytes) -> str:
    try:
        parse(frame)
    except h.MalformedFrame as err:
        return err.reason
    raise AssertionError("a frame injected at the generator parses")
