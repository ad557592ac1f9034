"""Phase 1's verdicts on recorded signals (no services): ongoing looks at every signal, lock waits included."""

from __future__ import annotations

from pathlib import Path

import pytest

from irkit.config import Config
from irkit.evidence import records as R
from irkit.phases import assess
from irkit.phases.incident import Incident


def _quiet(tmp_path: Path, waiting: int) -> Incident:
    inc = Incident("INC-1", 1, tmp_path, Config())
    inc.record(R.ERROR_RATIO_NOW, [{"service": "all", "error_ratio": 0.01}])
    inc.record(R.LATENCY_P95_NOW, [{"service": "all", "seconds": 0.2}])
    inc.record(R.ENDPOINTS, [{"url": "https://shop/health", "ok": True, "status": 200}])
    inc.record(R.WORKLOADS, [{"kind": "Deployment", "name": "backend-deployment", "desired": 3, "ready": 3}])
    inc.record(R.LOCK_WAITS_NOW, {"waiting": waiting, "roots": 1 if waiting else 0})
    return inc


def test_sessions_waiting_on_locks_keep_an_incident_ongoing(tmp_path: Path):
    inc = _quiet(tmp_path, waiting=3)
    assess.assessment(inc)
    assess.checklist(inc)
    assert inc.current(R.ONGOING) is True


def test_with_nothing_waiting_and_every_signal_quiet_it_is_not_ongoing(tmp_path: Path):
    inc = _quiet(tmp_path, waiting=0)
    assert assess.assessment(inc).name == "SEV-4"
    assess.checklist(inc)
    assert inc.current(R.ONGOING) is False and inc.current(R.REAL) is False


def test_a_peak_with_sessions_still_queueing_is_not_called_resolved(tmp_path: Path):
    inc = _quiet(tmp_path, waiting=2)
    inc.record(R.ERROR_RATIO_PEAK, {"service": "backend", "error_ratio": 0.14, "at": "2026-11-30T01:05:00+00:00"})
    result = assess.assessment(inc)
    assert result.name == "SEV-2" and result.reasons[-1] == "not over: 2 session(s) still wait on locks"


def test_related_incidents_come_from_the_outputs_the_run_is_kept_in_and_a_planted_fifo_blocks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import json
    import os
    elsewhere = tmp_path / "elsewhere"  # where `irkit run --outputs elsewhere` keeps this incident
    earlier = elsewhere / "INC-0" / "20261130T000000Z"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text(json.dumps({"incident": "INC-0", "run_id": earlier.name,
                                                      "severity": {"name": "SEV-2"}, "affected": ["backend"],
                                                      "finished_at": "2099-01-01T00:00:00+00:00"}))
    poisoned = elsewhere / "INC-X" / "20261130T000000Z"
    poisoned.mkdir(parents=True)
    os.mkfifo(poisoned / "summary.json")  # opening it to read would wait forever
    cwd_outputs = tmp_path / "outputs" / "INC-9" / "20261130T000000Z"  # ./outputs: not where this run lives
    cwd_outputs.mkdir(parents=True)
    (cwd_outputs / "summary.json").write_text((earlier / "summary.json").read_text().replace("INC-0", "INC-9"))
    monkeypatch.chdir(tmp_path)
    own = elsewhere / "INC-1" / "20261130T000000Z"  # this incident's earlier run: not a related incident
    own.mkdir(parents=True)
    (own / "summary.json").write_text((earlier / "summary.json").read_text().replace("INC-0", "INC-1"))
    inc = Incident("INC-1", 1, elsewhere / "INC-1" / "20261201T000000Z", Config())
    inc.record(R.ERROR_RATIO_NOW, [{"service": "backend", "error_ratio": 0.2}])
    found = assess.related_incidents(inc)
    assert list(found["incident"]) == ["INC-0"]


@pytest.mark.parametrize(("serves_users", "level"), [
    ((), 3),  # by default the backend and the frontend serve users: a worker with none ready is a failing feature
    (("backend-deployment", "frontend-deployment", "order-worker"), 1),  # said to serve users: an outage
])
def test_a_deployment_with_no_ready_pod_is_an_outage_only_if_it_serves_users(
        tmp_path: Path, serves_users: tuple[str, ...], level: int):
    inc = Incident("INC-1", 1, tmp_path, Config(other_deployments=("order-worker",), serves_users=serves_users))
    inc.record(R.ERROR_RATIO_NOW, [{"service": "all", "error_ratio": 0.01}])
    inc.record(R.LATENCY_P95_NOW, [{"service": "all", "seconds": 0.2}])
    inc.record(R.ENDPOINTS, [{"url": "https://shop/health", "ok": True, "status": 200}])
    inc.record(R.WORKLOADS, [{"kind": "Deployment", "name": "order-worker", "desired": 3, "ready": 0}])
    inc.record(R.WORKLOADS_DOWN, ["order-worker"])
    result = assess.assessment(inc)
    assert result.level == level, result.reasons
    assert any("order-worker" in reason for reason in result.reasons) or level == 1


def test_a_peak_on_another_day_is_dated_and_one_today_is_not():
    from datetime import UTC, datetime, timedelta
    now = datetime.now(UTC)
    assert assess.when(now) == f"{now:%H:%M} UTC"
    assert assess.when(now - timedelta(days=2)) == f"{now - timedelta(days=2):%Y-%m-%d %H:%M} UTC"


def test_a_latency_only_incident_has_an_onset_and_an_end_from_p95(tmp_path: Path):
    """Errors never crossed their line; p95 was over 5 s from 40 to 20 minutes ago: the onset, the end and the
    timeline's words come from p95, not "unknown"."""
    from datetime import UTC, datetime

    from irkit import config as irconfig
    from irkit.lab.prometheus import PrometheusLab, Segment, ServiceHistory
    history = [ServiceHistory("api", (Segment(-7200, -2400, 20, 0.005, 0.4), Segment(-2400, -1200, 20, 0.005, 8.0),
                                      Segment(-1200, 1, 20, 0.005, 0.4)))]
    with PrometheusLab(history, history_start=-7200, ahead=300) as lab:
        inc = Incident("INC-1", 1, tmp_path, irconfig.load(env={}, prom_url=lab.url, prom_rate_window="1m"))
        assess.error_ratio_history(inc, 120)
        assess.latency_history(inc, 120)
        inc.close()
    now = datetime.now(UTC)
    onset, over = inc.current(R.INCIDENT_START), inc.current(R.RESOLVED_AT)
    assert inc.current(R.ONSET_SIGNAL) == "p95 latency" and inc.current(R.ONSET_THRESHOLD) == 5.0
    assert onset is not None and 2300 < (now - onset).total_seconds() < 2500
    assert over is not None and 1050 < (now - over).total_seconds() < 1250
