"""The recovery verdict: recovered only when every check was measured and passed; a check not measured never
counts as passed."""

from __future__ import annotations

from irkit.rules.recovery import Verdict, decide


def _row(check: str, ok: bool | None, detail: str = "d") -> dict[str, object]:
    return {"check": check, "ok": ok, "detail": detail}


def test_every_check_measured_and_passed_is_recovered():
    verdict = decide([_row("error ratio backend", True), _row("orders flowing", True)])
    assert verdict == Verdict(recovered=True)


def test_one_failed_check_is_not_recovered_whatever_else_was_not_measured():
    verdict = decide([_row("error ratio backend", True), _row("no lock waits", False, "1 waiting session(s)"),
                      _row("p95 latency", None, "Prometheus did not answer")])
    assert verdict.recovered is False
    assert verdict.failed == ("no lock waits: 1 waiting session(s)",)
    assert verdict.unmeasured == ("p95 latency: Prometheus did not answer",)


def test_a_check_not_measured_with_none_failed_is_unknown_not_recovered():
    verdict = decide([_row("error ratio backend", True), _row("health endpoints", None, "none configured")])
    assert verdict.recovered is None and verdict.unmeasured == ("health endpoints: none configured",)


def test_no_check_at_all_is_unknown():
    assert decide([]).recovered is None


def test_a_verdict_round_trips_through_its_record_and_a_recovered_that_is_not_a_boolean_reads_as_unknown():
    verdict = Verdict(recovered=False, failed=("no lock waits: 1 waiting session(s)",), unmeasured=("p95: x",))
    assert Verdict.from_dict(verdict.as_dict()) == verdict
    assert Verdict.from_dict({"recovered": "yes", "failed": []}).recovered is None
