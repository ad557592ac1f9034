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
import time
import urllib.request
from types import TracebackType
from typing import Any

from irkit.errors import DrillError

__all__ = ["ServerProcess", "find_binary", "free_port", "stop_process"]


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


class ServerProcess:
    """A server binary run in a session of its own, its output in ``<root>/<name>.log``; ready when ``ready_url``
    answers 200. Stopping it (also as a context manager) stops the process and removes the root."""

    _root: str
    _proc: subprocess.Popen[bytes]

    def _launch(self, name: str, argv: list[str], ready_url: str, seconds: float = 30.0) -> None:
        self._log = open(f"{self._root}/{name}.log", "w")
        self._proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DrillError(f"{name} exited at start; see {self._log.name}")
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise DrillError(f"{name} did not become ready within {seconds:.0f} s")

    def stop(self) -> None:
        stop_process(getattr(self, "_proc", None))
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if getattr(self, "_root", None):
            shutil.rmtree(self._root, ignore_errors=True)

    def start(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
