"""`irkit drill`: every built-in scenario runs end to end and the runbook finds its ground truth."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from irkit import drill
from irkit.errors import ScenarioError

IRKIT = str(Path(sys.executable).parent / "irkit")
_PORT = re.compile(r"^(postgresql|redis|marketplace|prometheus|kubernetes)\s+\S*?127\.0\.0\.1:(\d+)", re.MULTILINE)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ports(stderr: str) -> dict[str, int]:
    return {name: int(port) for name, port in _PORT.findall(stderr)}


# Three scenarios (a cause found and acted on, a bad deploy, a false alarm) run all five phases; the others
# phases 1-4, all the ground truth needs (the post-mortem costs seconds per drill and is tested by these three).
FULL = {"lock-contention", "crashloop-after-deploy", "false-alarm"}


@pytest.mark.parametrize("name", sorted(drill.scenarios()))
def test_drill_finds_the_ground_truth(name: str, tmp_path: Path):
    phases = [] if name in FULL else ["--phases", "1-4"]
    result = subprocess.run([IRKIT, "drill", name, "--check", *phases, "--outputs", str(tmp_path)],
                            capture_output=True, text=True, timeout=180, cwd=tmp_path)
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
    assert subprocess.run([IRKIT, "verify", str(run_dir)], capture_output=True).returncode == 0
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


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_everything_the_drill_started(tmp_path: Path):
    proc = subprocess.Popen([IRKIT, "drill", "slow-queries", "--outputs", str(tmp_path)], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True)
    seen = ""
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while "phase 2 02-investigate: running" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    started = _descendants(proc.pid)
    assert started, "the drill had started nothing"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    _, rest = proc.communicate(timeout=60)
    seen += rest
    assert proc.returncode == 130, seen[-2000:]
    assert "everything started was stopped" in seen
    # What was collected before the interruption is kept and sealed.
    summary = json.loads(next(tmp_path.glob("DRILL-slow-queries/*/summary.json")).read_text())
    statuses = [p["status"] for p in summary["phases"]]
    # Only the phase that was running is interrupted; those that never started are skipped.
    assert statuses == ["ok", "interrupted", "skipped", "skipped", "skipped"], summary["phases"]
    assert summary["severity"]["name"] == "SEV-2"  # phase 1's assessment survived
    run_dir = next(tmp_path.glob("DRILL-slow-queries/*"))
    assert subprocess.run([IRKIT, "verify", str(run_dir)], capture_output=True).returncode == 0
    deadline = time.monotonic() + 5  # a process may take a moment to exit after its parent
    while [pid for pid in started if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for pid in started if _alive(pid)]
    assert not left, f"processes left behind: {left}"
    assert not [n for n, port in _ports(seen).items() if _listening(port)]


def test_list_shows_every_scenario_with_its_truth():
    out = subprocess.run([IRKIT, "drill", "--list"], capture_output=True, text=True, check=True).stdout
    for name in drill.scenarios():
        assert name in out
    assert re.search(r"false-alarm\s+not an incident", out)
    assert re.search(r"lock-contention\s+SEV-2", out)


def _truth(severity: str = "SEV-2") -> drill.Truth:
    return drill.Truth(real=True, severity=severity, root={"kind": "lock-root", "subject": "pid {holder}"},
                       mitigation={"action": "terminate-backend", "target": "pid {holder}"})


def _summary(**changes: object) -> dict[str, object]:
    summary: dict[str, object] = {
        "phases": [{"phase": 1, "name": "01-detect-and-assess", "status": "ok"}],
        "severity": {"name": "SEV-2"}, "real": True,
        "findings": [{"kind": "lock-root", "subject": "pid 42", "detail": ""}],
        "mitigations": [{"action": "terminate-backend", "target": "pid 42"}],
    }
    summary.update(changes)
    return summary


def test_check_accepts_the_truth_with_session_pids_resolved():
    assert drill.check(_summary(), _truth(), {"holder": 42}) == []


@pytest.mark.parametrize(("changes", "expected"), [
    ({"severity": {"name": "SEV-3"}}, "severity: expected SEV-2, got SEV-3"),
    ({"findings": [{"kind": "error-spike", "subject": "backend"}]}, "first finding: expected lock-root pid 42"),
    ({"findings": [{"kind": "lock-root", "subject": "pid 43"}]}, "got lock-root pid 43"),
    ({"findings": []}, "got no findings"),
    ({"mitigations": []}, "first mitigation: expected terminate-backend pid 42, got nothing planned"),
    ({"real": False}, "real incident: expected True"),
    ({"phases": [{"phase": 2, "name": "02-investigate", "status": "failed", "error": "boom"}]}, "phase 2"),
])
def test_check_names_every_difference(changes: dict[str, object], expected: str):
    problems = drill.check(_summary(**changes), _truth(), {"holder": 42})
    assert any(expected in p for p in problems), problems


def test_check_of_a_false_alarm_refuses_any_plan():
    truth = drill.Truth(real=False, severity="SEV-4")
    assert drill.check(_summary(severity={"name": "SEV-4"}, real=False, mitigations=[]), truth, {}) == []
    problems = drill.check(_summary(severity={"name": "SEV-4"}, real=False), truth, {})
    assert problems == ["mitigation: expected none, got terminate-backend pid 42"]


SCENARIO = Path(drill.SCENARIO_DIR / "lock-contention.toml").read_text()


@pytest.mark.parametrize(("edit", "message"), [
    (("severity = \"SEV-2\"", "severity = \"SEV-9\""), r"\[truth\]: severity 'SEV-9' must be one of SEV-1"),
    (("pid {holder}\" }\n", "pid {holdr}\" }\n"), r"\{holdr\} names no session; sessions: holder"),
    (("start = \"-25m\"", "start = \"25 minutes\""), r"'25 minutes' is not an offset like -3h"),
    (("error_ratio = 0.12", "error_ratio = 12"), r"error_ratio 12.0 must be between 0 and 1"),
    (("[marketplace]", "[config]\nnamespce = \"x\"\n\n[marketplace]"), r"namespce"),
    (("[marketplace]", "[parameters]\nwindow = 5\n\n[marketplace]"), r"unknown parameter 'window'"),
    (("title = ", "titel = "), r"unknown key\(s\) titel"),
    (("backend_up = true", "backend_upp = true"), r"\[marketplace\]: unknown key\(s\) backend_upp; valid: backend_up"),
    (("p95_seconds = 2.5", "p95 = 2.5"), r"segment 2: unknown key\(s\) p95"),
    (('state = "running", logs', 'state = "sleeping", logs'), r"\[cluster\]: unknown pod state 'sleeping'"),
    (('name = "frontend-deployment"', 'nmae = "frontend-deployment"'), r"\[cluster\]: missing key 'name'"),
])
def test_a_malformed_scenario_names_the_key_to_fix(edit: tuple[str, str], message: str, tmp_path: Path):
    assert edit[0] in SCENARIO
    path = tmp_path / "mine.toml"
    path.write_text(SCENARIO.replace(edit[0], edit[1], 1))
    with pytest.raises(ScenarioError, match=message) as info:
        drill.load_scenario(path)
    assert str(path) in str(info.value)


def test_an_unknown_scenario_lists_the_built_in_ones():
    with pytest.raises(ScenarioError, match="use one of .*lock-contention"):
        drill.load_scenario("lock-contentoin")


def test_a_missing_binary_names_the_package_and_stops_what_had_started(tmp_path: Path):
    bin_dir = tmp_path / "bin"  # everything the drill needs except Prometheus
    bin_dir.mkdir()
    for name in ("runuser", "redis-server"):
        (bin_dir / name).symlink_to(shutil.which(name) or f"/usr/bin/{name}")
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}"}
    result = subprocess.run([IRKIT, "drill", "lock-contention", "--outputs", str(tmp_path)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert "prometheus is not installed; install it with: apt-get install prometheus" in result.stderr
    ports = _ports(result.stderr)
    assert "postgresql" in ports and not _listening(ports["postgresql"])


def test_keep_running_leaves_the_environment_up_until_ctrl_c(tmp_path: Path):
    proc = subprocess.Popen([IRKIT, "drill", "false-alarm", "--keep-running", "--outputs", str(tmp_path)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "Ctrl-C stops it" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stderr.readline()
    config = re.search(r"IRKIT_CONFIG=(\S+)", seen)
    assert config, seen[-2000:]
    ports = _ports(seen)
    assert all(_listening(port) for port in ports.values()), "the environment should still be up"
    # The printed command works against it: the config names every service.
    run = subprocess.run([IRKIT, "run", "--incident", "BY-HAND", "--phases", "1", "--config", config.group(1),
                          "--outputs", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "every drill service is stopped" in rest
    assert not [n for n, port in ports.items() if _listening(port)]
    assert not Path(config.group(1)).exists()  # the drill's kubeconfig and irkit.toml went with it


def test_a_scenario_file_of_ones_own_is_loaded_by_path(tmp_path: Path):
    path = tmp_path / "checkout-locks.toml"
    path.write_text(SCENARIO.replace('title = "Order updates', 'title = "Checkout updates'))
    scenario = drill.load_scenario(str(path))
    assert scenario.name == "checkout-locks" and scenario.title.startswith("Checkout updates")
    assert [s.name for s in scenario.sessions] == ["holder", "waiter-1", "waiter-2", "waiter-3"]
    assert scenario.live["backend"].error_ratio == 0.12  # the last segment goes on live


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


def test_execute_mitigations_applies_the_confirmed_plan_and_the_scenario_recovers(tmp_path: Path):
    result = subprocess.run([IRKIT, "drill", "oom-frontend", "--execute-mitigations", "--check", "--phases", "1-4",
                             "--outputs", str(tmp_path)], capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["recovery"]["recovered"] is True
    phase3 = json.loads((run_dir / "phase-3.json").read_text())["records"]
    [outcome] = phase3["outcomes"]
    [step] = phase3["steps"]
    assert step["action"] == "raise-memory-limit" and step["target"] == "deployment/frontend-deployment"
    assert step["dry_run"].startswith("accepted by the API server")
    assert outcome["status"] == "applied" and outcome["confirmation"]["incident"] == "DRILL-oom-frontend"
    assert outcome["confirmation"]["ids"] == [step["id"]] and outcome["confirmation"]["via"] == "parameter"
    assert summary["mitigations"][0]["status"] == "applied"
    # The plan came from a first run of phases 2-3 that changed nothing: its one step is a dry run.
    first = sorted(p for p in run_dir.parent.iterdir() if p.is_dir() and p != run_dir)[0]
    [dry] = json.loads((first / "phase-3.json").read_text())["records"]["outcomes"]
    assert dry["status"] == "dry-run" and dry["id"] == step["id"]


def test_the_printed_apply_line_pasted_as_is_applies_the_reviewed_plan(tmp_path: Path):
    """`irkit run` prints the line that applies what it prepared; a responder pastes it after review."""
    import shlex

    with drill.DrillEnvironment(drill.load_scenario("lock-contention")) as env:
        first = subprocess.run([IRKIT, "run", "--incident", "INC-PASTE", "--phases", "2-3", "--config",
                                str(env.config_path), "--outputs", str(tmp_path)], capture_output=True, text=True,
                               timeout=300, cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-2000:]
        assert not any(h.finished for h in env.postgres.held[1:])  # preparing changed nothing: they still queue
        said = next(x for x in first.stderr.splitlines() if x.startswith("to apply after review"))
        line = said.split(": ", 1)[1]
        argv = shlex.split(line)
        assert argv[:2] == ["irkit", "run"] and "INC-PASTE:terminate-backend-" in line
        second = subprocess.run([IRKIT, *argv[1:]], capture_output=True, text=True, timeout=400, cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-2000:]
        summary = json.loads((Path(second.stdout.strip().splitlines()[-1]) / "summary.json").read_text())
        assert [a["status"] for a in summary["actions"]] == ["applied"]
        assert summary["recovery"]["recovered"] is True
        assert all(h.finished for h in env.postgres.held)  # the queue behind the lock drained
        assert _status(f"{env.marketplace.url}/orders/health-check") == 200
        assert _error_share(env.marketplace.url) == pytest.approx(0.01, abs=0.005)  # back to the baseline
