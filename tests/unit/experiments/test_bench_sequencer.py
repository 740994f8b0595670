"""The sequencer benchmark's model (``experiments.campaigns.bench_sequencer``) and its
in-process measurements, on a few packets. The live half is the datapath benchmark's
(``tests/emulation/test_bench_datapath.py``)."""

from __future__ import annotations

import pytest

from experiments.campaigns import bench_sequencer as bench


def test_demand_is_the_papers_model():
    assert bench.demand(1, 100.0, 5.0) == pytest.approx(1e4)
    assert bench.demand(16, 100.0, 5.0) == pytest.approx(16e6 / 175)
    assert bench.demand(10_000, 100.0, 5.0) < 1e6 / 5.0  # flattens below 1/c


def test_interpolation_between_and_beyond_the_measured_counts():
    points = {1: 2.0, 16: 5.0, 32: 7.0}
    assert bench.interpolate(points, 1) == 2.0
    assert bench.interpolate(points, 8) == pytest.approx(2.0 + 3.0 * 7 / 15)
    assert bench.interpolate(points, 64) == pytest.approx(11.0)  # the last slope, on
    assert 2 * max(bench.HISTORY_CORES) == bench.MAX_CROSSOVER  # no farther than that
    assert bench.interpolate(points, 0) == 2.0


def test_the_crossover_is_the_first_count_whose_demand_exceeds_the_ceiling():
    t, c = 100.0, 1.0
    ceiling = 50_000.0  # flat
    found = bench.crossover(lambda n: ceiling, t, c)
    assert bench.demand(found, t, c) > ceiling >= bench.demand(found - 1, t, c)
    # SCR's own curve stays under 1/c: a ceiling above it is never reached.
    assert bench.crossover(lambda n: 2e6, t, c) is None


COSTS = [{"nf": "ddos", "cores": n, "shim_us": 4.0 + 0.1 * n, "builder_us": 5.0 + 0.2 * n,
          "stamper_us": 1.0} for n in (1, 16, 32)]


def test_socket_costs_come_from_the_live_rows_minus_the_work():
    live = [{"path": "shim-direct-16", "us_per_packet": {"middle": 11.6}},
            {"path": "pipeline-16-2", "us_per_packet": {"middle": 3.5, "builders": 9.0}},
            {"path": "relay-direct", "us_per_packet": {"middle": 6.0}}]
    sockets = bench.sockets_from_live(COSTS, live, "ddos")
    assert sockets == bench.Sockets(shim_io_us=6.0, stamper_io_us=2.5, send_us=3.0)
    with pytest.raises(bench.LiveRowsMissing, match="lack"):
        bench.sockets_from_live(COSTS, live[:1], "ddos")


def test_more_builder_cpus_raise_the_pipelines_ceiling_up_to_its_serial_stages():
    sockets = bench.Sockets(shim_io_us=6.0, stamper_io_us=2.5, send_us=3.0)
    one, two, many = (bench.pipeline_ceiling(COSTS, "ddos", 16, k, sockets)
                      for k in (1, 2, 64))
    assert one < two < many
    assert many == pytest.approx(min(1e6 / 3.5, 1e6 / 3.0))
    assert bench.shim_ceiling(COSTS, "ddos", 16, sockets) == pytest.approx(1e6 / 11.6)
    curve, cross = bench.ceilings(COSTS, [{"nf": "ddos", "t_us": 100.0, "c_us": 2.0}],
                                  sockets,
                                  cores=range(1, 9), cpus=[2])
    assert {r["sequencer"] for r in cross} == {"shim", "pipeline-2"}
    assert all(r["reading"].startswith(("from ", "never", "beyond")) for r in cross)
    assert len(curve) == 16


def test_the_in_process_costs_are_measured():
    frames = bench.trace(300)
    rows = bench.sequencer_costs(frames, cores=[1, 4], nfs=["ddos", "conntrack"])
    assert [(r["nf"], r["cores"]) for r in rows] == [("ddos", 1), ("ddos", 4),
                                                     ("conntrack", 1), ("conntrack", 4)]
    assert all(r["shim_us"] > 0 and r["builder_us"] > 0 and r["stamper_us"] > 0 for r in rows)
    assert rows[2]["record_size"] == 32
