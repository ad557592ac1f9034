"""`irkit run` end to end: the five notebooks execute against the real test services."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from irkit import cli, evidence, runner
from irkit.config import Config
from irkit.errors import ParameterError


@pytest.fixture(scope="module")
def run_result(cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> runner.RunResult:
    root = tmp_path_factory.mktemp("run")
    toml = root / "irkit.toml"
    toml.write_text(f'[kubernetes]\nkubeconfig = "{cfg.kubeconfig}"\n[postgres]\npg_dsn = "{cfg.pg_dsn}"\n'
                    f'[prometheus]\nprom_url = "{cfg.prom_url}"\n[http]\nhealth_endpoints = []\n')
    return runner.run("INC-TEST", config_path=str(toml), outputs=root / "outputs",
                      params={"window_minutes": "90"})


def test_every_phase_ran_and_left_its_notebook(run_result: runner.RunResult):
    statuses = {p["phase"]: p["status"] for p in run_result.summary["phases"]}
    assert statuses == {1: "ok", 2: "ok", 3: "ok", 4: "ok", 5: "ok"}, run_result.summary["phases"]
    for name in runner.PHASES.values():
        assert (run_result.run_dir / f"{name}.ipynb").exists()


def test_summary_names_what_the_seeded_situation_put_there(run_result: runner.RunResult):
    summary = json.loads((run_result.run_dir / "summary.json").read_text())
    kinds = [(f["kind"], f["subject"]) for f in summary["findings"]]
    assert kinds[0] == ("bad-revision", "backend-deployment")  # the cause comes first
    assert ("error-spike", "backend") in kinds
    assert summary["severity"]["name"] == "SEV-1"  # no backend pod is ready: an outage
    assert any(m["action"] == "rollout-undo" for m in summary["mitigations"])
    assert summary["recovery"]["recovered"] is False


def test_manifest_verifies_and_detects_tampering(run_result: runner.RunResult):
    assert evidence.verify(run_result.run_dir) == {"changed": [], "added": [], "removed": []}
    postmortem = run_result.run_dir / "postmortem.md"
    assert postmortem.read_text().startswith("# Incident Post-Mortem: INC-TEST")
    original = postmortem.read_text()
    postmortem.write_text(original + "\nedited")
    try:
        assert cli.main(["verify", str(run_result.run_dir)]) == 1
        assert evidence.verify(run_result.run_dir)["changed"] == ["postmortem.md"]
    finally:
        postmortem.write_text(original)


def test_report_is_self_contained(run_result: runner.RunResult):
    report = (run_result.run_dir / "report.html").read_text()
    assert report.count("Plotly.newPlot") >= 3
    assert re.search(r"<script[^>]*\ssrc=", report) is None  # nothing fetched: opens offline
    assert report.count("Plotly.newPlot") >= 3
    assert report.count("plotly.js v") <= 2  # plotly.js inlined once (its banner names it)


@pytest.mark.parametrize(("params", "message"), [
    ({"windw_minutes": "5"}, "unknown parameter 'windw_minutes'.*window_minutes"),
    ({"window_minutes": "soon"}, "must be int"),
    ({"pg_password": "x"}, "looks like a secret.*IRKIT_PG_PASSWORD"),
    ({"log_tail": "postgresql://u:pw@h/db"}, "looks like a secret"),
])
def test_bad_parameters_are_refused_before_anything_runs(params: dict[str, str], message: str, tmp_path: Path):
    with pytest.raises(ParameterError, match=message):
        runner.run("INC-BAD", params=params, outputs=tmp_path)
    assert not any(tmp_path.iterdir())
