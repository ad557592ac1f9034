"""The incident's timeline across its runs: a post-mortem written after a later phase-4 run says resolved, with when."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from irkit.evidence.timeline import incident_events, incident_runs
from irkit.rules.timeline import measures


def _run(incident_dir: Path, name: str, phases: dict[int, dict[str, Any]], started: str) -> Path:
    run = incident_dir / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"incident": "INC-T", "phases": sorted(phases), "started_at": started}))
    for number, data in phases.items():
        (run / f"phase-{number}.json").write_text(json.dumps({"phase": number, **data}))
    return run


def test_every_run_of_the_incident_counts_and_a_later_validation_resolves_it(tmp_path: Path):
    incident = tmp_path / "INC-T"
    _run(incident, "20261201T021000Z", {
        1: {"started_at": "2026-12-01T02:10:00+00:00", "finished_at": "2026-12-01T02:10:05+00:00",
            "records": {"incident_start": "2026-12-01T02:00:00+00:00"}},
        2: {"started_at": "2026-12-01T02:10:06+00:00", "finished_at": "2026-12-01T02:10:10+00:00",
            "records": {"findings": [{"kind": "lock-root", "subject": "pid 7", "detail": "holds a lock",
                                      "evidence": {}}],
                        "rollout_history": [{"deployment": "backend-deployment", "revision": 4,
                                             "created": "2026-12-01T01:55:00+00:00", "images": "b:4"},
                                            {"deployment": "backend-deployment", "revision": 1,
                                             "created": "2026-11-01T00:00:00+00:00", "images": "b:1"}]}},
    }, "2026-12-01T02:10:00+00:00")
    _run(incident, "20261201T024000Z", {
        4: {"started_at": "2026-12-01T02:40:00+00:00", "finished_at": "2026-12-01T02:41:00+00:00",
            "records": {"verdict": {"recovered": True, "failed": [], "unmeasured": []}}},
    }, "2026-12-01T02:40:00+00:00")
    morning = _run(incident, "20261202T090000Z", {5: {"started_at": "2026-12-02T09:00:00+00:00"}},
                   "2026-12-02T09:00:00+00:00")
    _run(incident, "20261203T090000Z", {}, "2026-12-03T09:00:00+00:00")  # a later run is not this one's past

    assert [r.name for r in incident_runs(morning)] == ["20261201T021000Z", "20261201T024000Z", "20261202T090000Z"]
    events = incident_events(morning)
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["deploy", "onset"]  # the deploy 5 minutes before the onset; not last month's
    assert "recovered" in kinds and kinds.count("run") == 3
    recovered = next(e for e in events if e.kind == "recovered")
    assert recovered.link == "20261201T024000Z/phase-4.json"
    m = measures(events)
    assert m.resolved is not None and m.resolved.isoformat() == "2026-12-01T02:41:00+00:00"
    assert m.mttr is not None and m.mttr.total_seconds() == 41 * 60


def test_an_earlier_run_that_no_longer_matches_its_manifest_counts_for_nothing(tmp_path: Path, monkeypatch: Any):
    """Forged records of an earlier run (a confirmation by someone who never confirmed) must not reach a freshly
    signed post-mortem; an earlier run that was never sealed speaks, marked unverified."""
    from irkit import evidence
    monkeypatch.setenv(evidence.KEY_ENV, "k" * 32)
    incident = tmp_path / "INC-T"
    confirmed = {3: {"started_at": "2026-12-01T02:11:00+00:00", "finished_at": "2026-12-01T02:11:05+00:00",
                     "records": {"outcomes": [{"id": "terminate-backend-1a2b3c", "action": "terminate-backend",
                                               "status": "applied", "detail": "the session is gone",
                                               "confirmation": {"by": "alice", "at": "2026-12-01T02:11:01+00:00",
                                                                "via": "parameter"},
                                               "started_at": "2026-12-01T02:11:01+00:00"}]}}}
    sealed = _run(incident, "20261201T021000Z", confirmed, "2026-12-01T02:10:00+00:00")
    evidence.write_manifest(sealed)
    forged = json.loads((sealed / "phase-3.json").read_text())
    forged["records"]["outcomes"][0]["confirmation"]["by"] = "mallory-was-never-here"
    (sealed / "phase-3.json").write_text(json.dumps(forged))
    unsealed = _run(incident, "20261201T030000Z", {4: {"started_at": "2026-12-01T03:00:00+00:00",
                                                       "finished_at": "2026-12-01T03:01:00+00:00",
                                                       "records": {"verdict": {"recovered": True, "failed": [],
                                                                               "unmeasured": []}}}},
                    "2026-12-01T03:00:00+00:00")
    morning = _run(incident, "20261202T090000Z", {5: {"started_at": "2026-12-02T09:00:00+00:00"}},
                   "2026-12-02T09:00:00+00:00")

    assert [r.name for r in incident_runs(morning)] == [unsealed.name, morning.name]
    texts = [e.text for e in incident_events(morning)]
    assert not any("mallory" in t or "alice" in t for t in texts)
    assert any(t.startswith(f"run {sealed.name} does not match its manifest (changed: phase-3.json") for t in texts)
    recovered = next(t for t in texts if t.startswith("recovery validated"))
    assert recovered.endswith(f"(unverified: run {unsealed.name} is not sealed)")


@pytest.mark.timeout(30)  # reading a FIFO blocks forever: the bound turns a hang into a failure
def test_earlier_runs_holding_a_fifo_or_device_links_are_read_without_blocking(tmp_path: Path):
    import os
    incident = tmp_path / "INC-T"
    earlier = _run(incident, "20261201T021000Z", {}, "2026-12-01T02:10:00+00:00")
    os.mkfifo(earlier / "phase-1.json")
    (earlier / "phase-2.json").symlink_to("/dev/zero")
    (earlier / "outbox").mkdir()
    os.mkfifo(earlier / "outbox" / "001-initial-email.json")
    morning = _run(incident, "20261202T090000Z", {}, "2026-12-02T09:00:00+00:00")
    assert [e.kind for e in incident_events(morning)] == ["run", "run"]  # and it returned: nothing blocked
