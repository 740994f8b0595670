"""The README's numbers and lists match the code they describe.

README drift is how a reader comes to distrust every number in it: the sweeps' point and
strategy counts (parsed from the "Running experiments" block and checked against what the
scripts would run), the strategies table (every registered strategy, and nothing else),
the labs the teacher is promised, and the results block: written by a full run of
``experiments/report.py`` as it is now, every figure it shows committed. Each check names
the README line it read.
"""

from __future__ import annotations

import re

import pytest

from experiments import core_sweep, report, skew_sweep
from experiments.campaigns import sweep
from experiments.campaigns.sweep import points
from experiments.runtime.results import REPO_ROOT
from nfs.strategies import names

README = (REPO_ROOT / "README.md").read_text()
SCRIPTS = {"skew_sweep": skew_sweep, "core_sweep": core_sweep}
CLAIM = re.compile(r"^python experiments/(?P<script>skew_sweep|core_sweep)\.py(?P<quick> --quick)?"
                   r"\s+# (?:(?P<points>\d+) points: |Fig\. 6: \w+, )(?P<strategies>\d+) "
                   r"strategies x (?P<axis>\d+) (?P<what>skews|core counts)", re.M)


def claims() -> list[re.Match]:
    found = list(CLAIM.finditer(README))
    assert len(found) >= 3, "the README's sweep commands (and their counts) went missing"
    return found


@pytest.mark.parametrize("claim", claims(), ids=lambda m: m.group(0)[:40])
def test_the_sweep_counts_match_the_scripts(claim):
    script = SCRIPTS[claim["script"]]
    args = script.parse_args(["--quick"] if claim["quick"] else [])
    line = claim.group(0)
    assert len(args.strategies) == int(claim["strategies"]), line
    axis = args.skews if claim["what"] == "skews" else args.cores
    assert len(axis) == int(claim["axis"]), line
    if claim["points"]:
        assert len(points(args)) == int(claim["points"]), line


def test_the_strategies_table_lists_every_registered_strategy():
    section = README.split("### Strategies (`--strategies`)")[1].split("\n### ")[0]
    listed = set(re.findall(r"^\| `([\w-]+)`(?:, `([\w-]+)`)?", section, re.M))
    listed = {name for pair in listed for name in pair if name}
    assert listed == set(names())


def test_the_labs_the_readme_promises_exist():
    match = re.search(r"holds (\w+) labs on stateful parallelism", README)
    assert match, "the README's labs paragraph went missing"
    words = {"six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
    labs = [p for p in (REPO_ROOT / "labs").glob("[0-9][0-9]-*") if p.is_dir()]
    assert words[match[1]] == len(labs)


def report_args(flags: list[str]):
    parser = sweep.build_parser("report", "", report.DEFAULTS, {})
    return sweep.finish_args(parser, parser.parse_args(flags), {})


def report_block() -> str:
    begin = README.index("<!-- report:begin")
    return README[begin:README.index("<!-- report:end -->", begin)]


def test_every_figure_the_readme_shows_is_in_the_repository():
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert figures, "the README's report block lost its figures"
    missing = [f for f in figures if not (REPO_ROOT / f).is_file()]
    assert missing == [], f"figures the README shows but the repository lacks: {missing}"


def test_the_readme_report_ran_what_report_py_runs():
    """The report block was written by a full run of experiments/report.py as it is now:
    its scaling sweep's strategies and core counts are the script's."""
    flags = report.SWEEPS[report.SCALING]["full"]
    args = report_args(flags)
    match = re.search(r"strategies ([\w, -]+); cores \[([\d, ]+)\]", report_block())
    assert match, "the report block does not say what its scaling sweep ran"
    assert match[1].split(", ") == args.strategies
    assert [int(c) for c in match[2].split(", ")] == args.cores
    assert "(quick)" not in report_block().split("\n", 3)[1], "the README quotes a --quick run"
