"""`irkit serve`: Alertmanager's webhook starts runs; tested against a real Alertmanager and Prometheus."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from irkit import drill, serve
from irkit.evidence import records as R
from irkit.evidence.timeline import incident_events
from irkit.lab.alertmanager import AlertmanagerLab
from irkit.sources import prom

TOKEN = "s3rve-t0ken"


def _group(status: str = "firing", key: str = '{}:{alertname="HighErrorRatio"}', **annotations: str) -> dict:
    return {"version": "4", "groupKey": key, "status": status, "receiver": "irkit",
            "groupLabels": {"alertname": "HighErrorRatio"}, "commonLabels": {"alertname": "HighErrorRatio"},
            "commonAnnotations": {}, "externalURL": "http://alertmanager", "truncatedAlerts": 0,
            "alerts": [{"status": status, "labels": {"alertname": "HighErrorRatio", "service": "backend"},
                        "annotations": annotations, "startsAt": "2026-12-01T03:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "abc"}]}


def _post(url: str, body: bytes | dict, token: str | None = TOKEN, length: int | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    if length is not None:
        headers["Content-Length"] = str(length)
    request = urllib.request.Request(f"{url}/alerts", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture()
def queue_only(tmp_path: Path):
    """irkit serve taking alerts and queueing them, running none (max_runs 0)."""
    server = serve.Serve(token=TOKEN, state_dir=tmp_path / "state", outputs=tmp_path / "outputs",
                         listen=("127.0.0.1", 0), max_runs=0).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("body", "token", "code", "reason"), [
    (_group(), None, 401, "bearer token"),
    (_group(), "wrong", 401, "bearer token"),
    (b"{not json", TOKEN, 400, "not JSON"),
    ({**_group(), "version": "3"}, TOKEN, 400, "version '3' is not 4"),
    ({**_group(), "alerts": []}, TOKEN, 400, "alerts must be a non-empty list"),
    ({**_group(), "status": "maybe"}, TOKEN, 400, "status must be firing or resolved"),
    (_group(irkit_phases="9"), TOKEN, 400, "phases are 1 to 5"),
    (_group(irkit_parameters="window_minutes"), TOKEN, 400, "is not name=value"),
    # Whatever can post an alert must never be able to change production, and a bad parameter is said now.
    (_group(irkit_parameters="execute_mitigations=true"), TOKEN, 400, "cannot come from an alert"),
    (_group(irkit_parameters="confirm=ALERT-1:terminate-backend-1a2b3c"), TOKEN, 400, "cannot come from an alert"),
    (_group(irkit_parameters="bogus=1"), TOKEN, 400, "unknown parameter"),
    (_group(irkit_parameters="window_minutes=99999999"), TOKEN, 400, "window_minutes must be a number"),
    (b"[" * 100_000 + b"]" * 100_000, TOKEN, 400, "nests deeper than 32 levels"),
    (b'{"a": "\xff\xfe"}', TOKEN, 400, "not UTF-8"),
])
def test_a_caller_without_the_token_or_with_a_bad_body_is_refused_with_the_reason(
        queue_only: serve.Serve, body: Any, token: str | None, code: int, reason: str):
    status, answer = _post(queue_only.url, body, token)
    assert status == code and reason in answer["error"]
    assert queue_only.queue.jobs == []  # nothing queued


def test_a_body_over_the_bound_is_refused_before_it_is_read(queue_only: serve.Serve):
    status, answer = _post(queue_only.url, b"{}", length=serve.MAX_BODY + 1)
    assert status == 413 and queue_only.queue.jobs == []


def test_a_group_is_one_incident_and_a_second_firing_while_one_waits_starts_nothing(queue_only: serve.Serve):
    status, first = _post(queue_only.url, _group(irkit_phases="1-3", irkit_parameters="window_minutes=30"))
    assert status == 202 and first["status"] == "queued" and first["incident"].startswith("ALERT-")
    status, again = _post(queue_only.url, _group())
    assert status == 202 and again["job"] == first["job"] and "queued already" in again["status"]
    status, other = _post(queue_only.url, _group(key='{}:{alertname="Other"}'))
    assert other["incident"] != first["incident"]
    status, resolved = _post(queue_only.url, _group("resolved"))
    assert resolved["incident"] == first["incident"] and resolved["job"] != first["job"]
    jobs = {j.id: j for j in queue_only.queue.jobs}
    assert jobs[first["job"]].phases == "1-3" and jobs[first["job"]].parameters == {"window_minutes": "30"}
    assert jobs[resolved["job"]].phases == "4"  # a resolved group validates recovery
    with urllib.request.urlopen(f"{queue_only.url}/healthz", timeout=5) as resp:
        assert json.loads(resp.read())["jobs"] == {"queued": 3}


def test_a_storm_of_groups_fills_the_queue_to_its_bound_then_is_asked_to_retry(tmp_path: Path):
    server = serve.Serve(token=TOKEN, state_dir=tmp_path / "state", listen=("127.0.0.1", 0), max_runs=0,
                         max_queued=5).start()
    try:
        answers = [_post(server.url, _group(key=f'{{}}:{{alertname="A{i}"}}'))[0] for i in range(8)]
        assert answers == [202] * 5 + [503] * 3
        request = urllib.request.Request(f"{server.url}/alerts", data=json.dumps(_group(key="{}:x")).encode(),
                                         headers={"Authorization": f"Bearer {TOKEN}"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as full:
            urllib.request.urlopen(request, timeout=10)
        assert full.value.code == 503 and full.value.headers["Retry-After"] == str(serve.RETRY_AFTER)
        assert len(server.queue.jobs) == 5
    finally:
        server.stop()


def test_repeated_resolved_notifications_of_a_group_make_one_job(queue_only: serve.Serve):
    for _ in range(50):
        assert _post(queue_only.url, _group("resolved"))[0] == 202
    assert [(j.status, j.state) for j in queue_only.queue.jobs] == [("resolved", "queued")]
    assert len(queue_only.queue.path.read_bytes()) < 4096  # the state file stays small


def test_a_damaged_state_file_is_kept_aside_and_said_never_overwritten(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "queue.json").write_bytes(b'{"jobs": [garbage')
    server = serve.Serve(token=TOKEN, state_dir=state, listen=("127.0.0.1", 0), max_runs=0).start()
    try:
        aside = [p for p in state.iterdir() if p.name.startswith("queue.json.damaged-")]
        assert len(aside) == 1 and aside[0].read_bytes() == b'{"jobs": [garbage'
        assert str(aside[0]) in server.queue.damaged and server.queue.jobs == []
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:
            assert "moved to" in json.loads(resp.read())["damaged_state"]
    finally:
        server.stop()


def test_a_queued_job_with_a_key_this_version_does_not_know_still_runs(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    job = {"id": "abc", "incident": "ALERT-1", "group_key": "{}:x", "status": "firing", "phases": "1-2",
           "parameters": {}, "alert": {"name": "X"}, "state": "queued", "priority": "from a later irkit"}
    (state / "queue.json").write_text(json.dumps({"jobs": [job, {"id": "broken"}]}))
    queue = serve.JobQueue(state)
    assert [j.id for j in queue.jobs] == ["abc"]  # the one it cannot run is dropped, and said
    assert "1 of its 2 jobs kept" in queue.damaged


def test_a_long_hostile_group_key_still_fits_a_runs_context():
    from irkit import runner
    body = _group(key='{}:{token="hunter2-in-a-key", note="' + "\u00e9\u2028" * 2000 + '"}')
    body["groupLabels"] = {"alertname": "<script>alert(1)</script>" * 40}
    group = serve.parse_group(json.dumps(body).encode())
    job = serve.Job("j1", serve.incident_id(group.key), group.key, group.status, group.phases, group.parameters,
                    {"name": group.name, "startsAt": group.starts_at, "status": group.status})
    text = json.dumps(serve.context(job), ensure_ascii=False)
    assert runner.parse_context(text)["alert_group"].endswith("…")
    assert "hunter2" not in text and len(group.name) <= serve.MAX_NAME


def test_the_queue_survives_a_restart_and_a_run_cut_short_is_run_again(tmp_path: Path):
    state = tmp_path / "state"
    first = serve.Serve(token=TOKEN, state_dir=state, listen=("127.0.0.1", 0), max_runs=0).start()
    _post(first.url, _group())
    _post(first.url, _group(key='{}:{alertname="Other"}'))
    first.queue.jobs[0].state = "running"  # as if serve stopped while its run went on
    first.queue.finish(first.queue.jobs[0], "running")
    first.stop()
    second = serve.Serve(token=TOKEN, state_dir=state, listen=("127.0.0.1", 0), max_runs=0)
    try:
        assert [(j.state, j.error[:9]) for j in second.queue.jobs] == [("queued", "requeued:"), ("queued", "")]
    finally:
        second.server.server_close()


def test_a_missing_token_is_one_line_naming_the_variables(tmp_path: Path):
    from irkit.errors import ConfigError
    with pytest.raises(ConfigError, match="IRKIT_SERVE_TOKEN"):
        serve.read_token({})
    (tmp_path / "token").write_text(f"{TOKEN}\n")
    assert serve.read_token({"IRKIT_SERVE_TOKEN_FILE": str(tmp_path / "token")}) == TOKEN


def _wait(predicate: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} within {seconds:.0f} s")


@pytest.mark.timeout(480)
def test_a_prometheus_rule_fires_alertmanager_starts_the_run_and_its_resolution_validates_recovery(tmp_path: Path):
    """End to end with real parts: the lock-contention drill, a Prometheus alerting rule on the error ratio, a real
    Alertmanager posting its webhook to irkit serve, which runs phases 1-2; the cause removed, the alert resolves and
    phase 4 runs and says recovered."""
    with drill.DrillEnvironment(drill.load_scenario("lock-contention")) as env:
        # Rates over 20 s instead of the drill's minute (the rule and the runs alike): the alert resolves within
        # seconds of the fix, as it would within minutes over a team's 5m window.
        config_path = tmp_path / "irkit.toml"
        config_path.write_text(env.config_path.read_text().replace('prom_rate_window = "1m"',
                                                                   'prom_rate_window = "20s"'))
        server = serve.Serve(token=TOKEN, config_path=str(config_path), outputs=tmp_path / "outputs",
                             state_dir=tmp_path / "state", listen=("127.0.0.1", 0), max_runs=1).start()
        try:
            with AlertmanagerLab(f"{server.url}/alerts", TOKEN) as alertmanager:
                from irkit import config as irconfig
                cfg = irconfig.load(config_path)
                assert cfg.prom_rate_window == "20s"
                env.prometheus.route_alerts(
                    "groups:\n- name: irkit\n  rules:\n  - alert: HighErrorRatio\n"
                    f"    expr: '{prom.error_ratio_query(cfg, by_service=True)} > {cfg.error_ratio_moderate}'\n"
                    "    annotations:\n      irkit_phases: '1-2'\n      irkit_parameters: 'window_minutes=60'\n",
                    alertmanager.address)
                fired = _wait(lambda: [j for j in server.queue.jobs if j.status == "firing" and j.state == "done"],
                              120, "the firing alert did not become a finished run")
                run_dir = Path(fired[0].run_dir)
                meta = json.loads((run_dir / "run.json").read_text())
                assert meta["phases"] == [1, 2] and meta["alert"]["name"] == "HighErrorRatio"
                assert meta["incident"] == serve.incident_id(fired[0].group_key)
                findings = R.RunRecords(run_dir).get(R.FINDINGS)
                assert findings[0].kind.value == "lock-root"
                assert len([j for j in server.queue.jobs if j.status == "firing"]) == 1  # one run per firing group
                with psycopg.connect(env.postgres.dsn, autocommit=True) as admin:  # the responder's fix, in psql
                    admin.execute("SELECT pg_terminate_backend(%s)", (env.pids["holder"],))
                resolved = _wait(lambda: [j for j in server.queue.jobs if j.status == "resolved"
                                          and j.state == "done"], 240, "the resolution did not run phase 4")
                second = Path(resolved[0].run_dir)
                assert second.parent == run_dir.parent  # the same incident
                verdict = R.RunRecords(second).get(R.VERDICT)
                assert verdict is not None and verdict.recovered is True, verdict
                timeline = [e.text for e in incident_events(second)]
                assert any("alert HighErrorRatio fired" in t for t in timeline)
        finally:
            server.stop()
