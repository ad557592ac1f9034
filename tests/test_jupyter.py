"""`irkit lab`'s JupyterLab: a sealed run's files are read-only to JupyterLab, whoever runs it (root included), and
the phase notebooks sit where the responder works."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from tornado import web

from irkit import evidence, playbook
from irkit.jupyter import EvidenceContentsManager, notebooks_dir, sealed_run_of


def _sealed(root: Path) -> Path:
    run = root / "outputs" / "INC-1" / "20261201T010000Z"
    run.mkdir(parents=True)
    evidence.write_json(run / "run.json", {"incident": "INC-1", "run_id": run.name, "phases": [1]})
    nbformat.write(nbformat.v4.new_notebook(), run / "01-detect-and-assess.ipynb")
    (run / "data").mkdir()
    (run / "data" / "phase1-error-ratio.csv").write_text("time,value\n")
    evidence.write_manifest(run)
    return run


def test_a_sealed_runs_files_are_read_only_and_cannot_be_saved_renamed_or_deleted(tmp_path: Path):
    run = _sealed(tmp_path)
    contents = EvidenceContentsManager(root_dir=str(tmp_path))
    notebook = "outputs/INC-1/20261201T010000Z/01-detect-and-assess.ipynb"
    model = contents.get(notebook)
    assert model["writable"] is False  # JupyterLab opens it read-only and does not autosave it
    listing = contents.get("outputs/INC-1/20261201T010000Z")
    assert {c["name"]: c["writable"] for c in listing["content"]}["01-detect-and-assess.ipynb"] is False
    before = (run / "01-detect-and-assess.ipynb").read_bytes()
    with pytest.raises(web.HTTPError) as refused:
        contents.save({**model, "content": nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])},
                      notebook)
    assert refused.value.status_code == 403 and "sealed run 20261201T010000Z" in str(refused.value.log_message)
    for attempt in (lambda: contents.delete_file("outputs/INC-1/20261201T010000Z/data/phase1-error-ratio.csv"),
                    lambda: contents.rename_file(notebook, "elsewhere.ipynb"),
                    lambda: contents.rename_file("elsewhere.ipynb", notebook)):
        with pytest.raises(web.HTTPError):
            attempt()
    assert (run / "01-detect-and-assess.ipynb").read_bytes() == before
    assert not any(evidence.verify(run).values())


def test_files_outside_a_sealed_run_stay_writable(tmp_path: Path):
    run = _sealed(tmp_path)
    unsealed = run.parent / "20261201T020000Z-lab"
    unsealed.mkdir()
    (unsealed / "run.json").write_text(json.dumps({"incident": "INC-1"}))
    contents = EvidenceContentsManager(root_dir=str(tmp_path))
    saved = contents.save({"type": "file", "format": "text", "content": "notes"},
                          "outputs/INC-1/20261201T020000Z-lab/notes.txt")
    assert saved["writable"] is True and (unsealed / "notes.txt").read_text() == "notes"
    assert sealed_run_of(unsealed / "notes.txt", tmp_path) is None
    assert sealed_run_of(run / "data" / "phase1-error-ratio.csv", tmp_path) == run


def test_the_phase_notebooks_are_where_the_responder_works_and_a_teams_edited_copy_is_kept(tmp_path: Path):
    first = notebooks_dir(tmp_path)
    assert first == tmp_path / "irkit-notebooks"
    assert sorted(p.name for p in first.iterdir()) == sorted(spec.path.name for spec in playbook.PHASES)
    (first / "02-investigate.ipynb").write_text("{}")  # the team's edit
    assert notebooks_dir(tmp_path) == first and (first / "02-investigate.ipynb").read_text() == "{}"
    checkout = tmp_path / "repo"
    (checkout / "notebooks").mkdir(parents=True)
    for spec in playbook.PHASES:
        (checkout / "notebooks" / spec.path.name).write_text("{}")
    assert notebooks_dir(checkout) == checkout / "notebooks"  # a checkout's own notebooks
