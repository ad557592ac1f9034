"""`irkit serve`'s queue: a group is one incident, the queue is bounded, survives a restart and a damaged file."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from irkit import serve
from tests.serve.conftest import TOKEN, _group, _post


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
    assert jobs[resolved["job"]].phases == "4-5"  # a resolved group validates recovery, then writes the resolution
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

