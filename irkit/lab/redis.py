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
    """``password``: Redis requires it (``requirepass``): a client without it is answered ``NOAUTH
    Authentication required.``; ``maxmemory``: a limit with ``noeviction``, so that writes past it are answered
    ``OOM command not allowed when used memory > 'maxmemory'.`` (:meth:`fill` reaches it)."""

    port: int = 0
    password: str = ""
    maxmemory: str = ""

    @property
    def url(self) -> str:
        """Without the password: what a client that was never given it (or holds an old one) uses."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def _admin_url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0" if self.password else self.url

    def fill(self) -> None:
        """Fill the cache past ``maxmemory`` (a cache nobody expires), so that every write is refused: Redis
        refuses a write while the memory it uses is over the limit, whatever the write's size."""
        client = redis.Redis.from_url(self._admin_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            limit = int(client.config_get("maxmemory").get("maxmemory") or 0)
            client.config_set("maxmemory", 0)  # room to fill past the limit, then the limit again
            written = 0
            while int(client.info("memory")["used_memory"]) < limit + 262144:
                client.set(f"filler:{written}", "x" * 16384)
                written += 1
                if written > 100_000:
                    raise DrillError("Redis did not fill: is maxmemory set?")
            client.config_set("maxmemory", limit)
        finally:
            client.close()

    def start(self) -> RedisLab:
        binary = find_binary("redis-server", "redis-server")
        self._root = tempfile.mkdtemp(prefix="irkit-redis-")
        self.port = self.port or free_port()  # a restart keeps its port
        conf = os.path.join(self._root, "redis.conf")  # the password in a private file, not on the command line
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(f"requirepass {self.password}\n" if self.password else "")
        self._proc = subprocess.Popen(
            [binary, conf, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._root, "--logfile", os.path.join(self._root, "redis.log"),
             *(("--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction") if self.maxmemory else ())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis.from_url(self._admin_url, socket_timeout=0.5, socket_connect_timeout=0.5)
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
