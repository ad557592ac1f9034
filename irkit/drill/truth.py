"""The ground truth against a run's summary: every difference, for ``--check`` and ``drill.json``; and the plan's
and the findings' precision (how many of the steps planned and the causes named the truth accepts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from irkit.drill.scenario import UNKNOWN, Truth, Verdict
from irkit.evidence.summary import Summary

__all__ = ["Precision", "check", "finding_precision", "plan_precision", "verdict_holds"]


@dataclass(frozen=True)
class Precision:
    """Of ``total`` items (steps planned, causes named), ``accepted`` are right; ``wrong`` names the others."""

    accepted: int
    total: int
    wrong: tuple[str, ...] = ()

    @property
    def right(self) -> bool:
        return self.accepted == self.total


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


def _matches(item: tuple[str, str], patterns: Sequence[Mapping[str, str]], keys: tuple[str, str]) -> bool:
    """Whether ``item`` (kind and subject, or action and target) matches a pattern; a pattern without its
    second key matches any."""
    return any(p[keys[0]] == item[0] and p.get(keys[1], item[1]) == item[1] for p in patterns)


def _precision(items: Sequence[tuple[str, str]], accept: Sequence[Mapping[str, str]],
               forbid: Sequence[Mapping[str, str]], keys: tuple[str, str], label: str) -> Precision:
    wrong = []
    for item in items:
        if _matches(item, forbid, keys):
            wrong.append(f"{label} {item[0]} {item[1]} is forbidden by the truth")
        elif not _matches(item, accept, keys):
            wrong.append(f"{label} {item[0]} {item[1]} is not one the truth accepts")
    return Precision(len(items) - len(wrong), len(items), tuple(wrong))


def plan_precision(summary: Summary, truth: Truth) -> Precision:
    """Every step planned against the truth (resolved): accepted when it is the mitigation or matches
    ``plan_accept``, wrong when it matches ``plan_forbid`` or nothing."""
    accept = [*([truth.mitigation] if truth.mitigation else []), *truth.plan_accept]
    return _precision([(m.action, m.target) for m in summary.mitigations], accept, truth.plan_forbid,
                      ("action", "target"), "step")


def finding_precision(summary: Summary, truth: Truth) -> Precision:
    """Every cause named against the truth (resolved): accepted when it is the root, one of ``first_three`` or
    matches ``findings_accept``; symptoms are not scored (they are measurements, not claims)."""
    accept = [*([truth.root] if truth.root else []), *truth.first_three, *truth.findings_accept]
    return _precision([(f.kind.value, f.subject) for f in summary.findings if f.is_cause], accept,
                      truth.findings_forbid, ("kind", "subject"), "cause")


def verdict_holds(got: bool | None, want: Verdict) -> bool:
    """Whether a run's verdict (None: unknown) is the one the truth wants (True, False or "unknown")."""
    return got is None if want == UNKNOWN else got is want


def _say(value: bool | None) -> str:
    return UNKNOWN if value is None else str(value)


def check(summary: Summary, truth: Truth, pids: Mapping[str, int]) -> list[str]:
    """Every difference between the run's summary and the ground truth; empty when the runbook got it right. A
    part of the truth whose phase the run did not run is not compared (``--phases 1-2`` plans nothing)."""
    truth = truth.resolved(pids)
    ran = {p.phase for p in summary.phases}
    problems = [f"phase {p.phase} {p.name} {p.status}: {p.error}" for p in summary.phases if p.status != "ok"]
    if 1 in ran:
        severity = summary.severity.name if summary.severity else UNKNOWN
        if severity != truth.severity:
            problems.append(f"severity: expected {truth.severity}, got {severity}")
        if not verdict_holds(summary.real, truth.real):
            problems.append(f"real incident: expected {truth.real}, got {_say(summary.real)}")
        if truth.ongoing is not None and not verdict_holds(summary.ongoing, truth.ongoing):
            problems.append(f"ongoing: expected {truth.ongoing}, got {_say(summary.ongoing)}")
    findings = [(f.kind.value, f.subject) for f in summary.findings]
    if 2 in ran:
        if truth.root is not None:  # a false alarm may still list symptoms under their thresholds
            problems += _first(findings, truth.root, ("kind", "subject"), "finding", "no findings")
        top = findings[:3]
        for want in truth.first_three:
            if (want["kind"], want["subject"]) not in top:
                problems.append(f"findings: expected {want['kind']} {want['subject']} among the first three, got {top}")
        problems += finding_precision(summary, truth).wrong
        if truth.no_cause and any(f.is_cause for f in summary.findings):
            problems.append("no cause: the truth is a negative control, yet a cause was named")
    if 3 in ran:
        problems += _first([(m.action, m.target) for m in summary.mitigations], truth.mitigation,
                           ("action", "target"), "mitigation", "nothing planned")
        if truth.mitigation is not None:  # without one, the line above already refuses any step
            problems += plan_precision(summary, truth).wrong
    recovered = summary.recovery.recovered if summary.recovery else None
    if 4 in ran and truth.recovered is not None and not verdict_holds(recovered, truth.recovered):
        problems.append(f"recovered: expected {truth.recovered}, got {_say(recovered)}")
    return problems
