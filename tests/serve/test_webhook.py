"""`irkit serve`'s webhook: who may post, and what it takes from Alertmanager's alert group, refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from irkit import serve
from tests.serve.conftest import TOKEN, _group, _post


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


def test_a_missing_token_is_one_line_naming_the_variables(tmp_path: Path):
    from irkit.errors import ConfigError
    with pytest.raises(ConfigError, match="IRKIT_SERVE_TOKEN"):
        serve.read_token({})
    (tmp_path / "token").write_text(f"{TOKEN}\n")
    assert serve.read_token({"IRKIT_SERVE_TOKEN_FILE": str(tmp_path / "token")}) == TOKEN



def test_each_alert_received_or_refused_is_one_log_line_and_the_alerts_text_cannot_forge_one(queue_only: serve.Serve):
    import io
    said = io.StringIO()
    serve.configure_logging("plain", said)
    hostile = _group(key='{}:{alertname="X\x1b[2J\nFAKE run done"}')
    assert _post(queue_only.url, hostile)[0] == 202
    assert _post(queue_only.url, _group(), token="wrong")[0] == 401
    assert _post(queue_only.url, b"[]")[0] == 400
    lines = said.getvalue().splitlines()
    assert len(lines) == 3, lines  # a line break in the alert's text starts no line of its own
    assert " INFO alert received " in lines[0] and "status=firing" in lines[0] and "queued=True" in lines[0]
    assert "\x1b" not in said.getvalue()
    assert " WARNING alert refused: no valid bearer token " in lines[1] and " WARNING alert refused " in lines[2]
    said = io.StringIO()
    serve.configure_logging("json", said)
    assert _post(queue_only.url, _group(status="resolved"))[0] == 202
    [record] = [json.loads(line) for line in said.getvalue().splitlines() if line.strip()]
    assert record["event"] == "alert received" and record["status"] == "resolved" and record["phases"] == "4-5"
