"""The ground truth against a run's summary: every difference, for ``--check`` and ``drill.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from irkit.drill.scenario import Truth
from irkit.evidence.summary import Summary

__all__ = ["check"]


def _first(items: Sequence[tuple[str, str]], want: Mapping[str, str] | None, keys: tuple[str, str], label: str,
           nothing: str) -> list[str]:
    """The difference, if any, between the first of ``items`` and ``want`` (None: there must be no item)."""
    got = items[0] if items else None
    if want is None:
        return [f"{label}: expected none, got {got[0]} {got[1]}"] if got else []
    expected = (want[keys[0]], want[keys[1]])
    if got == expected:
        return []
    return [f"first {label}: expected {expected[0]} {expected[1]}, got " + (f"{got[0]} {got[1]}" if got else nothing)]


def check(summary: Summary, truth: Truth, pids: Mapping[str, int]) -> list[str]:
    """Every difference between the run's summary and the ground truth; empty when the runbook got it right. A
    part of the truth whose phase the run did not run is not compared (``--phases 1-2`` plans nothing)."""
    truth = truth.resolved(pids)
    ran = {p.phase for p in summary.phases}
    problems = [f"phase {p.phase} {p.name} {p.status}: {p.error}" for p in summary.phases if p.status != "ok"]
    if 1 in ran:
        severity = summary.severity.name if summary.severity else None
        if severity != truth.severity:
            problems.append(f"severity: expected {truth.severity}, got {severity}")
        if summary.real is not truth.real:
            problems.append(f"real incident: expected {truth.real}, got {summary.real}")
        if truth.ongoing is not None and summary.ongoing is not truth.ongoing:
            problems.append(f"ongoing: expected {truth.ongoing}, got {summary.ongoing}")
    findings = [(f.kind.value, f.subject) for f in summary.findings]
    if 2 in ran:
        if truth.root is not None:  # a false alarm may still list symptoms under their thresholds
            problems += _first(findings, truth.root, ("kind", "subject"), "finding", "no findings")
        top = findings[:3]
        for want in truth.first_three:
            if (want["kind"], want["subject"]) not in top:
                problems.append(f"findings: expected {want['kind']} {want['subject']} among the first three, got {top}")
    if 3 in ran:
        problems += _first([(m.action, m.target) for m in summary.mitigations], truth.mitigation,
                           ("action", "target"), "mitigation", "nothing planned")
    recovered = summary.recovery.recovered if summary.recovery else None
    if 4 in ran and truth.recovered is not None and recovered is not truth.recovered:
        problems.append(f"recovered: expected {truth.recovered}, got {recovered}")
    return problems
