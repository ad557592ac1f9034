"""The kernels' files: a private directory of the run, removed afterwards, and what a killed run left removed by
the next one (the kernels themselves are started by the runs in tests/runner/test_run.py)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from irkit.runner import kernels


def test_connection_files_and_sockets_go_to_a_private_directory_removed_after_the_run():
    with kernels.kernel_dir() as manager:
        directory = Path(manager.kernel_dir)
        assert directory.name.startswith(f"irkit-kernels-{os.getpid()}-")
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        km = manager(kernel_name="python3")  # a manager only: no kernel is started
        assert km.transport == "ipc"  # nothing listens on TCP
        assert Path(km.connection_file).parent == directory
    assert not directory.exists()


def test_the_directory_a_killed_run_left_is_removed_and_a_running_ones_is_kept():
    base = Path(tempfile.gettempdir())
    no_such_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # above pid_max: no process has it
    left = base / f"irkit-kernels-{no_such_pid}-left-by-a-killed-run"
    running = base / f"irkit-kernels-{os.getpid()}-of-a-running-run"
    try:
        left.mkdir()
        running.mkdir()
        with kernels.kernel_dir():
            pass
        assert not left.exists() and running.is_dir()
    finally:
        shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(running, ignore_errors=True)
