"""The clients the actions use: opened on first use, bounded by the configuration's timeouts, closed together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from irkit.config import Config
from irkit.errors import ActionError

if TYPE_CHECKING:
    from irkit.sources.k8s import Kube
    from irkit.sources.pg import PgSession

__all__ = ["Systems"]


class Systems:
    """The clients actions use, opened on first use and bounded by the configuration's timeouts."""

    def __init__(self, config: Config, kube: Kube | None = None) -> None:
        self.config = config
        self._kube = kube
        self._pg: PgSession | None = None
        self._redis: Any = None
        self.snapshots: dict[str, Any] = {}  # step id -> what its undo restores (FLUSHDB's keys)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            from irkit.sources import k8s  # a database-only plan never loads the Kubernetes client
            self._kube = k8s.connect(self.config)
        return self._kube

    @property
    def pg(self) -> PgSession:
        if self._pg is None:
            if not self.config.pg_action_dsn:
                raise ActionError("database actions need pg_action_dsn: a role with pg_signal_backend (docs/actions.md): "
                                  "set IRKIT_PG_ACTION_DSN")
            from irkit.sources.pg import PgSession
            self._pg = PgSession(self.config, actions=True)
        return self._pg

    @property
    def redis(self) -> Any:
        if self._redis is None:
            import redis
            self._redis = redis.Redis.from_url(self.config.redis_url, socket_timeout=self.config.request_timeout,
                                               socket_connect_timeout=self.config.connect_timeout)
        return self._redis

    def close(self) -> None:
        for client in (self._pg, self._redis):
            if client is not None:
                client.close()
