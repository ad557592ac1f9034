"""What the tests of `irkit serve` share: the token, an Alertmanager group and its POST, and irkit serve queueing
alerts without running them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from irkit import serve

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


def _wait(predicate: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} within {seconds:.0f} s")


@pytest.fixture()
def queue_only(tmp_path: Path):
    """irkit serve taking alerts and queueing them, running none (max_runs 0)."""
    server = serve.Serve(token=TOKEN, state_dir=tmp_path / "state", outputs=tmp_path / "outputs",
                         listen=("127.0.0.1", 0), max_runs=0).start()
    yield server
    server.stop()

