"""A sweep point's row, table and summary (``experiments.analysis.tables``), from trial rows
made by hand: the reported trial's figures, the point's checks over its trials, an error
when no rate passed, and the table's columns with and without injected loss."""

from __future__ import annotations

from experiments.analysis.tables import (
    equivalence_mark,
    point_row,
    summary_line,
    sweep_summary,
    table,
)


def trial(rate: float, loss: float, equivalent: bool = True, consistent: bool = True,
          **extra) -> dict:
    return {"target_pps": rate, "offered_pps": rate, "delivered_pps": rate * (1 - loss),
            "loss": loss, "faithful": True, "bottleneck": "", "check_equivalent": equivalent,
            "check_consistent": consistent, "trial": f"trials/p/rate{rate:.0f}",
            "fidelity": {"busy": {"shim": 0.2}, "machine_idle": 0.4}, **extra}


def test_a_point_reports_its_best_trial_and_judges_every_trial():
    over = trial(3000, 0.3, equivalent=False, check_problems=["lost"])
    best = trial(2000, 0.01)
    row = point_row([(3000, over), (2000, best)], best, 1980.0, False, threshold=0.04,
                    fixed=False)
    assert "error" not in row
    assert row["throughput_pps"] == 1980.0
    assert row["trial"] == "trials/p/rate2000"
    assert row["rates_tried"] == [3000, 2000]
    # The overloaded trial need not be strictly equivalent, only consistent.
    assert row["check_equivalent"] is True and row["check_consistent"] is True
    assert row["check_problem"] == ""
    assert row["machine_idle"] == 0.4
    assert row["check_access_order"] == ""


def test_an_inconsistent_trial_fails_the_point_and_names_its_problem():
    bad = trial(3000, 0.3, consistent=False, check_problems=["state differs"])
    best = trial(2000, 0.0)
    row = point_row([(3000, bad), (2000, best)], best, 2000.0, False, threshold=0.04,
                    fixed=False)
    assert row["check_consistent"] is False
    assert row["check_problem"] == "state differs"


def test_no_passing_rate_is_an_error_with_the_last_trials_message():
    failed = {"error": "the generator failed", "loss": 1.0, "delivered_pps": 0.0,
              "trial": "t"}
    row = point_row([(3000, failed)], None, 0.0, False, threshold=0.04, fixed=False)
    assert row["error"] == "the generator failed"
    assert row["trial"] == "" and row["offered_pps"] == ""
    assert point_row([], None, 0.0, False, threshold=0.04, fixed=False)["error"] == \
        "no rate passed"


def base_row(**extra) -> dict:
    return {"nf": "ddos", "strategy": "scr", "cores": 2, "skew": 1.0, "top_flow_share": 0.2,
            "mode": "mlffr", "throughput_pps": 2000.0, "loss": 0.01, "faithful": True,
            "bottleneck": "", "check_equivalent": True, "check_consistent": True,
            "search_steps": 3, "loss_rate": 0.0, **extra}


def header(text: str) -> list[str]:
    return [cell.strip() for cell in text.splitlines()[0].strip("|").split("|")]


def test_the_table_has_loss_columns_only_with_injected_loss():
    assert header(table([base_row()])) == ["nf", "strategy", "cores", "skew", "top flow",
                                           "pps", "loss %", "faithful", "equivalent",
                                           "trials"]
    lossy = table([base_row(), base_row(loss_rate=0.01, throughput_pps=1000.0)])
    assert header(lossy)[5:9] == ["loss %", "pps", "vs no loss", "core loss %"]
    assert "50 %" in lossy.splitlines()[-1]


def test_marks_lines_and_summary():
    assert equivalence_mark(base_row()) == "yes"
    assert equivalence_mark(base_row(check_equivalent=False)) == "modulo gaps"
    assert equivalence_mark(base_row(check_equivalent=False, check_consistent=False)) == "NO"
    assert "equivalent: yes" in summary_line(base_row())
    assert summary_line(base_row(error="boom")).endswith("error: boom")
    summary = sweep_summary([base_row(), base_row(check_consistent=False, faithful=False)],
                            12.5)
    assert summary == {"points": 2, "errors": 0, "all_equivalent": True,
                       "inconsistent": ["ddos-scr-c2-s1"], "unfaithful": 1, "seconds": 12.5}
