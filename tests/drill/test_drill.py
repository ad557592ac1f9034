"""`irkit drill`: every built-in scenario runs end to end and the runbook finds its ground truth."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from irkit import drill, evidence
from tests.drill.test_environment import IRKIT, _listening, _ports

# Three scenarios (a cause found and acted on, a bad deploy, a false alarm) run all five phases; the others
# phases 1-4, all the ground truth needs (the post-mortem costs seconds per drill and is tested by these three).
FULL = {"lock-contention", "crashloop-after-deploy", "false-alarm"}


# Drills mostly wait (on kernels, on Prometheus, on the settle windows): four run side by side, all of them once
# for the module, and each test then reads its own drill's result.
SIDE_BY_SIDE = 4


@pytest.fixture(scope="module")
def drills(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    from concurrent.futures import ThreadPoolExecutor

    def run(name: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        where = places[name]
        phases = [] if name in FULL else ["--phases", "1-4"]
        argv = [IRKIT, "drill", name, "--check", *phases, "--outputs", str(where)]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=where), where
        except Exception as exc:  # one drill's failure is its own test's, not every drill's
            said = getattr(exc, "stderr", None) or ""
            said = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
            return subprocess.CompletedProcess(argv, -1, "", f"{said}\n{type(exc).__name__}: {exc}"), where

    # The scenarios this session selected (-k picks a few: only those run).
    names = sorted({item.callspec.params["name"] for item in request.session.items
                    if getattr(item, "originalname", "") == "test_drill_finds_the_ground_truth"})
    places = {name: tmp_path_factory.mktemp(name) for name in names}  # here: the factory is not thread-safe
    with ThreadPoolExecutor(SIDE_BY_SIDE) as pool:
        return dict(zip(names, pool.map(run, names), strict=True))


# The first test waits for the module's drills (minutes); pytest-timeout counts that setup as its own time.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sorted(drill.scenarios()))
def test_drill_finds_the_ground_truth(name: str, drills: dict[str, tuple[subprocess.CompletedProcess[str], Path]]):
    result, _ = drills[name]
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    record = json.loads((run_dir / "drill.json").read_text())
    assert record["differences"] == []
    summary = json.loads((run_dir / "summary.json").read_text())
    truth = drill.load_scenario(name).truth
    assert summary["severity"]["name"] == truth.severity
    if truth.root:
        assert summary["findings"][0]["kind"] == truth.root["kind"]
    assert bool(summary["mitigations"]) is (truth.mitigation is not None)
    # The sealed evidence verifies (what `irkit verify` checks; its command line is tested with the CLI's).
    assert not any(evidence.verify(run_dir).values()), evidence.verify(run_dir)
    if name in FULL:  # five phases: the timeline, the outbox with every template, the post-mortem
        timeline = json.loads((run_dir / "timeline.json").read_text())
        kinds = {e["kind"] for e in timeline["events"]}
        assert "run" in kinds and ("finding" in kinds or not truth.root)
        assert not any("phase" in e["text"] and "started" in e["text"] for e in timeline["events"])
        sent = [json.loads(p.read_text()) for p in sorted((run_dir / "outbox").glob("*.json"))]
        assert all(m["status"] in ("outbox", "draft") for m in sent)  # nothing left the machine
        if truth.real:
            assert {m["stage"] for m in sent} == {"initial", "resolution"}
            assert {m["channel"] for m in sent} >= {"email", "slack", "statuspage"}
        else:
            assert sent == []  # a false alarm announces nothing
        text = (run_dir / "postmortem.md").read_text()
        for section in ("## Summary", "## Timeline", "## Root Cause", "## Resolution", "## Action Items",
                        "## Lessons Learned"):
            assert section in text, section
    ports = _ports(result.stderr)
    assert {"postgresql", "marketplace", "prometheus", "kubernetes"} <= set(ports), result.stderr
    assert not [n for n, port in ports.items() if _listening(port)], "a drill service is still running"


def test_list_shows_every_scenario_with_its_truth():
    out = subprocess.run([IRKIT, "drill", "--list"], capture_output=True, text=True, check=True).stdout
    for name in drill.scenarios():
        assert name in out
    assert re.search(r"false-alarm\s+not an incident", out)
    assert re.search(r"lock-contention\s+SEV-2", out)


def _error_share(url: str, seconds: float = 1.0) -> float:
    def counts() -> tuple[float, float]:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
            lines = dict(line.rsplit(" ", 1) for line in resp.read().decode().splitlines()
                         if line.startswith('http_requests_total{service="backend"'))
        total = sum(float(v) for v in lines.values())
        return total, total - float(lines['http_requests_total{service="backend",status="200"}'])

    total0, errors0 = counts()
    time.sleep(seconds)
    total1, errors1 = counts()
    return (errors1 - errors0) / (total1 - total0)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_printed_apply_line_pasted_as_is_applies_the_reviewed_plan(tmp_path: Path):
    """`irkit run` prints the line that applies what it prepared; a responder pastes it after review, in another
    shell: the configuration came from IRKIT_CONFIG, and the line carries it (an absolute path) all the same."""
    import os
    import shlex

    with drill.DrillEnvironment(drill.load_scenario("lock-contention")) as env:
        shell_env = {k: v for k, v in os.environ.items() if not k.startswith("IRKIT_")}
        first = subprocess.run([IRKIT, "run", "--incident", "INC-PASTE", "--phases", "2-3", "--outputs", "out"],
                               capture_output=True, text=True, timeout=300, cwd=tmp_path,
                               env={**shell_env, "IRKIT_CONFIG": str(env.config_path)})
        assert first.returncode == 0, first.stderr[-2000:]
        assert not any(h.finished for h in env.postgres.held[1:])  # preparing changed nothing: they still queue
        [planned] = list((tmp_path / "out" / "INC-PASTE").glob("*/run.json"))
        assert json.loads(planned.read_text())["config_path"] == str(env.config_path)  # the file read, from the env
        said = next(x for x in first.stderr.splitlines() if x.startswith("to apply after review"))
        line = said.split(": ", 1)[1]
        argv = shlex.split(line)
        assert Path(argv[0]).samefile(IRKIT) and argv[1] == "run" and "INC-PASTE:terminate-backend-" in line
        assert argv[argv.index("--config") + 1] == str(env.config_path)
        assert argv[argv.index("--outputs") + 1] == str(tmp_path / "out")
        elsewhere = tmp_path / "another-shell"
        elsewhere.mkdir()
        second = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=elsewhere, env=shell_env)
        assert second.returncode == 0, second.stderr[-2000:]
        summary = json.loads((Path(second.stdout.strip().splitlines()[-1]) / "summary.json").read_text())
        assert [a["status"] for a in summary["actions"]] == ["applied"]
        assert summary["recovery"]["recovered"] is True
        assert all(h.finished for h in env.postgres.held)  # the queue behind the lock drained
        assert _status(f"{env.marketplace.url}/orders/health-check") == 200
        assert _error_share(env.marketplace.url) == pytest.approx(0.01, abs=0.005)  # back to the baseline

