"""Opening evidence must not change it: viewers' files, the kernelspec, "Run All" on a sealed run, a lost config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from irkit import evidence
from irkit.errors import ConfigError
from irkit.phases import PHASES
from irkit.phases.incident import open_incident


def test_the_notebooks_carry_exactly_the_installed_kernelspec():
    installed = KernelSpecManager().get_kernel_spec("python3")
    for phase in PHASES:
        spec = json.loads(phase.path.read_text())["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"], spec["language"]) == (
            "python3", installed.display_name, installed.language), phase.notebook


def _sealed(tmp_path: Path) -> Path:
    run_dir = tmp_path / "INC-1" / "20261130T000000Z"
    run_dir.mkdir(parents=True)
    evidence.write_json(run_dir / "phase-1.json", {"finished_at": "2026-11-30T00:00:01+00:00", "records": {}})
    (run_dir / "01-detect-and-assess.ipynb").write_text("{}")
    evidence.write_manifest(run_dir)
    return run_dir


def test_checkpoints_a_viewer_leaves_are_not_a_change_but_an_edit_still_is(tmp_path: Path):
    run_dir = _sealed(tmp_path)
    checkpoints = run_dir / ".ipynb_checkpoints"
    checkpoints.mkdir()
    (checkpoints / "01-detect-and-assess-checkpoint.ipynb").write_text("{}")
    assert not any(evidence.verify(run_dir).values())
    (run_dir / "01-detect-and-assess.ipynb").write_text('{"edited": true}')
    assert evidence.verify(run_dir)["changed"] == ["01-detect-and-assess.ipynb"]


def test_run_all_on_a_sealed_run_writes_a_new_run_beside_it(tmp_path: Path):
    run_dir = _sealed(tmp_path)
    inc = open_incident("INC-1", 1, run_dir=str(run_dir), config_path="")
    assert inc.run_dir != run_dir and inc.run_dir.parent == run_dir.parent
    assert inc.run_dir.name.startswith("interactive-") and inc.run_dir.name.endswith(run_dir.name)
    inc.finish()
    assert not any(evidence.verify(run_dir).values())  # the sealed run is as it was


def test_a_lost_config_is_one_line_that_says_where_to_fix_it(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        open_incident("INC-1", 1, run_dir=str(tmp_path), config_path=str(tmp_path / "gone" / "irkit.toml"))
    lines = caught.value._render_traceback_()
    assert len(lines) == 1 and "edit config_path in the parameters cell, or set IRKIT_CONFIG" in lines[0]
