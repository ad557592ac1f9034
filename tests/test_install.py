"""The plain install runs the runbook: `irkit run` with the drill's and the tests' packages unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from irkit import drill

IRKIT = str(Path(sys.executable).parent / "irkit")
# aiohttp and attrs stay: the kubernetes client and jsonschema need them in the plain install too.
EXTRAS = ("kmock", "pytest", "pytest_asyncio", "nbval", "_pytest", "aiosmtpd", "trustme", "playwright")  # redis is runtime (FLUSHDB)

BLOCKER = f"""
import sys
class _NotInstalled:
    # What `pip install irkit` without extras leaves out: importing any of it fails as if absent.
    blocked = {EXTRAS!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the plain install)", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def _plain_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)  # the kernels papermill starts inherit it too
    return {**os.environ, "PYTHONPATH": str(site)}


def test_irkit_run_needs_no_extra_against_a_drill_started_from_the_drill_install(tmp_path: Path):
    env = _plain_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import kmock"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not in the plain install" in probe.stderr  # the blocker works
    with drill.DrillEnvironment(drill.load_scenario("lock-contention"), workdir=tmp_path / "drill") as running:
        result = subprocess.run([IRKIT, "run", "--incident", "INC-PLAIN", "--phases", "1-3", "--config",
                                 str(running.config_path), "--outputs", str(tmp_path / "out")],
                                env=env, capture_output=True, text=True, timeout=300)
        holder = running.pids["holder"]
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(next((tmp_path / "out").glob("INC-PLAIN/*/summary.json")).read_text())
    assert [p["status"] for p in summary["phases"]] == ["ok", "ok", "ok"], summary["phases"]
    assert summary["findings"][0]["subject"] == f"pid {holder}"
    verify = subprocess.run([IRKIT, "verify", result.stdout.strip()], env=env, capture_output=True)
    assert verify.returncode == 0


def test_irkit_drill_without_its_extra_says_what_to_install(tmp_path: Path):
    result = subprocess.run([IRKIT, "drill", "--list"], env=_plain_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "pip install 'irkit[drill]'" in result.stderr and "Traceback" not in result.stderr
