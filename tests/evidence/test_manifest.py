"""Evidence a reviewer can trust: the manifest and its signature, verify's blind spots, unfinished runs sealed
later, and what a viewer leaves behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from irkit import evidence
from irkit.rules.severity import Signals, classify

IRKIT = str(Path(sys.executable).parent / "irkit")


SEV2 = classify(Signals(error_ratio=0.12, latency_p95_seconds=0.2), detected_at=datetime(2026, 11, 30, tzinfo=UTC))


def _run_dir(tmp_path: Path, *, phases: tuple[int, ...] = (1, 2), finished: tuple[int, ...] = (1, 2)) -> Path:
    """A small run directory as irkit run leaves it while running: run.json and phase records."""
    run_dir = tmp_path / "INC-9" / "20261130T000000Z"
    (run_dir / "data").mkdir(parents=True)
    evidence.write_json(run_dir / evidence.RUN, {"schema_version": 1, "incident": "INC-9", "run_id": run_dir.name,
                                                 "phases": list(phases), "started_at": "2026-11-30T00:00:00+00:00"})
    for phase in phases:
        if phase in finished or phase == max(finished, default=0) + 1:
            evidence.write_json(run_dir / f"phase-{phase}.json", {
                "incident": "INC-9", "phase": phase, "started_at": "2026-11-30T00:00:01+00:00",
                "finished_at": "2026-11-30T00:00:02+00:00" if phase in finished else None,
                "records": {"severity": SEV2.as_dict()} if phase == 1 else {}, "problems": []})
    (run_dir / "data" / "phase1-error-ratio.csv").write_text("time,value\n")
    return run_dir


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IRKIT, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow  # irkit in a subprocess
def test_verify_reports_symlinks_fifos_and_directories_it_was_not_sealed_with(tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    evidence.write_manifest(run_dir)
    assert not any(evidence.verify(run_dir).values())
    (run_dir / "link.csv").symlink_to("/etc/passwd")
    os.mkfifo(run_dir / "data" / "pipe")
    (run_dir / "extra").mkdir()
    problems = evidence.verify(run_dir)  # must not block on the FIFO nor follow the link
    assert sorted(problems["unexpected"]) == ["data/pipe (FIFO)", "extra/ (directory)", "link.csv (symlink)"]
    result = _cli("verify", str(run_dir))
    assert result.returncode == 1 and "unexpected: link.csv (symlink)" in result.stdout


@pytest.mark.slow  # irkit in a subprocess
def test_a_signed_manifest_catches_a_resealed_edit(tmp_path: Path):
    run_dir = _run_dir(tmp_path)
    key = {"IRKIT_EVIDENCE_KEY": "k" * 32}
    keyfile = tmp_path / "key"
    keyfile.write_text("k" * 32 + "\n")
    sealed = _cli("seal", str(run_dir), env=key)
    assert sealed.returncode == 0, sealed.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["signature"]["algorithm"] == "hmac-sha256"
    assert _cli("verify", str(run_dir), env=key).returncode == 0
    assert _cli("verify", str(run_dir), env={"IRKIT_EVIDENCE_KEY_FILE": str(keyfile)}).returncode == 0
    unchecked = _cli("verify", str(run_dir))
    assert unchecked.returncode == 0 and "signature was not checked" in unchecked.stdout
    # Whoever edits the run can re-seal it; without the key the signature no longer matches.
    (run_dir / "summary.json").write_text(json.dumps({"severity": {"name": "SEV-4"}}))
    evidence.write_manifest(run_dir)  # no key in this process's environment: unsigned
    result = _cli("verify", str(run_dir), env=key)
    assert result.returncode == 1 and "signature: the manifest is not signed" in result.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["signature"] = {"algorithm": "hmac-sha256", "value": "0" * 64}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    result = _cli("verify", str(run_dir), env=key)
    assert result.returncode == 1 and "signature does not match" in result.stdout


@pytest.mark.slow  # irkit in a subprocess
def test_an_unfinished_run_says_how_far_it_got_and_seal_makes_it_verifiable(tmp_path: Path):
    run_dir = _run_dir(tmp_path, phases=(1, 2, 3, 4, 5), finished=(1, 2, 3))
    result = _cli("verify", str(run_dir))
    assert result.returncode == 1
    assert "unfinished run: phases 1-3 complete, phase 4 partial, phase 5 skipped" in result.stdout
    assert f"irkit seal {run_dir}" in result.stdout
    sealed = _cli("seal", str(run_dir))
    assert sealed.returncode == 0, sealed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [p["status"] for p in summary["phases"]] == ["ok", "ok", "ok", "partial", "skipped"]
    assert summary["severity"]["name"] == "SEV-2"  # what phase 1 recorded is in the sealed summary
    assert (run_dir / "report.html").exists()
    assert _cli("verify", str(run_dir)).returncode == 0
    again = _cli("seal", str(run_dir))
    assert again.returncode == 2 and "sealed already" in again.stderr


@pytest.mark.slow  # irkit in a subprocess
@pytest.mark.parametrize(("manifest", "why"), [
    (b"\x00\xff not json", "is not an irkit manifest"),
    (b"{}", "is not an irkit manifest"),
    (b'{"files": ["a"]}', "is not an irkit manifest"),
    (b'{"files": {"a": 1}}', "is not an irkit manifest"),
    (b"[]", "is not an irkit manifest"),
])
def test_verify_refuses_a_manifest_that_is_not_one_in_one_line(tmp_path: Path, manifest: bytes, why: str):
    run_dir = _run_dir(tmp_path)
    (run_dir / "manifest.json").write_bytes(manifest)
    result = _cli("verify", str(run_dir))
    assert result.returncode == 2 and why in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # irkit in a subprocess
def test_verify_and_seal_name_what_is_not_a_run_directory(tmp_path: Path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for command in ("verify", "seal"):
        for target in (a_file, tmp_path, tmp_path / "missing"):
            result = _cli(command, str(target))
            assert result.returncode == 2, (command, target, result.stderr)
            assert "run directory" in result.stderr and "Traceback" not in result.stderr


def _sealed(tmp_path: Path) -> Path:
    run_dir = tmp_path / "INC-1" / "20261130T000000Z"
    run_dir.mkdir(parents=True)
    evidence.write_json(run_dir / "phase-1.json", {"finished_at": "2026-11-30T00:00:01+00:00", "records": {}})
    (run_dir / "01-detect-and-assess.ipynb").write_text("{}")
    evidence.write_manifest(run_dir)
    return run_dir


def test_checkpoints_a_viewer_leaves_are_not_a_change_but_an_edit_still_is(tmp_path: Path):
    run_dir = _sealed(tmp_path)
    checkpoints = run_dir / ".ipynb_checkpoints"
    checkpoints.mkdir()
    (checkpoints / "01-detect-and-assess-checkpoint.ipynb").write_text("{}")
    assert not any(evidence.verify(run_dir).values())
    (run_dir / "01-detect-and-assess.ipynb").write_text('{"edited": true}')
    assert evidence.verify(run_dir)["changed"] == ["01-detect-and-assess.ipynb"]

