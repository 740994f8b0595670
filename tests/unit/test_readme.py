"""The README's numbers and lists match the code they describe.

README drift is how a reader comes to distrust every number in it: the sweeps' point and
strategy counts (parsed from the "Running experiments" block and checked against what the
scripts would run), the strategies table (every registered strategy, and nothing else),
and the labs the teacher is promised. Each check names the README line it read.
"""

from __future__ import annotations

import re

import pytest

from experiments import core_sweep, skew_sweep
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
