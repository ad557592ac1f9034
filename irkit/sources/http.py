"""Health-endpoint checks: playbook 2.1 (health-check.sh) and 4.1 (critical user journeys); and the bounds of
every HTTP request irkit makes.

Like ``curl -f -m SECONDS -w '%{http_code} %{time_total}'``: one request per URL with a *total* deadline (a
server that drips a byte every second never holds a check past it), at most :data:`MAX_HEALTH_BODY` of the body
read, never a redirect chase past 3 hops, results as a DataFrame.

The endpoints belong to the services under investigation, and so do the bodies of Prometheus's and a status
page's answers when something in front of them misbehaves. :class:`BoundedAdapter` gives any ``requests``
session the same bounds (a total deadline, a body cap), and :func:`deadline` with :func:`watch_pool` gives them to
the Kubernetes client's connection pool: when the deadline passes, the request's socket is shut down from a
watchdog thread, whatever the server is sending.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool

from irkit.config import Config, redact

MAX_PARALLEL = 16  # endpoints checked at once
MAX_HEALTH_BODY = 1 << 20  # bytes of a health endpoint's answer read; the status is what counts

__all__ = ["FAILURES", "BodyTooLarge", "BoundedAdapter", "HealthCheck", "bounded_session", "check", "check_all",
           "deadline", "failure", "urllib3_failure", "watch_pool"]


# --------------------------------------------------------------------------- bounds for any request

class _Deadline:
    """A total deadline: at ``seconds``, every socket :meth:`watch`-ed is shut down (its reader gets an error)."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: Any) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.shutdown(socket.SHUT_RDWR)


_CURRENT = threading.local()  # the deadlines of the requests this thread is making (nested: each one counts)


def _watch(sock: Any) -> None:
    for found in getattr(_CURRENT, "deadlines", ()):
        found.watch(sock)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[_Deadline]:
    """Requests this thread makes inside the block, through a watched pool (:func:`watch_pool`,
    :class:`BoundedAdapter`), are cut off ``seconds`` after it began (an outer block's deadline still holds)."""
    found = _Deadline(seconds)
    stack = _CURRENT.__dict__.setdefault("deadlines", [])
    stack.append(found)
    try:
        yield found
    finally:
        found.cancel()
        stack.remove(found)


class _Watched:
    """A urllib3 connection that hands its socket to the thread's deadline, when it opens and at each request."""

    sock: Any

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if self.sock is not None:
            _watch(self.sock)  # a connection kept alive from an earlier request
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def watch_pool(manager: Any) -> Any:
    """Make a urllib3 PoolManager's connections keep to :func:`deadline` (the Kubernetes client's pool)."""
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager


class BodyTooLarge(requests.RequestException):
    """An answer larger than irkit reads of it."""


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """``requests``' adapter with a total deadline (``seconds`` from the request to the last byte of the body)
    and a body cap (``max_bytes``: more is :class:`BodyTooLarge`, or with ``truncate`` the first ``max_bytes``).
    No retries: during an outage they multiply the wait."""

    def __init__(self, *, seconds: float, max_bytes: int, truncate: bool = False) -> None:
        self.seconds, self.max_bytes, self.truncate = seconds, max_bytes, truncate
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        watch_pool(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        return watch_pool(super().proxy_manager_for(proxy, **kwargs))

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> requests.Response:
        with deadline(self.seconds) as found:
            try:
                response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert,
                                        proxies=proxies)
                chunks, size = [], 0
                for chunk in response.raw.stream(1 << 16, decode_content=True):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.max_bytes:
                        response.close()
                        if not self.truncate:
                            raise BodyTooLarge(f"the answer is larger than {self.max_bytes >> 10} KiB, more than "
                                               "irkit reads of it", request=request, response=response)
                        break
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if found.fired:
                    raise requests.Timeout(f"no complete answer within {self.seconds:g} s",
                                           request=request) from exc
                if isinstance(exc, requests.RequestException):
                    raise
                raise requests.ConnectionError(exc, request=request) from exc
        response._content = b"".join(chunks)[:self.max_bytes]
        response._content_consumed = True  # type: ignore[attr-defined]
        return response


def bounded_session(seconds: float, max_bytes: int, *, truncate: bool = False) -> requests.Session:
    """A ``requests`` session whose every request keeps to :class:`BoundedAdapter`'s bounds."""
    session = requests.Session()
    adapter = BoundedAdapter(seconds=seconds, max_bytes=max_bytes, truncate=truncate)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --------------------------------------------------------------------------- health endpoints


@dataclass(frozen=True)
class HealthCheck:
    url: str
    ok: bool
    status: int | None
    seconds: float
    error: str = ""


# How a failed request reads to a responder, by what went wrong; prom.py words its errors from the same table.
FAILURES: dict[str, str] = {
    "timeout": "no answer within {timeout:g} s",
    "refused": "connection refused",
    "unresolved": "the host name does not resolve",
    "tls": "the TLS handshake failed",
    "dropped": "the connection was dropped before the answer was complete",
    "redirects": "more than 3 redirects",
    "too-large": "the answer was larger than irkit reads of it (a proxy's page, or too many series at once)",
    "other": "the request failed",
}


def failure(exc: requests.RequestException) -> str:
    """Which row of :data:`FAILURES` a ``requests`` error is (retries are off, so urllib3's reason is kept)."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, BodyTooLarge):
        return "too-large"
    if isinstance(exc, requests.TooManyRedirects):
        return "redirects"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return "dropped"
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    if isinstance(reason, urllib3.exceptions.HTTPError):
        return urllib3_failure(reason)
    if isinstance(exc, requests.ConnectionError):
        return "dropped"  # ProtocolError: aborted, a bad status line, the peer closed mid-answer
    return "other"


def urllib3_failure(exc: BaseException) -> str:
    """Which row of :data:`FAILURES` a urllib3 error is (the Kubernetes client raises these directly)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return "unresolved"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # before TimeoutError: it subclasses it
        return "refused"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "tls"
    if isinstance(exc, urllib3.exceptions.ProtocolError | urllib3.exceptions.DecodeError):
        return "dropped"
    return "other"


def check(url: str, timeout: float = 5.0) -> HealthCheck:
    """GET ``url``; ``ok`` is a 2xx answer whose body (read up to :data:`MAX_HEALTH_BODY`) arrives within
    ``timeout`` seconds in all, redirects included, like ``curl -f -m``."""
    started = time.monotonic()
    try:
        with deadline(timeout) as whole, bounded_session(timeout, MAX_HEALTH_BODY, truncate=True) as session:
            session.max_redirects = 3
            try:
                resp = session.get(url, timeout=timeout)
            except requests.RequestException as exc:
                if whole.fired:
                    raise requests.Timeout(f"no complete answer within {timeout:g} s") from exc
                raise
        return HealthCheck(redact(url), 200 <= resp.status_code < 300, resp.status_code, time.monotonic() - started)
    except requests.RequestException as exc:
        return HealthCheck(redact(url), False, None, time.monotonic() - started,
                           FAILURES[failure(exc)].format(timeout=timeout))


def check_all(config: Config) -> pd.DataFrame:
    """Every configured health endpoint, and every critical journey's URL. Columns: ``url, ok, status, seconds,
    error, journey, journey_level`` (the journey an endpoint serves, and the severity its failure is)."""
    urls = list(config.health_endpoints)
    journeys: dict[str, tuple[str, int | None]] = {}
    for name, level, target in config.journeys:
        matched = [u for u in urls if u == target or (target.startswith("/") and urlsplit(u).path.startswith(target))]
        if not matched and not target.startswith("/"):
            urls.append(target)
            matched = [target]
        for url in matched:
            journeys[url] = (name, level)
    # All at once: an outage makes several endpoints hang, and their timeouts must not add up.
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(urls)) or 1, thread_name_prefix="irkit-health") as pool:
        results = list(pool.map(lambda url: check(url, config.http_timeout), urls))
    rows = []
    for url, result in zip(urls, results, strict=True):
        journey, journey_level = journeys.get(url, ("", None))
        rows.append({**result.__dict__, "journey": journey, "journey_level": journey_level})
    return pd.DataFrame(rows, columns=["url", "ok", "status", "seconds", "error", "journey", "journey_level"])
