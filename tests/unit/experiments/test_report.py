"""The report document (``experiments.plots.report``), written from a synthetic report
folder: its sections, the comparison beyond the spread (both verdicts), the stalls before
and after, and the same content in Markdown and HTML. The sweeps themselves run in
``tests/emulation`` (the report's --quick run is a benchmark, not a test)."""

from __future__ import annotations

import csv
import json

import pytest

from experiments.plots.report import README_BEGIN, README_END, update_readme, write_report


def write_rows(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = sorted({k for r in rows for k in r})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def search(strategy, cores, skew, pps, **extra):
    return {"nf": "ddos", "strategy": strategy, "cores": cores, "skew": skew,
            "mode": "mlffr", "throughput_pps": pps, "faithful": "True",
            "check_equivalent": "True", "check_consistent": "True", "confirmed": "True",
            "transfer_work_us": "", "lock_quota_aware": "", "error": "", **extra}


def make_report(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"arguments": {"quick": False}, "git": "abc", "command": "report.py",
         "started": "now", "seconds": 5}))
    scaling = tmp_path / "scaling" / "20260101-000000"
    rows = []
    for cores in (1, 2):
        rows += [search("scr", cores, 0.0, 1000 * cores + d) for d in (-50, 0, 50)]
        # lock: far below SCR at 2 cores, overlapping at 1
        rows += [search("lock", cores, 0.0, (1000 if cores == 1 else 1200) + d,
                        transfer_work_us="55") for d in (-60, 0, 60)]
        rows += [search("shard", cores, 0.0, 700 * cores + d) for d in (-30, 0, 30)]
        rows += [search("rsspp", cores, 0.0, 900 * cores + d, migrations="7")
                 for d in (-30, 0, 30)]
    write_rows(scaling / "results.csv", rows)
    (scaling / "config.json").write_text(json.dumps({"arguments": {
        "nf": ["ddos"], "strategies": ["scr", "lock", "shard", "rsspp"], "cores": [1, 2],
        "skews": [0.0],
        "repeats": 3, "duration": 2.0, "warmup": 0.5}}))
    write_rows(scaling / "latency.csv", [
        {"nf": "ddos", "strategy": "scr", "cores": 2, "skew": 0.0, "transfer_work_us": "",
         "lock_quota_aware": "", "load": 0.5, "mlffr_pps": 2000, "offered_pps": 1000,
         "e2e_us_p50": 550.0, "e2e_us_p99": 3700.0, "faithful": "True",
         "check_equivalent": "True"}])
    stalls = tmp_path / "stalls" / "20260101-000100"
    write_rows(stalls / "results.csv", [
        *(search("lock", 8, 2.0, p, lock_quota_aware="False", lock_stall_share=0.2,
                 transfer_work_us="55") for p in (3000, 3100, 3200)),
        *(search("lock", 8, 2.0, p, lock_quota_aware="True", lock_stall_share=0.01,
                 transfer_work_us="55") for p in (2000, 2100, 2200)),
    ])
    write_rows(tmp_path / "loss" / "20260101-000200" / "results.csv", [
        search("scr", 4, 1.0, 2000, loss_rate="0", loss="0.01", recovered="0"),
        search("scr", 4, 1.0, 1900, loss_rate="0.01", loss="0.02", recovered="300",
               fetch_us_p50="70", fetch_us_p99="9000", check_equivalent="False")])
    return write_report(tmp_path)


def test_the_report_has_its_sections_and_tables(tmp_path):
    md, page = make_report(tmp_path)
    text = md.read_text()
    for heading in ("## Throughput against cores", "### SCR against the baselines",
                    "## Latency at a stated load", "## Lock-holder preemption stalls",
                    "## The MLFFR search: bias and resolution"):
        assert heading in text
    assert "950–1050" in text  # scr at 1 core: its range
    assert "No SCR model fit" in text  # no model_fit.csv in this folder
    assert "50 % of 2000" in text and "0.55" in text  # latency in ms
    html = page.read_text()
    assert html.count("<table>") == text.count("\n|---")  # every table, in both
    assert "<h2>Lock-holder preemption stalls</h2>" in html


def cells(text: str, first: str) -> list[list[str]]:
    """The rows of the table whose header starts with ``first``, as lists of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first}"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_comparison_says_beyond_or_within_the_spread(tmp_path):
    text = make_report(tmp_path)[0].read_text()
    rows = {(row[1], row[2]): row for row in cells(text, "skew   | cores   | baseline")}
    assert rows[("1", "lock")][-1] == "within the spread"  # 950-1050 against 940-1060
    assert rows[("2", "lock")][-1] == "SCR higher"  # 1950-2050 against 1140-1260
    assert rows[("2", "lock")][5] == "1.67"


def test_the_stalls_section_compares_before_and_after(tmp_path):
    text = make_report(tmp_path)[0].read_text()
    assert "20.0 %" in text and "1.0 %" in text  # the stall shares, median
    assert "changes lock's MLFFR by -32 % (beyond the spread" in text


def test_the_loss_section_compares_with_no_loss(tmp_path):
    text = make_report(tmp_path)[0].read_text()
    rows = {row[1]: row for row in cells(text, "nf   | loss %")}
    assert rows["0"][3] == "100 %" and rows["1"][3] == "95 %"
    assert rows["1"][5] == "modulo gaps" and rows["1"][7] == "70/9000"


def test_rsspp_is_compared_with_shard_and_shows_its_moves(tmp_path):
    text = make_report(tmp_path)[0].read_text()
    assert "### RSS++ against RSS" in text
    rows = cells(text, "skew   | cores   | baseline   | rsspp pps")
    assert [row[-1] for row in rows] == ["rsspp higher", "rsspp higher"]
    points = {(row[1], row[2]): row for row in cells(text, "nf   | strategy")}
    assert points[("rsspp", "2")][-1] == "7" and points[("shard", "2")][-1] == ""


def test_the_readme_block_is_rewritten_from_the_report(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "scaling" / "20260101-000000").mkdir(parents=True)
    (report / "scaling" / "20260101-000000" / "cores_skew0.png").write_bytes(b"png")
    make_report(report)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_BEGIN}\nold numbers\n{README_END}\n\n## After\n")
    copied = update_readme(report, readme, tmp_path / "docs" / "report")
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# Title") and "## After" in text
    assert "### SCR testbed report" in text and "#### SCR against the baselines" in text
    assert copied == [tmp_path / "docs" / "report" / "scaling-cores_skew0.png"]
    assert "](docs/report/scaling-cores_skew0.png)" in text
    update_readme(report, readme, tmp_path / "docs" / "report")  # idempotent
    assert readme.read_text() == text
    readme.write_text("# no block\n")
    with pytest.raises(ValueError, match="no"):
        update_readme(report, readme, tmp_path / "docs")
