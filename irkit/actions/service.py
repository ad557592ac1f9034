"""Service actions: the circuit breaker (an HTTP POST to the service's admin endpoint) and Redis FLUSHDB.

FLUSHDB's undo restores the keys from a snapshot (``DUMP`` with each key's TTL) taken when the step is
applied, held in memory by the :class:`~irkit.actions.Systems` that applied it: a cache of at most
``SNAPSHOT_KEYS`` keys can be put back within the same session (notebook kernel); a bigger one is
refused before anything is flushed, and a later session cannot undo it.
"""

from __future__ import annotations

from typing import Any

import requests

from irkit.actions.model import Step
from irkit.config import Config, redact
from irkit.errors import ActionError, GuardrailError
from irkit.sources import http

__all__ = ["SNAPSHOT_KEYS", "flush", "flush_prepare", "post", "redis_client", "restore", "verify_flush"]

SNAPSHOT_KEYS = 10_000


def post(cfg: Config, url: str) -> dict[str, Any]:
    """POST to an admin endpoint, bounded by http_timeout; its status and a little of its answer."""
    try:
        with http.bounded_session(cfg.connect_timeout + cfg.http_timeout, 64 << 10, truncate=True) as session:
            answer = session.post(url, timeout=(cfg.connect_timeout, cfg.http_timeout))
    except requests.RequestException as exc:
        raise ActionError(f"POST {redact(url)} failed: {type(exc).__name__}; check circuit_breaker_url and that "
                          "irkit can reach it") from exc
    if not answer.ok:
        raise ActionError(f"POST {redact(url)} answered HTTP {answer.status_code}: {answer.text[:200]}")
    return {"status": answer.status_code, "answer": answer.text[:200]}


def redis_client(cfg: Config) -> Any:
    import redis
    return redis.Redis.from_url(cfg.redis_url, socket_timeout=cfg.request_timeout,
                                socket_connect_timeout=cfg.connect_timeout)


def flush_prepare(client: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = int(client.dbsize())
    if keys > SNAPSHOT_KEYS:
        raise GuardrailError(f"the cache holds {keys} keys, more than the {SNAPSHOT_KEYS} irkit can snapshot for "
                             "undo: flush it by hand if it must be flushed")
    return {"keys": keys}, {"keys": 0}


def flush(client: Any) -> list[tuple[bytes, int, bytes]]:
    """Snapshot every key (name, TTL in ms, DUMP), then FLUSHDB; the snapshot is the undo."""
    snapshot = []
    for key in client.scan_iter(count=500):
        dumped = client.dump(key)
        if dumped is not None:
            snapshot.append((key, max(0, int(client.pttl(key))), dumped))
    client.flushdb()
    return snapshot


def restore(client: Any, snapshot: list[tuple[bytes, int, bytes]]) -> int:
    for key, ttl, dumped in snapshot:
        client.restore(key, ttl, dumped, replace=True)
    return len(snapshot)


def verify_flush(client: Any, step: Step) -> tuple[bool, str]:
    keys = int(client.dbsize())
    return keys < max(1, int(step.before.get("keys") or 0)) or keys == 0, f"{keys} keys now"
