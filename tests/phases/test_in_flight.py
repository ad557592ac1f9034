"""A run killed while a confirmed step is being applied leaves evidence that says the step was in flight.

The change reaches its target (the circuit breaker's endpoint receives the POST), and the run dies before the
answer: with ``kill -9`` (a lost node: nothing seals the run) and with SIGTERM (a Job stopped: the run seals
what it has). Either way the sealed evidence must not read "planned": the step is ``applying`` in
``phase-3.json`` and ``summary.json``, and ``irkit seal`` and ``irkit run`` say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from irkit import drill, evidence, runner
from irkit.evidence import records as R

IRKIT = str(Path(sys.executable).parent / "irkit")
INCIDENT = "INC-FLIGHT"


class _Holding(BaseHTTPRequestHandler):
    """Takes the POST (the circuit breaker is open from now on), then keeps the answer until released."""

    received = threading.Event()
    release = threading.Event()

    def do_POST(self) -> None:
        _Holding.received.set()
        _Holding.release.wait(60)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def holding_breaker() -> Iterator[str]:
    _Holding.received.clear()
    _Holding.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Holding)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/admin/circuit-breaker/enable"
    _Holding.release.set()
    server.shutdown()


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (the kernels papermill started in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _apply(config: Path, outputs: Path, step_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen([IRKIT, "run", "--incident", INCIDENT, "--phases", "2-3", "--config", str(config),
                             "--outputs", str(outputs), "-p", "execute_mitigations", "true",
                             "-p", "confirm", f"{INCIDENT}:{step_id}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _newest(outputs: Path) -> Path:
    return max((outputs / INCIDENT).iterdir(), key=lambda p: p.name)


def _in_flight(run_dir: Path, step_id: str) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(a["id"], a["status"]) for a in summary["actions"]] == [(step_id, "applying")]
    outcome = R.RunRecords(run_dir).get(R.OUTCOMES)[-1]
    assert outcome.status == "applying" and outcome.confirmation["by"]
    assert not any(evidence.verify(run_dir).values())


@pytest.mark.timeout(420)
def test_a_step_in_flight_when_the_run_is_killed_or_stopped_is_in_the_sealed_evidence(
        holding_breaker: str, tmp_path: Path):
    with drill.DrillEnvironment(drill.load_scenario("upstream-timeouts")) as env:
        config = tmp_path / "irkit.toml"
        config.write_text(env.config_path.read_text().replace(
            f'"{env.marketplace.url}/admin/circuit-breaker/enable"', json.dumps(holding_breaker)))
        outputs = tmp_path / "outputs"
        planned = runner.run(INCIDENT, [2, 3], config_path=str(config), outputs=outputs)
        step = next(s for s in R.RunRecords(planned.run_dir).get(R.STEPS) if s.action == "enable-circuit-breaker")

        # kill -9 of irkit and its kernels once the POST has reached the endpoint: nothing seals the run.
        killed = _apply(config, outputs, step.id)
        assert _Holding.received.wait(180), "the confirmed step never reached its target"
        for pid in [*_descendants(killed.pid), killed.pid]:
            os.kill(pid, signal.SIGKILL)
        killed.wait(30)
        run_dir = _newest(outputs)
        assert "unfinished" in evidence.verify(run_dir)
        sealed = subprocess.run([IRKIT, "seal", str(run_dir)], capture_output=True, text=True, timeout=120)
        assert sealed.returncode == 0, sealed.stderr
        assert "applied or in flight when the run stopped" in sealed.stderr and step.id in sealed.stderr
        _in_flight(run_dir, step.id)

        # SIGTERM (a Job stopped): the run seals what it has, and says what was in flight.
        _Holding.received.clear()
        stopped = _apply(config, outputs, step.id)
        assert _Holding.received.wait(180), "the confirmed step never reached its target"
        stopped.send_signal(signal.SIGTERM)
        _, stderr = stopped.communicate(timeout=120)
        assert stopped.returncode == 130, stderr
        assert "applied or in flight when it stopped" in stderr and step.id in stderr
        run_dir = _newest(outputs)
        _in_flight(run_dir, step.id)
        _Holding.release.set()  # the endpoint answers now: a kernel left behind must not write into the sealed run
        time.sleep(3)
        assert not any(evidence.verify(run_dir).values())
