"""The HTTP and Redis backends: the circuit breaker (an HTTP POST to the service's admin endpoint) and Redis FLUSHDB.

FLUSHDB's undo restores the keys from a snapshot (``DUMP`` with each key's TTL) taken when the step is
applied, held in memory by the :class:`~irkit.actions.Systems` that applied it: a cache of at most
``SNAPSHOT_KEYS`` keys can be put back within the same session (notebook kernel); a bigger one is
refused before anything is flushed, and a later session cannot undo it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import requests

from irkit.actions.model import Step
from irkit.config import Config, redact
from irkit.errors import ActionError, GuardrailError
from irkit.sources import http

if TYPE_CHECKING:
    from irkit.actions.systems import Systems

__all__ = ["HTTP", "REDIS", "SNAPSHOT_KEYS", "HttpBackend", "RedisBackend", "flush", "flush_prepare", "post",
           "restore", "verify_flush"]

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


class HttpBackend:
    """The :class:`~irkit.actions.model.Backend` of ``http``: the circuit breaker, opened by a POST and closed
    again (its undo) by a POST to ``circuit_breaker_off_url``; the endpoint's answer is the effect."""

    def prepare(self, systems: Systems, step: Step, dry_run: bool) -> Step:
        from irkit.rules.plan import shell
        url = str(step.params.get("url") or systems.config.circuit_breaker_url)
        return replace(step, params={**step.params, "url": url}, before={"circuit_breaker": "as it is"},
                       after={"circuit_breaker": "enabled"}, dry_run="an HTTP POST has no dry run",
                       undo="close the circuit breaker again",
                       undo_command=shell("curl", "-fsS", "-X", "POST", systems.config.circuit_breaker_off_url))

    def state(self, systems: Systems, step: Step) -> dict[str, Any]:
        return {}

    def apply(self, systems: Systems, step: Step) -> str:
        return f"HTTP {post(systems.config, str(step.params['url']))['status']}"

    def verify(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return True, answer

    def undo(self, systems: Systems, step: Step) -> str:
        return f"HTTP {post(systems.config, systems.config.circuit_breaker_off_url)['status']}"

    def verify_undo(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return True, answer


class RedisBackend:
    """The :class:`~irkit.actions.model.Backend` of ``redis``: FLUSHDB, undone from the snapshot taken when it was
    applied (in the same session only)."""

    def prepare(self, systems: Systems, step: Step, dry_run: bool) -> Step:
        keys_before, keys_after = flush_prepare(systems.redis)
        return replace(step, before=keys_before, after=keys_after, dry_run="Redis has no dry run",
                       undo="restore the keys from the snapshot taken at apply (same session only)")

    def state(self, systems: Systems, step: Step) -> dict[str, Any]:
        return {"keys": int(systems.redis.dbsize())}

    def apply(self, systems: Systems, step: Step) -> str:
        systems.snapshots[step.id] = flush(systems.redis)
        return f"{len(systems.snapshots[step.id])} keys kept for the undo"

    def verify(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return verify_flush(systems.redis, step)

    def undo(self, systems: Systems, step: Step) -> str:
        if step.id not in systems.snapshots:
            raise ActionError(f"{step.action} has no undo here: the snapshot is kept only by the session that "
                              "flushed")
        return f"{restore(systems.redis, systems.snapshots.pop(step.id))} keys restored"

    def verify_undo(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return True, answer


HTTP, REDIS = HttpBackend(), RedisBackend()
