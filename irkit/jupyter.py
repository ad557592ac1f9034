"""``irkit lab``: JupyterLab where the responder works, on the incident, and unable to change sealed evidence.

:func:`lab` opens a run for the session (``outputs/<incident>/<UTC time>-lab/``, with its ``run.json``: one of the
incident's runs, so phase 5 and the timeline count what was done in it), puts the phase notebooks where the
responder works (``./notebooks`` when it holds them, else a copy in ``./irkit-notebooks``), and starts JupyterLab
rooted there, on 127.0.0.1, with the incident's configuration (an absolute path) in its kernels' environment,
``--allow-root`` when run as root, and :class:`EvidenceContentsManager`. Ctrl-C stops JupyterLab and seals the
session's run.

:class:`EvidenceContentsManager` is JupyterLab's file manager with one rule: a file inside a sealed run (a
directory holding ``run.json`` and ``manifest.json``) is read-only. JupyterLab is told so (``writable: false``:
it opens the notebook read-only and does not autosave it) and the server refuses a save, rename or delete there
(403) whoever asks, root included; re-running the notebook writes a new run beside it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyter_server.services.contents.largefilemanager import LargeFileManager
from tornado import web

from irkit import config as irconfig
from irkit import playbook
from irkit.errors import ParameterError
from irkit.evidence.rundir import RunDir, make_dir
from irkit.phases.incident import interactive_run

__all__ = ["EvidenceContentsManager", "lab", "notebooks_dir", "sealed_run_of"]


def sealed_run_of(path: Path, root: Path) -> Path | None:
    """The sealed run ``path`` lies in (``path`` itself, or a directory above it up to ``root``), or None."""
    for directory in [path, *path.parents]:
        files = RunDir(directory)
        if files.manifest.is_file() and files.run_json.is_file():
            return directory
        if directory == root or directory == directory.parent:
            return None
    return None


class EvidenceContentsManager(LargeFileManager):
    """JupyterLab's contents, with every file of a sealed run read-only (see the module's docstring)."""

    def _sealed(self, path: str) -> Path | None:
        return sealed_run_of(Path(self._get_os_path(path.strip("/"))), Path(self.root_dir))

    def _refuse(self, path: str, what: str) -> None:
        run = self._sealed(path)
        if run is not None:
            raise web.HTTPError(403, f"{path} is evidence of the sealed run {run.name}: it is not {what}. "
                                     "Re-running its notebook writes a new run beside it.")

    def get(self, path: Any, content: Any = True, type: Any = None, format: Any = None,
            require_hash: Any = False) -> Any:
        model: dict[str, Any] = super().get(path, content=content, type=type, format=format,
                                            require_hash=require_hash)
        if self._sealed(path) is not None:
            model["writable"] = False
        if model.get("type") == "directory" and isinstance(model.get("content"), list):
            for child in model["content"]:
                if child.get("writable") and self._sealed(child["path"]) is not None:
                    child["writable"] = False
        return model

    def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        self._refuse(path, "saved")
        saved: dict[str, Any] = super().save(model, path)
        return saved

    def delete_file(self, path: str) -> None:
        self._refuse(path, "deleted")
        super().delete_file(path)

    def rename_file(self, old_path: str, new_path: str) -> None:
        self._refuse(old_path, "renamed")
        self._refuse(new_path, "overwritten")
        super().rename_file(old_path, new_path)


def notebooks_dir(work: Path) -> Path:
    """Where the responder opens the phase notebooks: ``./notebooks`` when it holds them (a checkout), else
    ``./irkit-notebooks``, a copy made the first time (an existing copy is kept: it may hold the team's edits)."""
    names = [p.path.name for p in playbook.PHASES]
    if all((work / "notebooks" / name).is_file() for name in names):
        return work / "notebooks"
    target = make_dir(work / "irkit-notebooks", 0o755)
    for spec in playbook.PHASES:
        if not (target / spec.path.name).exists():
            shutil.copyfile(spec.path, target / spec.path.name)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lab(incident: str, *, config_path: str = "", defaults: bool = False, outputs: str = "outputs",
        context: Mapping[str, Any] | None = None, port: int = 0, browser: bool = False,
        say: Callable[[str], None] = print, work: Path | None = None) -> Path:
    """Start JupyterLab for ``incident`` (see the module's docstring) and wait for it; the session's run
    directory, sealed, once JupyterLab has stopped (Ctrl-C)."""
    from irkit import runner  # the same checks as irkit run, and its sealing

    work = (work or Path.cwd()).absolute()
    source = irconfig.locate(config_path or None)
    if source is None and not defaults and not irconfig.env_targets():
        raise ParameterError("no configuration: without --config, IRKIT_CONFIG, ./irkit.toml or an IRKIT_<KEY> "
                             "variable the notebooks would ask the playbook's built-in names; write one with irkit "
                             "init, or pass --defaults to mean them")
    if source is not None and not source.is_file():
        raise ParameterError(f"--config {str(source)[:60]!r}: no such file")
    irconfig.load(source)  # a bad key is one line now, not a traceback in every notebook
    if str(outputs).startswith("s3://"):
        raise ParameterError("irkit lab keeps its run in a directory: name one with --outputs (irkit run copies "
                             "runs to s3://)")
    run_dir = interactive_run(Path(outputs).absolute() / incident / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-lab",
                              incident, source, **dict(context or {}))
    notebooks = notebooks_dir(work)
    port = port or _free_port()
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "IRKIT_INCIDENT": incident, "IRKIT_RUN_DIR": str(run_dir),
           "IRKIT_OUTPUTS": str(Path(outputs).absolute()), **({"IRKIT_CONFIG": str(source)} if source else {})}
    command = [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.root_dir={work}", f"--IdentityProvider.token={token}",
               f"--ServerApp.contents_manager_class={EvidenceContentsManager.__module__}."
               f"{EvidenceContentsManager.__name__}",
               *(() if browser else ("--no-browser",)), *(("--allow-root",) if os.geteuid() == 0 else ())]
    relative = notebooks.relative_to(work)
    say(f"irkit lab: incident {incident}; this session's run: {run_dir}\n"
        f"  open   http://127.0.0.1:{port}/lab/tree/{relative.as_posix()}?token={token}\n"
        f"  config {source or 'the playbook built-in names (--defaults)'}\n"
        "  Ctrl-C stops JupyterLab and seals the session's run")
    proc = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.DEVNULL)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if any(RunDir(run_dir).phases_recorded()):
        runner.seal(run_dir, irconfig.load(source).evidence_group)
        say(f"irkit lab: sealed {run_dir}")
    return run_dir
