"""The committed notebooks run as they are, the way a responder opens them: nbval (lax) in a fresh kernel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from irkit.config import Config
from irkit.phases import PHASES


def test_notebooks_run_as_committed_under_nbval(cfg: Config, tmp_path: Path):
    # A copy in a scratch directory: opened by hand, the notebooks write the day's interactive run beside it.
    for phase in PHASES:
        shutil.copy(phase.path, tmp_path)
    (tmp_path / "irkit.toml").write_text(
        f'[kubernetes]\nkubeconfig = "{cfg.kubeconfig}"\n[postgres]\npg_dsn = "{cfg.pg_dsn}"\n'
        f'[prometheus]\nprom_url = "{cfg.prom_url}"\n[http]\nhealth_endpoints = []\n')
    env = {**os.environ, "IRKIT_CONFIG": str(tmp_path / "irkit.toml")}
    notebooks = [str(tmp_path / phase.path.name) for phase in PHASES]
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                             "--rootdir", str(tmp_path), *notebooks],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    [records] = list((tmp_path / "outputs" / "INC-LOCAL").glob("*-interactive"))  # one run for the five phases
    meta = json.loads((records / "run.json").read_text())  # one of the incident's runs: its timeline counts it
    assert meta["incident"] == "INC-LOCAL" and meta["interactive"] is True
    assert meta["config_path"] == str(tmp_path / "irkit.toml")
    for phase in PHASES:
        record = json.loads((records / f"phase-{phase.number}.json").read_text())
        assert record["finished_at"], f"phase {phase.number} did not reach its last cell"
        assert record["problems"] == [], record["problems"]
