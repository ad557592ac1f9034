"""``irkit drill --all``: every built-in scenario run and scored, the accuracy table (AC@1, AC@3, the plan, the
verdicts, false positives on the negative controls)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from irkit.drill.run import DrillResult, run_drill
from irkit.drill.scenario import UNKNOWN, Scenario, load_scenario, scenarios
from irkit.drill.truth import Precision, finding_precision, plan_precision, verdict_holds

__all__ = ["ACCURACY_COLUMNS", "accuracy_row", "accuracy_table", "run_all"]


ACCURACY_COLUMNS = ("scenario", "repeat", "severity", "ac1", "ac3", "plan", "plan_precision", "finding_precision",
                    "ongoing", "recovery", "false_positive", "ok", "seconds")
_HEADINGS = {"ac1": "AC@1", "ac3": "AC@3", "plan": "plan (first step)", "plan_precision": "plan precision",
             "finding_precision": "finding precision", "false_positive": "false positive", "ok": "all right"}


def accuracy_row(scenario: Scenario, result: DrillResult, repeat: int) -> dict[str, Any]:
    """One drill's scores: each column True/False, a :class:`Precision`, or None where the truth does not say."""
    truth, summary = (result.truth or scenario.truth).resolved(result.pids), result.summary
    findings = [(f.kind.value, f.subject) for f in summary.findings]
    steps = [(m.action, m.target) for m in summary.mitigations]
    root = (truth.root["kind"], truth.root["subject"]) if truth.root else None
    wanted = [(t["kind"], t["subject"]) for t in truth.first_three] + ([root] if root else [])
    causes = [f for f in summary.findings if f.is_cause]
    recovered = summary.recovery.recovered if summary.recovery else None
    planned, named = plan_precision(summary, truth), finding_precision(summary, truth)
    return {
        "scenario": scenario.name, "repeat": repeat,
        "severity": (summary.severity.name if summary.severity else UNKNOWN) == truth.severity,
        "ac1": findings[:1] == [root] if root else None,
        "ac3": all(w in findings[:3] for w in wanted) if wanted else None,
        "plan": (steps[:1] == [(truth.mitigation["action"], truth.mitigation["target"])]) if truth.mitigation
        else not steps,
        "plan_precision": planned if planned.total else None,
        "finding_precision": named if named.total else None,
        "ongoing": verdict_holds(summary.ongoing, truth.ongoing) if truth.ongoing is not None else None,
        "recovery": verdict_holds(recovered, truth.recovered) if truth.recovered is not None else None,
        # A negative control must end with no cause named and nothing planned.
        "false_positive": bool(causes or steps) if truth.real is False or truth.no_cause else None,
        "ok": not result.differences, "seconds": result.timings.get("total_seconds"),
    }


def accuracy_table(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The rows and their totals as CSV and as a markdown table (percent of the rows a column applies to; the
    precisions as accepted of all steps planned and causes named)."""
    import csv
    import io

    def cell(value: Any) -> str:
        if isinstance(value, Precision):
            return f"{value.accepted}/{value.total}"
        return "" if value is None else ("yes" if value is True else "no" if value is False else f"{value}")

    def total(column: str) -> str:
        applicable = [r[column] for r in rows if r[column] is not None]
        if not applicable:
            return ""
        if column.endswith("_precision"):
            hits, count = sum(p.accepted for p in applicable), sum(p.total for p in applicable)
        else:
            hits, count = sum(bool(v) for v in applicable), len(applicable)
        if column == "false_positive":
            return f"{hits} of {count}"
        return f"{100 * hits / count:.0f} % ({hits}/{count})"

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ACCURACY_COLUMNS)
    writer.writeheader()
    writer.writerows({k: cell(v) if k not in ("repeat", "seconds") else v for k, v in r.items()} for r in rows)
    header = ("| " + " | ".join(_HEADINGS.get(c, c) for c in ACCURACY_COLUMNS) + " |\n|"
              + "---|" * len(ACCURACY_COLUMNS) + "\n")
    body = "".join("| " + " | ".join(cell(r[c]) if c != "seconds" else f"{r[c]:.0f}" for c in ACCURACY_COLUMNS)
                   + " |\n" for r in rows)
    totals = ("| **total** | | " + " | ".join(total(c) for c in ACCURACY_COLUMNS[2:-1])
              + f" | {sum(r['seconds'] or 0 for r in rows):.0f} |\n")
    return buffer.getvalue(), header + body + totals


def run_all(*, repeat: int = 1, outputs: str | Path = "outputs", progress: Callable[[str], None] | None = None,
            names: list[str] | None = None, phases: list[int] | None = None,
            execute_mitigations: bool = False) -> tuple[list[dict[str, Any]], Path]:
    """Every built-in scenario (or ``names``), ``repeat`` times, scored; the table is written as
    ``outputs/drill-accuracy/<UTC time>/accuracy.{csv,md}``. Phases 1-4 by default: the post-mortem
    scores nothing."""
    from datetime import UTC, datetime
    say = progress or (lambda _: None)
    rows = []
    for round_ in range(1, repeat + 1):
        for name in names or list(scenarios()):
            scenario = load_scenario(name)
            say(f"drill {name} (repeat {round_} of {repeat})")
            result = run_drill(scenario, outputs=outputs, phases=phases or [1, 2, 3, 4],
                               execute_mitigations=execute_mitigations)
            rows.append(accuracy_row(scenario, result, round_))
            say(f"  {'right' if result.ok else 'WRONG: ' + '; '.join(result.differences)}")
    directory = Path(outputs) / "drill-accuracy" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    csv_text, markdown = accuracy_table(rows)
    (directory / "accuracy.csv").write_text(csv_text)
    (directory / "accuracy.md").write_text(markdown)
    return rows, directory
