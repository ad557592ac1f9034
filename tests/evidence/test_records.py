"""The phases' records read back typed: what a hand or a crash broke reads as absent, never as a crash, and a step
whose source failed says why."""

from __future__ import annotations

from pathlib import Path

from irkit import evidence, playbook, runner
from irkit.evidence import records as R
from tests.evidence.test_manifest import _run_dir


def test_a_record_edited_into_nonsense_reads_as_absent_not_as_a_crash(tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    evidence.write_json(run_dir / "phase-1.json", {"finished_at": "2026-11-30T00:00:02+00:00", "records": {
        "severity": {"name": "SEV-4"}, "findings": [{"kind": "no-such-kind"}, "x"], "real": "yes"}})
    summary = runner.seal(run_dir).summary
    assert summary.severity is None and summary.findings == () and summary.real is None


def test_every_record_is_declared_once_by_a_phase_of_the_playbook():
    assert all(name == key.name for name, key in R.KEYS.items())
    assert {key.phase for key in R.KEYS.values()} <= set(playbook.NUMBERS)


def test_a_step_whose_source_failed_reads_as_absent_and_says_why(tmp_path: Path):
    marker = {"what": "lock graph", "error": "PostgreSQL at db:5432: connect failed after 5.0 s",
              "kind": "PostgresTimeout"}
    evidence.write_json(tmp_path / "phase-2.json", {"records": {"findings": marker, "lock_tree": marker,
                                                                "workloads": [{"name": "backend"}]}})
    records = R.RunRecords(tmp_path)
    assert records.get(R.FINDINGS) == [] and records.get(R.LOCK_TREE) is None
    assert records.unavailable(R.FINDINGS) == R.Unavailable(**marker)
    assert records.unavailable(R.WORKLOADS, 2) is None and records.get(R.WORKLOADS, 2) == [{"name": "backend"}]


def test_a_phase_file_that_is_not_a_record_or_is_missing_reads_as_empty(tmp_path: Path):
    (tmp_path / "phase-1.json").write_text("[1, 2")
    evidence.write_json(tmp_path / "phase-4.json", ["not", "a", "record"])
    records = R.RunRecords(tmp_path)
    assert records.phase(1) == {} and records.phase(4) == {} and records.phase(3) == {}
    assert records.get(R.SEVERITY) is None and records.get(R.VERDICT) is None and records.get(R.CHECKS) == []
