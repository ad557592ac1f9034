"""The drill's system: up on free ports, left up with --keep-running, and everything it started stopped on Ctrl-C
or when a binary it needs is missing."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

IRKIT = str(Path(sys.executable).parent / "irkit")


_PORT = re.compile(r"^(postgresql|redis|marketplace|prometheus|kubernetes)\s+\S*?127\.0\.0\.1:(\d+)", re.MULTILINE)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ports(stderr: str) -> dict[str, int]:
    return {name: int(port) for name, port in _PORT.findall(stderr)}


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
    try:
        _, rest = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # where it is stuck: irkit prints every thread's stack on SIGUSR1
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGKILL)
        _, rest = proc.communicate(timeout=10)
        raise AssertionError(f"still running 60 s after Ctrl-C:\n{(seen + rest)[-6000:]}") from None
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


def test_keep_running_leaves_the_environment_up_and_its_printed_lines_work_in_a_fresh_shell(tmp_path: Path):
    proc = subprocess.Popen([IRKIT, "drill", "false-alarm", "--keep-running", "--incident", "DRILL-mine",
                             "--outputs", str(tmp_path)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "Ctrl-C stops it" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stderr.readline()
    lines = dict(re.findall(r"^\s+(notebooks|validate|post-mortem)\s+(.+)$", seen, re.MULTILINE))
    assert set(lines) == {"notebooks", "validate", "post-mortem"}, seen[-2000:]
    ports = _ports(seen)
    assert all(_listening(port) for port in ports.values()), "the environment should still be up"
    # The printed line, pasted as is into a shell that has nothing of the drill: no IRKIT_*, another directory.
    argv = shlex.split(lines["validate"])
    assert argv[argv.index("--incident") + 1] == "DRILL-mine"  # the drill's real incident, not DRILL-<scenario>
    config = argv[argv.index("--config") + 1]
    elsewhere = tmp_path / "another-shell"
    elsewhere.mkdir()
    fresh = {k: v for k, v in os.environ.items() if not k.startswith("IRKIT_")}
    run = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=elsewhere, env=fresh)
    assert run.returncode in (0, 3), run.stderr[-2000:]  # a false alarm: recovered, or a signal it cannot measure
    run_dir = Path(run.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "DRILL-mine"
    drilled = json.loads(next((tmp_path / "DRILL-mine").glob("*/drill.json")).parent.joinpath("run.json").read_text())
    assert json.loads((run_dir / "run.json").read_text())["drill"] == drilled["drill"]  # linked to its drill
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "every drill service is stopped" in rest
    assert not [n for n, port in ports.items() if _listening(port)]
    assert not Path(config).exists()  # the drill's kubeconfig and irkit.toml went with it



def test_a_scheduled_actor_rebreaks_a_rollback_until_it_is_suspended(tmp_path: Path):
    import os
    import subprocess as sp
    import time as clock

    from irkit import drill
    text = (drill.SCENARIO_DIR / "crashloop-after-deploy.toml").read_text().replace("[cluster]\n", """[cluster]
[[cluster.cronjobs]]
name = "pin-release"
schedule = "*/5 * * * *"
every = "1s"
reapplies = { deployment = "backend-deployment", image = "marketplace/backend:1.43.0" }
""", 1)
    path = tmp_path / "pinned.toml"
    path.write_text(text)
    scenario = drill.load_scenario(path)
    with drill.DrillEnvironment(scenario) as env:
        kubectl = {**os.environ, "KUBECONFIG": str(env.kubeconfig)}

        def image() -> str:
            [dep] = env.kube.objects("deployments", group="apps", name="backend-deployment")
            return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

        def run(*argv: str) -> None:
            done = sp.run(["kubectl", *argv, "-n", scenario.namespace], capture_output=True, text=True, timeout=30,
                          env=kubectl)
            assert done.returncode == 0, done.stderr

        run("rollout", "undo", "deployment/backend-deployment")
        assert image() == "marketplace/backend:1.42.0"
        deadline = clock.monotonic() + 10
        while image() != "marketplace/backend:1.43.0" and clock.monotonic() < deadline:
            clock.sleep(0.2)
        assert image() == "marketplace/backend:1.43.0"  # the actor put the bad release back
        [dep] = env.kube.objects("deployments", group="apps", name="backend-deployment")
        assert dep["metadata"]["managedFields"][-1]["manager"] == "pin-release"  # and the API says who
        assert not env.cause_gone()
        run("patch", "cronjob/pin-release", "-p", '{"spec":{"suspend":true}}')
        run("rollout", "undo", "deployment/backend-deployment")
        clock.sleep(3)
        assert image() == "marketplace/backend:1.42.0"  # suspended: the rollback lasts
        deadline = clock.monotonic() + 10
        while not env.cause_gone() and clock.monotonic() < deadline:
            clock.sleep(0.2)
        assert env.cause_gone()
