"""Health-endpoint checks: playbook 2.1 (health-check.sh) and 4.1 (critical user journeys).

Like ``curl -f -w '%{http_code} %{time_total}'``: one bounded request per URL, never
a redirect chase past 3 hops, results as a DataFrame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import requests

from irkit.config import Config, redact

__all__ = ["HealthCheck", "check", "check_all"]


@dataclass(frozen=True)
class HealthCheck:
    url: str
    ok: bool
    status: int | None
    seconds: float
    error: str = ""


def check(url: str, timeout: float = 5.0) -> HealthCheck:
    """GET ``url``; ``ok`` is a 2xx answer within ``timeout``, like ``curl -f``."""
    started = time.monotonic()
    try:
        with requests.Session() as session:
            session.max_redirects = 3
            resp = session.get(url, timeout=timeout)
        return HealthCheck(redact(url), 200 <= resp.status_code < 300, resp.status_code, time.monotonic() - started)
    except requests.Timeout:
        return HealthCheck(redact(url), False, None, time.monotonic() - started, f"no answer within {timeout:g} s")
    except requests.RequestException as exc:
        reason = type(exc).__name__
        return HealthCheck(redact(url), False, None, time.monotonic() - started, f"{reason}: unreachable")


def check_all(config: Config) -> pd.DataFrame:
    """Every configured health endpoint. Columns: ``url, ok, status, seconds, error``."""
    rows = [check(url, config.http_timeout) for url in config.health_endpoints]
    return pd.DataFrame([r.__dict__ for r in rows], columns=["url", "ok", "status", "seconds", "error"])
