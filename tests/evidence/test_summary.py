"""`summary.json`: what a sealed run concluded, versioned; read back passing over what is broken; unknown
verdicts and steps cut short said, not hidden."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from irkit import evidence, runner
from irkit.evidence.summary import PhaseStatus, Summary, summarize
from tests.evidence.test_manifest import _run_dir


def test_the_run_schema_is_versioned(tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    summary = runner.seal(run_dir).summary
    assert summary.schema_version == evidence.SCHEMA_VERSION
    assert json.loads((run_dir / "summary.json").read_text())["schema_version"] == evidence.SCHEMA_VERSION
    assert json.loads((run_dir / "run.json").read_text())["schema_version"] == evidence.SCHEMA_VERSION


def test_a_summary_a_hand_or_a_crash_broke_reads_what_it_can(tmp_path: Path):
    evidence.write_json(tmp_path / "summary.json", {
        "incident": "INC-9", "phases": [{"phase": 1, "status": "ok"}, {"status": "ok"}, "x"], "real": "yes",
        "affected": "backend", "findings": [{"kind": "lock-root", "subject": "pid 7"}, {"kind": "no-such-kind"}],
        "recovery": ["not", "a", "verdict"]})
    summary = Summary.read(tmp_path / "summary.json")
    assert summary is not None and summary.incident == "INC-9"
    assert [p.phase for p in summary.phases] == [1] and summary.real is None and summary.affected == ()
    assert [f.subject for f in summary.findings] == ["pid 7"] and summary.recovery is None
    (tmp_path / "summary.json").write_text("[]")
    assert Summary.read(tmp_path / "summary.json") is None and Summary.read(tmp_path / "missing.json") is None


def test_a_verdict_that_rests_on_no_data_makes_the_run_inconclusive_and_a_step_cut_short_is_in_flight(
        tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    evidence.write_json(run_dir / "phase-3.json", {"records": {"outcomes": [
        {"id": "scale-1a2b3c", "action": "scale", "status": "applying", "confirmation": {"by": "alice"}},
        {"id": "delete-pod-0a0b0c", "action": "delete-pod", "status": "dry-run"}]}})
    evidence.write_json(run_dir / "phase-4.json", {"records": {"verdict": {
        "recovered": None, "failed": [], "unmeasured": ["p95 latency: Prometheus did not answer"]}}})
    phases = [PhaseStatus(n, f"phase {n}", "", "ok") for n in (1, 2, 3, 4)]
    summary = summarize(run_dir, "INC-9", datetime(2026, 11, 30, tzinfo=UTC), phases)
    assert summary.inconclusive == ("recovery unknown: not measured: p95 latency: Prometheus did not answer",)
    assert summary.in_flight == ["scale-1a2b3c (scale)"]  # it may or may not have changed its target
    assert [a.id for a in summary.actions] == ["scale-1a2b3c"]  # a dry run changed nothing: not an action
    assert summary.ok and summary.severity is not None and summary.severity.name == "SEV-2"
