"""Throwaway copies of the systems irkit investigates, on 127.0.0.1 and free ports.

The test suite and ``irkit drill`` both stand on these: a real PostgreSQL cluster,
a real Prometheus with backfilled history, a Kubernetes API emulator over real HTTP
(built on kmock), Redis, and a small marketplace HTTP service. Each starts in a few
seconds, always stops (context managers), and says which package to install when a
binary is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

from irkit.errors import DrillError

__all__ = ["find_binary", "free_port", "stop_process"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """The path of ``name``, or a DrillError naming the Debian package to install."""
    for directory in extra_dirs:
        candidate = shutil.which(name, path=directory)
        if candidate:
            return candidate
    found = shutil.which(name)
    if found is None:
        raise DrillError(f"{name} is not installed; install it with: apt-get install {package}")
    return found


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None, timeout: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout``; nothing if it is gone already."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
