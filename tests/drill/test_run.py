"""A drill run by `irkit drill`: with --execute-mitigations, the plan of a first run confirmed and applied, and the
scenario recovers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.drill.test_environment import IRKIT


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

