"""Health-endpoint checks: playbook 2.1 (health-check.sh) and 4.1 (critical user journeys).

Like ``curl -f -w '%{http_code} %{time_total}'``: one bounded request per URL, never
a redirect chase past 3 hops, results as a DataFrame.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import pandas as pd
import requests
import urllib3

from irkit.config import Config, redact

MAX_PARALLEL = 16  # endpoints checked at once

__all__ = ["FAILURES", "HealthCheck", "check", "check_all", "failure", "urllib3_failure"]


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
    "other": "the request failed",
}


def failure(exc: requests.RequestException) -> str:
    """Which row of :data:`FAILURES` a ``requests`` error is (retries are off, so urllib3's reason is kept)."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
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
    """GET ``url``; ``ok`` is a 2xx answer within ``timeout``, like ``curl -f``."""
    started = time.monotonic()
    try:
        with requests.Session() as session:
            session.max_redirects = 3
            resp = session.get(url, timeout=timeout)
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
