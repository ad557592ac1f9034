"""Phase 4, recovery and validation (4.1-4.3): one verdict, recovered or not, with what failed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from irkit import limits
from irkit.evidence import records as R
from irkit.phases import history
from irkit.phases.incident import Incident, Unavailable
from irkit.rules.recovery import Verdict, decide
from irkit.sources import http, k8s, pg, prom

__all__ = ["baseline", "checks", "verdict"]


def baseline(inc: Incident, hours_before: float = 2.0) -> pd.DataFrame | Unavailable:
    """Error ratio per service before the incident started (the pre-incident baseline)."""
    onset = inc.view().onset  # phase 4 run on its own, after the fix, takes the incident's onset from its runs
    start = onset.value if onset else None
    at = (start or datetime.now(UTC) - timedelta(hours=hours_before)) - timedelta(minutes=10)
    frame = inc.attempt("baseline error ratio", lambda: prom.error_ratio(inc.prom, at=at, by_service=True))
    return inc.record(R.BASELINE, frame)


def _check(rows: list[dict[str, Any]], name: str, ok: bool | None, detail: str) -> None:
    """One row of the checks table; ``ok`` None: not measured."""
    rows.append({"check": name, "ok": None if ok is None else bool(ok), "detail": detail})


def _frame_checks(rows: list[dict[str, Any]], inc: Incident, name: str, frame: pd.DataFrame | Unavailable,
                  passes: Any, detail: Any) -> None:
    """A row per service of a Prometheus answer; an unavailable or empty answer is one unmeasured row."""
    cfg = inc.config
    if isinstance(frame, Unavailable):
        _check(rows, name, None, frame.error)
        return
    measured = [row for row in frame.to_dict("records") if pd.notna(row["value"])]
    if not measured:
        _check(rows, name, None, "no series answered (see the phase's problems)")
    for row in measured:
        _check(rows, f"{name} {row.get(cfg.prom_service_label, 'all')}", passes(row["value"]), detail(row["value"]))


def checks(inc: Incident, settle_seconds: int = 0) -> pd.DataFrame:
    """Health endpoints, error ratio and latency against thresholds, pods ready, orders flowing.

    ``settle_seconds``: after a mitigation the signals take a while to come back (a rate over
    five minutes lags a fix by up to five): re-check every 5 s for up to this long, and keep
    the first round where no check failed (every one passed, or the rest cannot be measured), else the last.
    """
    limits.bounded("settle_seconds", settle_seconds)
    deadline = time.monotonic() + settle_seconds
    while True:
        frame = _checks_once(inc)
        # Done when nothing failed: recovered, or every measured check passed and the rest cannot be measured
        # (waiting does not bring back a source that is not configured or not reachable).
        if not decide(_check_rows(frame)).failed or time.monotonic() + 5 > deadline:
            break
        time.sleep(5)
    inc.record(R.CHECKS, frame)
    return frame


def _checks_once(inc: Incident) -> pd.DataFrame:
    cfg = inc.config
    rows: list[dict[str, Any]] = []
    # The sources at once (each with its own bounds): a hung one costs its timeout, not the sum of them all.
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="irkit-checks") as pool:
        endpoints = pool.submit(http.check_all, cfg)
        measured = pool.submit(lambda: (
            inc.attempt("error ratio now", lambda: prom.require_data(
                inc.prom, prom.error_ratio(inc.prom, by_service=True), "error ratio now", "prom_requests_metric")),
            inc.attempt("p95 now", lambda: prom.require_data(
                inc.prom, prom.latency_quantile(inc.prom, 0.95, by_service=True), "p95 now", "prom_latency_metric"))))
        workloads_asked = pool.submit(inc.attempt, "workloads", lambda: k8s.deployments(inc.kube))
        database = pool.submit(lambda: (
            inc.attempt("recent orders", lambda: pg.recent_rows(inc.pg, window=timedelta(hours=1))),
            inc.attempt("lock graph", lambda: pg.lock_graph(inc.pg))))
    if not cfg.health_endpoints:
        _check(rows, "health endpoints", None, "none configured; set health_endpoints (playbook 4.1)")
    for ep in endpoints.result().to_dict("records"):
        _check(rows, f"endpoint {ep['url']}", ep["ok"], f"HTTP {ep['status']} in {ep['seconds']:.2f} s"
               if ep["status"] else ep["error"])
    ratio, p95 = measured.result()
    _frame_checks(rows, inc, "error ratio", ratio, lambda v: v < cfg.error_ratio_moderate,
                  lambda v: f"{v:.1%} (threshold {cfg.error_ratio_moderate:.0%})")
    _frame_checks(rows, inc, "p95 latency", p95, lambda v: v <= cfg.latency_p95_slow_seconds,
                  lambda v: f"{v:.2f} s")
    workloads = workloads_asked.result()
    if isinstance(workloads, Unavailable):
        _check(rows, "pods ready", None, workloads.error)
    else:
        for row in workloads.to_dict("records"):
            _check(rows, f"{row['kind']} {row['name']} ready", row["ready"] >= row["desired"],
                   f"{row['ready']}/{row['desired']} ready")
    recent, locks = database.result()
    if isinstance(recent, Unavailable):
        _check(rows, "orders flowing", None, recent.error)
    else:
        _check(rows, "orders flowing", recent.count > 0, f"{recent.count} orders in the last hour")
    if isinstance(locks, Unavailable):
        _check(rows, "no lock waits", None, locks.error)
    else:
        _check(rows, "no lock waits", locks.empty, f"{locks.waiting} waiting session(s)")
        history.record_sample(inc, locks, "phase 4")
    return pd.DataFrame(rows, columns=["check", "ok", "detail"])


def verdict(inc: Incident) -> Verdict:
    """Not recovered if any check failed; recovered only if every check was measured and passed;
    otherwise unknown."""
    result = decide(inc.rows(R.CHECKS))
    inc.record(R.VERDICT, result.as_dict())
    return result


def _check_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A checks table as rows with string keys, for :func:`irkit.rules.recovery.decide`."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
