"""Prometheus queries: playbook 2.3 (dashboards) and 4.2 (error rates, response times).

Instant and range queries return DataFrames indexed by a UTC, timezone-aware
``time``, one column per label plus ``value``. Metric and label names come from
the config (checked as names when any Config is made); label *values* passed by callers are escaped into PromQL string
literals, so a value holding quotes or ``"}`` cannot change the query. Every
request has a timeout and no retries (retries multiply the wait during an outage).
"""

from __future__ import annotations

import ast
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from irkit.config import Config, redact
from irkit.errors import (
    PrometheusError,
    PrometheusNoData,
    PrometheusTimeout,
    PrometheusUnavailable,
)
from irkit.escaping import one_line
from irkit.sources import http

__all__ = [
    "Prometheus",
    "Window",
    "connect",
    "error_ratio",
    "failed_requests",
    "error_ratio_query",
    "explain_no_data",
    "require_data",
    "label_value",
    "latency_quantile",
    "latency_quantile_query",
    "request_rate",
    "request_rate_query",
]

MAX_BODY = 64 << 20  # bytes of one answer: a day of 50 services at a 15 s step is about 10 MiB
MAX_ERROR_TEXT = 64 << 10  # characters of an error answer looked at for Prometheus's own message


def label_value(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class Window:
    """A time range for range queries: ``Window.last(timedelta(hours=1))`` or explicit bounds."""

    def __init__(self, start: datetime, end: datetime, step: timedelta | None = None) -> None:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("Window bounds must be timezone-aware (use datetime.now(UTC))")
        if end <= start:
            raise ValueError(f"Window end {end} is not after its start {start}")
        self.start = start
        self.end = end
        # About 240 points whatever the length: enough to see a spike, small to ship.
        self.step = step or max(timedelta(seconds=15), (end - start) / 240)

    @classmethod
    def last(cls, duration: timedelta, end: datetime | None = None, step: timedelta | None = None) -> Window:
        end = end or datetime.now(UTC)
        return cls(end - duration, end, step)

    def __repr__(self) -> str:
        return f"Window({self.start.isoformat()} .. {self.end.isoformat()}, step={self.step})"


class Prometheus:
    """A Prometheus HTTP API client with timeouts and irkit errors."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.source = f"Prometheus at {redact(config.prom_url)}"
        headers = {"Authorization": f"Bearer {config.prom_token.reveal()}"} if config.prom_token else None
        self._client = PrometheusConnect(url=config.prom_url.rstrip("/"), headers=headers,
                                         retry=Retry(total=0, raise_on_status=False))
        # The client mounts its own adapter on the URL; ours takes its place: a whole answer within the connect
        # and request timeouts, at most MAX_BODY of it (a proxy's endless page is not read to the end).
        self._client._session.mount(self._client.url, http.BoundedAdapter(
            seconds=config.connect_timeout + config.request_timeout, max_bytes=MAX_BODY))
        self._timeout = (config.connect_timeout, config.request_timeout)

    def __repr__(self) -> str:
        return f"<Prometheus {self.source}>"

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return fn(*args, timeout=self._timeout, **kwargs)
        except requests.exceptions.JSONDecodeError as exc:
            raise PrometheusError(self.source, what, time.monotonic() - started, _NOT_PROMETHEUS) from exc
        except requests.RequestException as exc:
            kind = http.failure(exc)
            error = _REQUEST_ERRORS.get(kind, (PrometheusError, "{reason}: {exc}"))
            raise error[0](self.source, what, time.monotonic() - started, error[1].format(
                reason=http.FAILURES[kind].format(timeout=self.config.request_timeout), exc=exc)) from exc
        except PrometheusApiClientException as exc:
            raise PrometheusError(self.source, what, time.monotonic() - started, _api_error(str(exc))) from exc
        except (ValueError, KeyError, TypeError) as exc:
            # requests' JSONDecodeError is a ValueError; a missing "data" key a KeyError.
            raise PrometheusError(self.source, what, time.monotonic() - started, _NOT_PROMETHEUS) from exc

    def _labels(self, item: dict[str, Any]) -> dict[str, str]:
        """A series' labels as irkit keeps them: the services chose their values, so secrets in them go here."""
        metric = item.get("metric") or {}
        return {str(k): redact(str(v), self.config) for k, v in metric.items()} if isinstance(metric, dict) else {}

    def instant(self, promql: str, at: datetime | None = None) -> pd.DataFrame:
        """The value of each series at ``at`` (default now)."""
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else None
        result = self._call(f"query {promql}", self._client.custom_query, promql, params=params)
        rows = [{**self._labels(item), "time": float(item["value"][0]), "value": float(item["value"][1])}
                for item in _vector(result)]
        return _frame(rows)

    def range(self, promql: str, window: Window) -> pd.DataFrame:
        """Each series over ``window``, one row per (series, time)."""
        step = f"{max(1, int(window.step.total_seconds()))}s"
        result = self._call(f"query_range {promql}", self._client.custom_query_range, promql,
                            start_time=window.start, end_time=window.end, step=step)
        # One block per series (a day of 50 series at 15 s is 288,000 points: no dict per point).
        parts = []
        for item in _vector(result):
            values = item.get("values") or []
            part = pd.DataFrame(values, columns=["time", "value"], dtype=float) if values else None
            if part is not None:
                parts.append(part.assign(**self._labels(item)))
        if not parts:
            return _frame([])
        return _frame(pd.concat(parts, ignore_index=True))



_NOT_PROMETHEUS = ("answered something that is not the Prometheus query API; check that IRKIT_PROM_URL points "
                   "at Prometheus itself (not Grafana or a login page)")
# requests' failures (see irkit.sources.http.FAILURES) as irkit errors, with what to check next.
_REQUEST_ERRORS: dict[str, tuple[type[PrometheusError], str]] = {
    "timeout": (PrometheusTimeout, "{reason}; Prometheus may be overloaded: narrow the window or raise "
                                   "IRKIT_REQUEST_TIMEOUT"),
    "refused": (PrometheusUnavailable, "{reason}; check IRKIT_PROM_URL and the port-forward"),
    "unresolved": (PrometheusUnavailable, "{reason}; check IRKIT_PROM_URL, the VPN and DNS"),
    "tls": (PrometheusUnavailable, "{reason}; check the https:// URL and the CA the proxy presents"),
    "dropped": (PrometheusUnavailable, "{reason}; Prometheus or a proxy in front of it may be restarting: "
                                       "retry, and check its pod"),
}


def _vector(result: Any) -> list[dict[str, Any]]:
    if not isinstance(result, list):
        raise ValueError("result is not a vector or matrix")
    return result


def _api_error(message: str) -> str:
    """Prometheus's own error text out of prometheus-api-client's message, or what a non-Prometheus answer means.
    Linear in the message and bounded: the body is whatever answered (a proxy's page of megabytes)."""
    message = message[:MAX_ERROR_TEXT]
    # The client formats the body as a bytes repr: "HTTP Status Code 400 (b'{...}')".
    status = re.match(r"HTTP Status Code (\d{3})", message)
    code = status.group(1) if status else "?"
    if code in ("401", "403"):
        return (f"HTTP {code}: Prometheus refused the credentials; check IRKIT_PROM_TOKEN or prom_token_file, "
                "and that the token may query")
    lower = message.lower()
    if "<html" in lower or "<!doctype" in lower:
        start = lower.find("<title>")
        end = lower.find("</title>", start) if start >= 0 else -1
        title = one_line(message[start + 7:end])[:60] if 0 <= start < end else "no title"
        return (f"HTTP {code} with an HTML page ({title}), not the Prometheus API: a proxy or load balancer in "
                "front of it answered; check IRKIT_PROM_URL and whether Prometheus is up behind it")
    detail = one_line(message[:300])
    start = message.find("(b'")
    if start >= 0 and message.rstrip().endswith("')"):
        try:
            detail = one_line(json.loads(ast.literal_eval(message[start + 1:message.rstrip().rindex(")")]))["error"])
        except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
            pass
    return f"Prometheus rejected the query: {detail[:500]}"


def _frame(rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["time", "value"])
    frame["time"] = pd.to_datetime(frame["time"].astype(float), unit="s", utc=True)
    frame = frame.set_index("time").sort_index()
    labels = sorted(c for c in frame.columns if c != "value")
    return frame[[*labels, "value"]]


def connect(config: Config) -> Prometheus:
    return Prometheus(config)


def _matchers(config: Config, service: str | None, extra: str = "") -> str:
    parts = [extra] if extra else []
    if service is not None:
        parts.append(f"{config.prom_service_label}={label_value(service)}")
    return "{" + ",".join(parts) + "}" if parts else ""


def _by(config: Config, by_service: bool, *more: str) -> str:
    labels = [*more]
    if by_service:
        labels.append(config.prom_service_label)
    return f" by ({', '.join(labels)})" if labels else ""


def error_ratio_query(config: Config, *, service: str | None = None, by_service: bool = False) -> str:
    """5xx over all requests (playbook 4.2), overall or per service."""
    metric = config.prom_requests_metric
    status = config.prom_status_label
    window = config.prom_rate_window
    errors = _matchers(config, service, f"{status}=~{label_value(config.prom_error_status)}")
    everything = _matchers(config, service)
    by = _by(config, by_service)
    return f"sum{by}(rate({metric}{errors}[{window}])) / sum{by}(rate({metric}{everything}[{window}]))"


def request_rate_query(config: Config, *, service: str | None = None, by_service: bool = False) -> str:
    metric = config.prom_requests_metric
    return f"sum{_by(config, by_service)}(rate({metric}{_matchers(config, service)}[{config.prom_rate_window}]))"


def latency_quantile_query(config: Config, q: float, *, service: str | None = None,
                           by_service: bool = False) -> str:
    if not 0 < q < 1:
        raise ValueError(f"quantile {q} must be between 0 and 1, e.g. 0.95")
    metric = config.prom_latency_metric
    inner = f"rate({metric}_bucket{_matchers(config, service)}[{config.prom_rate_window}])"
    seconds = " / 1000" if config.prom_latency_unit == "ms" else ""  # shown in seconds whatever the histogram counts
    return f"histogram_quantile({q:g}, sum{_by(config, by_service, 'le')}({inner})){seconds}"


def _run(prom: Prometheus, query: str, window: Window | None, at: datetime | None) -> pd.DataFrame:
    return prom.range(query, window) if window is not None else prom.instant(query, at)


def error_ratio(prom: Prometheus, window: Window | None = None, *, at: datetime | None = None,
                service: str | None = None, by_service: bool = False) -> pd.DataFrame:
    """Share of 5xx responses: now (or ``at``), or over ``window``. ``value`` is 0..1."""
    return _run(prom, error_ratio_query(prom.config, service=service, by_service=by_service), window, at)


def request_rate(prom: Prometheus, window: Window | None = None, *, at: datetime | None = None,
                 service: str | None = None, by_service: bool = False) -> pd.DataFrame:
    """Requests per second."""
    return _run(prom, request_rate_query(prom.config, service=service, by_service=by_service), window, at)


def latency_quantile(prom: Prometheus, q: float = 0.95, window: Window | None = None, *,
                     at: datetime | None = None, service: str | None = None,
                     by_service: bool = False) -> pd.DataFrame:
    """The ``q`` latency quantile in seconds from the histogram (p50/p95/p99)."""
    return _run(prom, latency_quantile_query(prom.config, q, service=service, by_service=by_service), window, at)


def failed_requests(prom: Prometheus, start: datetime, end: datetime) -> tuple[float, float] | None:
    """(failed, all) requests between ``start`` and ``end``: the 5xx and total counts over the incident, for
    its impact in user terms. None when the counter has no series."""
    metric = prom.config.prom_requests_metric
    status = prom.config.prom_status_label
    span = max(60, int((end - start).total_seconds()))
    errors = _matchers(prom.config, None, f"{status}=~{label_value(prom.config.prom_error_status)}")
    failed = prom.instant(f"sum(increase({metric}{errors}[{span}s]))", end)
    total = prom.instant(f"sum(increase({metric}{_matchers(prom.config, None)}[{span}s]))", end)
    if failed.empty or total.empty:
        return None
    return float(failed["value"].iloc[0]), float(total["value"].iloc[0])


def require_data(prom: Prometheus, frame: pd.DataFrame, what: str, metric_key: str,
                 by_service: bool = True) -> pd.DataFrame:
    """``frame`` if it holds at least one value, else the :func:`explain_no_data` error."""
    if frame.empty or not frame["value"].notna().any():
        raise explain_no_data(prom, what, metric_key, by_service)
    return frame


def explain_no_data(prom: Prometheus, what: str, metric_key: str, by_service: bool = True) -> PrometheusNoData:
    """Why a query over the metric named by config key ``metric_key`` returned nothing, as an error to raise.

    "`http_requests_total` has no series with `service`; check prom_service_label" tells a
    responder which key is wrong; an empty table tells nothing, and must not pass for "no errors".
    """
    cfg = prom.config
    metric = getattr(cfg, metric_key)
    series = f"{metric}_bucket" if metric_key == "prom_latency_metric" else metric
    label = cfg.prom_service_label
    started = time.monotonic()
    env = f"IRKIT_{metric_key.upper()}"
    if prom.instant(f"count({series})").empty:
        hint = (f"`{series}` has no series; check {metric_key} ({env}) against the metric names the services "
                "export")
    elif by_service and prom.instant(f'count({series}{{{label}!=""}})').empty:
        hint = f"`{series}` has no series with `{label}`; check prom_service_label (IRKIT_PROM_SERVICE_LABEL)"
    else:
        hint = (f"`{series}` has series but no samples over the last {cfg.prom_rate_window}: the services may have "
                "stopped reporting, or there is no traffic")
    return PrometheusNoData(prom.source, what, time.monotonic() - started, hint)
