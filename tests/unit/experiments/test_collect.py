"""Reading a trial's result files (``experiments.analysis.collect``): a missing or
unreadable file is a ``TrialError`` naming it, integer CSVs skip their header, the record
logs' ranges expand to sequence numbers, and the percentiles of a few samples."""

from __future__ import annotations

import json

import pytest

from experiments.analysis.collect import (
    RECORD_LOGS_JSON,
    percentiles,
    read_held_records,
    read_int_csv,
    read_result,
    span_s,
)
from experiments.analysis.errors import TrialError


def test_a_missing_or_broken_result_names_the_file(tmp_path):
    with pytest.raises(TrialError, match="missing or unreadable result core0.json"):
        read_result(tmp_path / "core0.json")
    (tmp_path / "shim.json").write_text("{not json")
    with pytest.raises(TrialError, match="shim.json"):
        read_result(tmp_path / "shim.json")
    (tmp_path / "sink.json").write_text(json.dumps({"received": 3}))
    assert read_result(tmp_path / "sink.json") == {"received": 3}


def test_integer_csvs(tmp_path):
    path = tmp_path / "core0_log.csv"
    path.write_text("seq,trace_id,verdict,chain\n0,5,1,0\n1,6,0,7\n")
    assert read_int_csv(path) == [[0, 5, 1, 0], [1, 6, 0, 7]]
    path.write_text("seq\nx\n")
    with pytest.raises(TrialError, match="core0_log.csv"):
        read_int_csv(path)
    path.write_text("")
    with pytest.raises(TrialError):
        read_int_csv(path)


def test_held_records_expand_the_rings_ranges(tmp_path):
    assert read_held_records(tmp_path) is None  # no recovery: no record logs
    (tmp_path / RECORD_LOGS_JSON).write_text(json.dumps({"core0": [[0, 2], [5, 5]],
                                                         "core1": [[2, 3]]}))
    assert read_held_records(tmp_path) == {0, 1, 2, 3, 5}


def test_percentiles_and_span():
    assert percentiles([]) == (None, None)
    assert percentiles([7.0]) == (7.0, 7.0)
    assert percentiles([float(x) for x in range(1, 102)]) == (51.0, 100.0)
    cores = [{"stats": {"processed": 3}, "first_ns": 1_000_000_000, "last_ns": 3_000_000_000},
             {"stats": {"processed": 1}, "first_ns": 2_000_000_000, "last_ns": 4_000_000_000},
             {"stats": {}, "first_ns": 0, "last_ns": 9_000_000_000}]  # idle: not counted
    assert span_s(cores) == 3.0
    assert span_s([]) == 0.0
