"""The accuracy table of `irkit drill --all`: each column scores what the truth says, and only that."""

from __future__ import annotations

from pathlib import Path

from irkit import drill
from irkit.evidence.summary import Summary
from tests.drill.test_truth import _severity


def _result(name: str, summary: dict, differences: list[str], pids: dict[str, int] | None = None) -> drill.DrillResult:
    typed = Summary.from_dict({**summary, "severity": _severity(summary["severity"]["name"])})
    return drill.DrillResult(drill.load_scenario(name), Path("/nonexistent"), typed, differences,
                             {"total_seconds": 20.0}, pids or {})


def test_a_right_answer_scores_every_column_the_truth_names():
    summary = {"severity": {"name": "SEV-2"}, "findings": [{"kind": "lock-root", "subject": "pid 7"},
                                                           {"kind": "error-spike", "subject": "backend"}],
               "mitigations": [{"action": "terminate-backend", "target": "pid 7"}], "ongoing": True,
               "recovery": {"recovered": False}}
    row = drill.accuracy_row(drill.load_scenario("lock-contention"),
                             _result("lock-contention", summary, [], {"holder": 7}), 1)
    assert (row["severity"], row["ac1"], row["ac3"], row["plan"], row["ok"]) == (True, True, True, True, True)
    assert row["false_positive"] is None and row["ongoing"] is None  # not a negative control; ongoing not stated
    assert row["plan_precision"] == drill.Precision(1, 1) and row["finding_precision"] == drill.Precision(1, 1)


def test_a_negative_control_with_a_cause_or_a_step_is_a_false_positive():
    quiet = {"severity": {"name": "SEV-4"}, "findings": [], "mitigations": [], "ongoing": False,
             "recovery": {"recovered": True}}
    scenario = drill.load_scenario("healthy-fresh-deploy")
    assert drill.accuracy_row(scenario, _result("healthy-fresh-deploy", quiet, []), 1)["false_positive"] is False
    noisy = {**quiet, "findings": [{"kind": "bad-revision", "subject": "backend-deployment"}],
             "mitigations": [{"action": "rollout-undo", "target": "deployment/backend-deployment"}]}
    row = drill.accuracy_row(scenario, _result("healthy-fresh-deploy", noisy, ["mitigation: expected none"]), 1)
    assert row["false_positive"] is True and row["plan"] is False and row["ok"] is False


def test_the_table_totals_each_column_over_the_rows_it_applies_to():
    rows = [{"scenario": "a", "repeat": 1, "severity": True, "ac1": True, "ac3": True, "plan": True,
             "plan_precision": drill.Precision(2, 3), "finding_precision": drill.Precision(1, 1), "ongoing": None,
             "recovery": None, "false_positive": None, "ok": True, "seconds": 20.0},
            {"scenario": "b", "repeat": 1, "severity": False, "ac1": None, "ac3": None, "plan": True,
             "plan_precision": drill.Precision(1, 1), "finding_precision": None, "ongoing": True,
             "recovery": True, "false_positive": False, "ok": False, "seconds": 22.0}]
    csv_text, markdown = drill.accuracy_table(rows)
    assert csv_text.splitlines()[0] == ",".join(drill.ACCURACY_COLUMNS)
    assert "| a | 1 | yes | yes | yes | yes | 2/3 | 1/1 |" in markdown
    total = markdown.strip().splitlines()[-1]
    assert "50 % (1/2)" in total and "100 % (1/1)" in total and "0 of 1" in total and "| 42 |" in total
    assert "75 % (3/4)" in total  # the plan's precision: steps accepted of all steps planned, over every run
