"""The incident's timeline across its runs: a post-mortem written after a later phase-4 run says resolved, with when."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
