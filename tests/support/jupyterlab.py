"""JupyterLab for the browser tests: its settings (autosave shortened), and waiting until it answers."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path


def lab_env(tmp_path: Path, autosave: int = 2, **extra: str) -> dict[str, str]:
    """The environment of a JupyterLab whose settings, workspaces and runtime live in ``tmp_path``, autosaving
    every ``autosave`` seconds (a test can outlast it several times), without the caller's IRKIT_* variables."""
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosaveInterval": autosave}))
    return {**{k: v for k, v in os.environ.items() if not k.startswith("IRKIT_")},
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
            "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            **extra}


def wait_until_up(port: int | str, token: str, lab: subprocess.Popen[str] | subprocess.Popen[bytes],
                  seconds: float = 60) -> None:
    """Until JupyterLab answers its status API (an AssertionError if it exits or does not within ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=1)
            return
        except OSError:
            assert time.monotonic() < deadline and lab.poll() is None, "JupyterLab did not start"
            time.sleep(0.2)
