"""Phase 1, detection and initial response: the quick-assessment checklist answered from data (1.2).

Each function is one notebook cell: it asks the sources, records what it saw on the
incident, and returns something the notebook shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from irkit import charts, http, k8s, limits, prom
from irkit.incident import Incident, Note, Unavailable, shown
from irkit.severity import Assessment, Signals, Thresholds, classify

__all__ = [
    "assessment",
    "checklist",
    "endpoint_health",
    "error_ratio_history",
    "error_ratio_now",
    "incident_start",
    "latency_now",
    "pod_health",
    "related_incidents",
]


def _per_service_and_overall(inc: Incident, query: Callable[..., pd.DataFrame], column: str, what: str,
                             metric_key: str) -> pd.DataFrame:
    """``query`` now, per service and overall (service ``all``), its value named ``column``.

    No value at all (the metric matches no series, or no traffic: 0/0) is a PrometheusNoData
    that says which key to check: an empty table must never read as "no errors".
    """
    per = query(by_service=True).rename(columns={inc.config.prom_service_label: "service"})
    frame = pd.concat([per, query().assign(service="all")])
    frame = frame.reset_index(drop=True)
    if "service" not in frame.columns:
        frame["service"] = "all"
    prom.require_data(inc.prom, frame, what, metric_key)
    return frame[["service", "value"]].rename(columns={"value": column})


def error_ratio_now(inc: Incident) -> pd.DataFrame | Unavailable:
    """5xx share per service right now, and overall (service ``all``)."""
    return inc.record("error_ratio_now", inc.attempt("error ratio now", lambda: _per_service_and_overall(
        inc, partial(prom.error_ratio, inc.prom), "error_ratio", "error ratio now", "prom_requests_metric")))


def latency_now(inc: Incident, q: float = 0.95) -> pd.DataFrame | Unavailable:
    """The ``q`` latency quantile per service right now, and overall."""
    name = f"p{int(q * 100)}"
    return inc.record(f"latency_{name}_now", inc.attempt(f"{name} latency now", lambda: _per_service_and_overall(
        inc, partial(prom.latency_quantile, inc.prom, q), "seconds", f"{name} latency now", "prom_latency_metric")))


def incident_start(frame: pd.DataFrame, threshold: float) -> datetime | None:
    """First time the error ratio crossed ``threshold`` after last being under it (pure)."""
    if frame.empty:
        return None
    series = frame["value"].groupby(level=0).max().sort_index()
    above = series >= threshold
    if not above.any():
        return None
    below_idx = series.index[~above]
    later = series.index[above & (series.index > below_idx[-1])] if len(below_idx) else series.index[above]
    if not len(later):
        later = series.index[above]
    return pd.Timestamp(later[0]).to_pydatetime()


def error_ratio_history(inc: Incident, window_minutes: int = 120) -> charts.Chart | Unavailable:
    """The error ratio per service over the window, with thresholds, deploys and the onset."""
    cfg = inc.config
    window = prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes)))
    frame = inc.attempt("error ratio history", lambda: prom.require_data(
        inc.prom, prom.error_ratio(inc.prom, window, by_service=True), "error ratio history", "prom_requests_metric"))
    if isinstance(frame, Unavailable):
        return frame
    start = incident_start(frame, cfg.error_ratio_moderate)
    inc.record("incident_start", start)
    inc.record("window", {"start": window.start, "end": window.end})
    history = inc.attempt("rollout history", lambda: k8s.rollout_histories(inc.kube, cfg.deployments))
    deploys = history if isinstance(history, pd.DataFrame) else None
    return charts.error_ratio_chart(frame, moderate=cfg.error_ratio_moderate, high=cfg.error_ratio_high,
                                    deploys=deploys, incident_start=start,
                                    label=cfg.prom_service_label).with_data(inc.save_data("error-ratio", frame))


def pod_health(inc: Incident) -> pd.DataFrame | Unavailable:
    """Deployments and StatefulSets with their ready replicas; records which have none ready."""
    frame = inc.attempt("workload readiness", lambda: k8s.deployments(inc.kube))
    if isinstance(frame, pd.DataFrame):
        down = frame[(frame["desired"] > 0) & (frame["ready"] == 0)]["name"].tolist()
        degraded = frame[(frame["ready"] < frame["desired"]) & (frame["ready"] > 0)]["name"].tolist()
        inc.record("workloads_down", down)
        inc.record("workloads_degraded", degraded)
    return inc.record("workloads", frame)


def endpoint_health(inc: Incident) -> pd.DataFrame:
    """The configured health endpoints, like ``curl -f``."""
    return inc.record("endpoints", http.check_all(inc.config))


def _unmeasured(inc: Incident) -> tuple[str, ...]:
    """The deciding signals this phase could not measure, each with why (the recorded error)."""
    missing = []
    for key, what in (("error_ratio_now", "error ratio"), ("latency_p95_now", "p95 latency"),
                      ("workloads", "workload readiness")):
        value = inc.records.get(key)
        if not inc.rows(key):
            why = value.get("error") if isinstance(value, dict) else "not measured (the step did not run)"
            missing.append(f"{what}: {why}")
    if not inc.config.health_endpoints:
        missing.append("health endpoints: none configured; set health_endpoints to the critical user journeys "
                       "(playbook 4.1)")
    elif not inc.rows("endpoints"):
        missing.append("health endpoints: not checked (the step did not run)")
    return tuple(missing)


def _signals(inc: Incident) -> Signals:
    rec = inc.records
    ratios = {r["service"]: r["error_ratio"] for r in inc.rows("error_ratio_now")}
    p95s = {r["service"]: r["seconds"] for r in inc.rows("latency_p95_now")}
    endpoints = inc.rows("endpoints")
    all_endpoints_down = bool(endpoints) and not any(e.get("ok") for e in endpoints)
    down = rec.get("workloads_down") or []
    key = (inc.config.backend_deployment, inc.config.frontend_deployment)
    outage = all_endpoints_down or any(name in key for name in down)
    # The worst service counts: a backend at 12 % is SEV-2 even if the average is lower.
    worst_ratio = max((v for v in ratios.values() if v is not None), default=None)
    worst_p95 = max((v for v in p95s.values() if v is not None), default=None)
    degraded = bool(rec.get("workloads_degraded"))
    return Signals(outage=outage, error_ratio=worst_ratio, latency_p95_seconds=worst_p95,
                   performance_degraded=degraded, unmeasured=_unmeasured(inc))


def assessment(inc: Incident) -> Assessment:
    """classify() on what this phase saw; records the severity, its reasons and the deadline."""
    cfg = inc.config
    start = inc.records.get("incident_start")
    detected = datetime.fromisoformat(start) if start else inc.started_at
    result = classify(_signals(inc), Thresholds(cfg.error_ratio_high, cfg.error_ratio_moderate,
                                                cfg.latency_p95_slow_seconds), detected_at=detected)
    inc.record("severity", result.as_dict())
    return result


def _affected(inc: Incident) -> list[str]:
    cfg = inc.config
    services = [r["service"] for r in inc.rows("error_ratio_now")
                if r["service"] != "all" and (r["error_ratio"] or 0) >= cfg.error_ratio_moderate]
    services += [r["service"] for r in inc.rows("latency_p95_now")
                 if r["service"] != "all" and (r["seconds"] or 0) > cfg.latency_p95_slow_seconds]
    workloads = (inc.records.get("workloads_down") or []) + (inc.records.get("workloads_degraded") or [])
    return sorted(set(services)) + sorted(set(workloads))


def related_incidents(inc: Incident, outputs: str | Path = "outputs", days: int = 30) -> pd.DataFrame | Note:
    """Earlier runs in ``outputs/`` whose affected services overlap this one's."""
    affected = set(_affected(inc))
    rows: list[dict[str, Any]] = []
    cutoff = datetime.now(UTC) - timedelta(days=days)
    for summary in sorted(Path(outputs).glob("*/*/summary.json")):
        if summary.parent.resolve() == inc.run_dir.resolve():
            continue
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        finished = data.get("finished_at")
        if finished and datetime.fromisoformat(finished) < cutoff:
            continue
        overlap = affected & set(data.get("affected", []))
        if overlap:
            rows.append({"incident": data.get("incident"), "run": data.get("run_id"),
                         "severity": (data.get("severity") or {}).get("name"), "overlap": ", ".join(sorted(overlap)),
                         "path": str(summary.parent)})
    frame = pd.DataFrame(rows, columns=["incident", "run", "severity", "overlap", "path"])
    inc.record("related_incidents", frame)
    return shown(frame, f"no earlier run in {outputs}/ in the last {days} days touched "
                        f"{', '.join(sorted(affected)) or 'these services'}")


def checklist(inc: Incident) -> pd.DataFrame:
    """The playbook's quick-assessment checklist (1.2), each box answered from the data above."""
    cfg = inc.config
    severity = inc.records.get("severity") or {}
    ratios = inc.rows("error_ratio_now")
    worst = max((r["error_ratio"] for r in ratios if r["error_ratio"] is not None), default=None)
    unhealthy_now = bool(inc.records.get("workloads_down") or inc.records.get("workloads_degraded"))
    ongoing = (worst is not None and worst >= cfg.error_ratio_moderate) or unhealthy_now
    related = inc.records.get("related_incidents") or []
    affected = _affected(inc)
    real = severity.get("real")
    if worst is None and not unhealthy_now:
        ongoing = None  # nothing that would show it was measured
    inc.record("affected", affected)
    inc.record("real", real)
    inc.record("ongoing", ongoing)
    unmeasured = "; ".join(severity.get("unmeasured", []))
    rows = [
        ("Confirm incident is real (not false positive)",
         "unknown: the deciding signals were not measured" if real is None else "yes" if real else
         "no: every deciding signal was measured and is under its threshold",
         "; ".join(severity.get("reasons", [])) + (f"; not measured: {unmeasured}" if unmeasured else "")),
        ("Determine initial severity level", severity.get("name", "unknown"),
         f"respond by {severity.get('respond_by', '?')}; escalate: {severity.get('escalation', '?')}"),
        ("Check if incident is ongoing or resolved",
         "unknown" if ongoing is None else "ongoing" if ongoing else "resolved or not happening",
         f"worst error ratio now {worst:.1%}" if worst is not None else "error ratio unavailable"),
        ("Identify affected systems/users", ", ".join(affected) or "none found", ""),
        ("Check for related incidents", f"{len(related)} related run(s)" if related else "none in outputs/", ""),
    ]
    return pd.DataFrame(rows, columns=["check", "answer", "evidence"])
