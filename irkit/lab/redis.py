"""A throwaway Redis (Debian ``redis-server``) on a free port, nothing persisted."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from types import TracebackType

import redis

from irkit.errors import DrillError
from irkit.lab import find_binary, free_port, stop_process

__all__ = ["RedisLab"]


@dataclass
class RedisLab:
    port: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisLab:
        binary = find_binary("redis-server", "redis-server")
        self._root = tempfile.mkdtemp(prefix="irkit-redis-")
        self.port = self.port or free_port()  # a restart keeps its port
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._root, "--logfile", os.path.join(self._root, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise DrillError(f"redis-server exited at start; see {self._root}/redis.log")
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise DrillError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        stop_process(getattr(self, "_proc", None), timeout=5)
        if getattr(self, "_root", None):
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> RedisLab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
