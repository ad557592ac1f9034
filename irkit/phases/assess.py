"""Phase 1, detection and initial response: the quick-assessment checklist answered from data (1.2).

Each function is one notebook cell: it asks the sources, records what it saw on the
incident, and returns something the notebook shows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from irkit import evidence, limits
from irkit.display import charts
from irkit.evidence import records as R
from irkit.phases.incident import Incident, Note, Unavailable, shown
from irkit.rules.severity import Assessment, Signals, Thresholds, classify
from irkit.sources import http, k8s, pg, prom

__all__ = [
    "assessment",
    "checklist",
    "endpoint_health",
    "error_ratio_history",
    "error_ratio_now",
    "incident_start",
    "latency_history",
    "lock_waits",
    "latency_now",
    "peak",
    "pod_health",
    "related_incidents",
    "resolved_at",
    "when",
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
    return inc.record(R.ERROR_RATIO_NOW, inc.attempt("error ratio now", lambda: _per_service_and_overall(
        inc, partial(prom.error_ratio, inc.prom), "error_ratio", "error ratio now", "prom_requests_metric")))


def latency_now(inc: Incident) -> pd.DataFrame | Unavailable:
    """p95 latency per service right now, and overall: the playbook's "slow responses (>5s)" signal."""
    return inc.record(R.LATENCY_P95_NOW, inc.attempt("p95 latency now", lambda: _per_service_and_overall(
        inc, partial(prom.latency_quantile, inc.prom, 0.95), "seconds", "p95 latency now", "prom_latency_metric")))


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


SUSTAINED_STEPS = 3  # a peak counts when the series held it this many steps: one noisy sample is not an incident


def peak(frame: pd.DataFrame, label: str) -> dict[str, Any] | None:
    """The highest value each series held for :data:`SUSTAINED_STEPS` steps, over all series (pure):
    ``{service, value, at}``, or None for an empty frame."""
    best: dict[str, Any] | None = None
    groups = frame.groupby(label) if label in frame.columns else [("all", frame)]
    for service, series in groups:
        held = series["value"].sort_index().rolling(SUSTAINED_STEPS).min().dropna()
        if held.empty:
            continue
        position = int(held.to_numpy().argmax())
        value, at = float(held.iloc[position]), pd.Timestamp(held.index[position]).to_pydatetime()
        if best is None or value > best["value"]:
            best = {"service": str(service), "value": value, "at": at}
    return best


def resolved_at(frame: pd.DataFrame, threshold: float, label: str) -> datetime | None:
    """When every series last fell under ``threshold`` for good, if it did within the frame (pure)."""
    if frame.empty:
        return None
    worst = frame["value"].groupby(level=0).max().sort_index()
    above = worst[worst >= threshold]
    if above.empty or above.index[-1] == worst.index[-1]:
        return None  # never over, or still over
    return pd.Timestamp(worst.index[worst.index > above.index[-1]][0]).to_pydatetime()


def error_ratio_history(inc: Incident, window_minutes: int = 120) -> charts.Chart | Unavailable:
    """The error ratio per service over the window, with thresholds, deploys and the onset."""
    cfg = inc.config
    window = prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes)))
    frame = inc.attempt("error ratio history", lambda: prom.require_data(
        inc.prom, prom.error_ratio(inc.prom, window, by_service=True), "error ratio history", "prom_requests_metric"))
    if isinstance(frame, Unavailable):
        return frame
    start = incident_start(frame, cfg.error_ratio_moderate)
    inc.record(R.INCIDENT_START, start)
    inc.record(R.ONSET_SIGNAL, "error ratio" if start is not None else None)
    inc.record(R.ONSET_THRESHOLD, cfg.error_ratio_moderate)
    inc.record(R.WINDOW, {"start": window.start, "end": window.end})
    top = peak(frame, cfg.prom_service_label)
    if top is not None:
        inc.record(R.ERROR_RATIO_PEAK, {"service": top["service"], "error_ratio": top["value"], "at": top["at"]})
    inc.record(R.RESOLVED_AT, resolved_at(frame, cfg.error_ratio_moderate, cfg.prom_service_label))
    history = inc.attempt("rollout history", lambda: k8s.rollout_histories(inc.kube, cfg.deployments))
    deploys = history if isinstance(history, pd.DataFrame) else None
    return charts.error_ratio_chart(frame, moderate=cfg.error_ratio_moderate, high=cfg.error_ratio_high,
                                    deploys=deploys, incident_start=start,
                                    label=cfg.prom_service_label).with_data(inc.save_data("error-ratio", frame))


def latency_history(inc: Incident, window_minutes: int = 120) -> charts.Chart | Unavailable:
    """p95 latency per service over the window, against the SEV-2 line: a slow spike that has passed still
    counts as an incident."""
    cfg = inc.config
    window = prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes)))
    frame = inc.attempt("p95 latency history", lambda: prom.require_data(
        inc.prom, prom.latency_quantile(inc.prom, 0.95, window, by_service=True), "p95 latency history",
        "prom_latency_metric"))
    if isinstance(frame, Unavailable):
        return frame
    top = peak(frame, cfg.prom_service_label)
    if top is not None:
        inc.record(R.LATENCY_P95_PEAK, {"service": top["service"], "seconds": top["value"], "at": top["at"]})
    ratio_peak = inc.current(R.ERROR_RATIO_PEAK)
    errors_never_over = not ratio_peak or float(ratio_peak.get("error_ratio") or 0) < cfg.error_ratio_moderate
    if inc.current(R.INCIDENT_START) is None and errors_never_over:
        # A latency-only incident: its onset and its end are when p95 crossed its SEV-2 line and came back.
        start = incident_start(frame, cfg.latency_p95_slow_seconds)
        if start is not None:
            inc.record(R.INCIDENT_START, start)
            inc.record(R.ONSET_SIGNAL, "p95 latency")
            inc.record(R.ONSET_THRESHOLD, cfg.latency_p95_slow_seconds)
            inc.record(R.RESOLVED_AT, resolved_at(frame, cfg.latency_p95_slow_seconds, cfg.prom_service_label))
    drawn = charts.top_series(frame, cfg.prom_service_label)[0]  # the services that rose highest
    frames = {str(name): group.drop(columns=[cfg.prom_service_label]) for name, group in drawn.groupby(
        cfg.prom_service_label)} if cfg.prom_service_label in drawn.columns else {"all": drawn}
    return charts.latency_chart({f"p95 {name}": f for name, f in frames.items()},
                                slow_seconds=cfg.latency_p95_slow_seconds,
                                incident_start=inc.current(R.INCIDENT_START)).with_data(
        inc.save_data("latency-p95", frame))


def pod_health(inc: Incident) -> pd.DataFrame | Unavailable:
    """Deployments and StatefulSets with their ready replicas; records which have none ready."""
    frame = inc.attempt("workload readiness", lambda: k8s.deployments(inc.kube))
    if isinstance(frame, pd.DataFrame):
        down = frame[(frame["desired"] > 0) & (frame["ready"] == 0)]["name"].tolist()
        degraded = frame[(frame["ready"] < frame["desired"]) & (frame["ready"] > 0)]["name"].tolist()
        inc.record(R.WORKLOADS_DOWN, down)
        inc.record(R.WORKLOADS_DEGRADED, degraded)
    return inc.record(R.WORKLOADS, frame)


def endpoint_health(inc: Incident) -> pd.DataFrame:
    """The configured health endpoints, like ``curl -f``."""
    return inc.record(R.ENDPOINTS, inc.fetched("endpoints", lambda: http.check_all(inc.config)))


def lock_waits(inc: Incident) -> Note | Unavailable:
    """Sessions waiting on a lock right now: while they queue, an incident is ongoing whatever the error ratio."""
    graph = inc.attempt("lock waits now", lambda: pg.lock_graph(inc.pg))
    if isinstance(graph, Unavailable):
        return inc.record(R.LOCK_WAITS_NOW, graph)
    waiting = graph.waiting
    inc.record(R.LOCK_WAITS_NOW, {"waiting": waiting, "roots": len(graph.roots)})
    return Note(f"{waiting} session(s) wait on locks behind {len(graph.roots)} root(s)" if waiting
                else "no session waits on a lock")


def _unmeasured(inc: Incident) -> tuple[str, ...]:
    """The deciding signals this phase could not measure, each with why (the recorded error)."""
    missing = []
    for key, what in ((R.ERROR_RATIO_NOW, "error ratio"), (R.LATENCY_P95_NOW, "p95 latency"),
                      (R.WORKLOADS, "workload readiness")):
        if not inc.rows(key):
            failed = inc.unavailable(key)
            missing.append(f"{what}: {failed.error if failed else 'not measured (the step did not run)'}")
    if not inc.config.health_endpoints:
        missing.append("health endpoints: none configured; set health_endpoints to the critical user journeys "
                       "(playbook 4.1)")
    elif not inc.rows(R.ENDPOINTS):
        missing.append("health endpoints: not checked (the step did not run)")
    return tuple(missing)


def _signals(inc: Incident) -> Signals:
    ratios = {r["service"]: r["error_ratio"] for r in inc.rows(R.ERROR_RATIO_NOW)}
    p95s = {r["service"]: r["seconds"] for r in inc.rows(R.LATENCY_P95_NOW)}
    endpoints = inc.rows(R.ENDPOINTS)
    all_endpoints_down = bool(endpoints) and not any(e.get("ok") for e in endpoints)
    down = inc.current(R.WORKLOADS_DOWN)
    # No ready pod in a Deployment that serves users is an outage; in one that does not, a failing feature.
    outage = all_endpoints_down or any(name in inc.config.user_facing for name in down)
    features = tuple(f"{name} has no ready pod" for name in down
                     if name not in inc.config.user_facing and name in inc.config.deployments)
    # The worst service counts: a backend at 12 % is SEV-2 even if the average is lower.
    worst_ratio = max((v for v in ratios.values() if v is not None), default=None)
    worst_p95 = max((v for v in p95s.values() if v is not None), default=None)
    degraded = bool(inc.current(R.WORKLOADS_DEGRADED))
    journeys = tuple(sorted({(str(e["journey"]), int(e["journey_level"])) for e in endpoints
                             if e.get("journey") and e.get("journey_level") and not e.get("ok")}))
    return Signals(outage=outage, error_ratio=worst_ratio, latency_p95_seconds=worst_p95,
                   performance_degraded=degraded, feature_failures=features, journeys_failing=journeys,
                   unmeasured=_unmeasured(inc))


def assessment(inc: Incident) -> Assessment:
    """classify() on what this phase saw; records the severity, its reasons and the deadline.

    Real, ongoing and resolved are three questions (playbook 1.2). When nothing is over its threshold now
    but the error ratio or p95 held above one inside the window, the incident was real and is over: it is
    assessed at its peak, and said to be resolved, with when.
    """
    cfg = inc.config
    thresholds = Thresholds.from_config(cfg)
    detected = inc.current(R.INCIDENT_START) or inc.started_at
    now = classify(_signals(inc), thresholds, detected_at=detected)
    result = now
    ratio_peak, p95_peak = inc.current(R.ERROR_RATIO_PEAK), inc.current(R.LATENCY_P95_PEAK)
    if now.level == 4 and (ratio_peak or p95_peak):
        at_peak = classify(Signals(error_ratio=(ratio_peak or {}).get("error_ratio"),
                                   latency_p95_seconds=(p95_peak or {}).get("seconds")), thresholds,
                           detected_at=detected)
        if at_peak.real:
            peak_at = max(datetime.fromisoformat(p["at"]) for p in (ratio_peak, p95_peak) if p)
            over = inc.current(R.RESOLVED_AT)
            waiting = int((inc.current(R.LOCK_WAITS_NOW) or {}).get("waiting") or 0)
            now_says = (f"not over: {waiting} session(s) still wait on locks" if waiting else
                        f"resolved{f' at {when(over)}' if over else ''}: every signal is under its threshold now")
            result = Assessment(
                level=at_peak.level, detected_at=detected, respond_by=at_peak.respond_by,
                escalation=at_peak.escalation, unmeasured=now.unmeasured,
                reasons=(*(f"at its peak ({when(peak_at)}): {r}" for r in at_peak.reasons), now_says))
    inc.record(R.SEVERITY, result.as_dict())
    return result


def when(moment: datetime) -> str:
    """A moment as a reader at 3 a.m. needs it: the time alone when it was today (UTC), else with its date
    ("at its peak (15:33 UTC)" about a peak two days back would read as this afternoon)."""
    moment = moment.astimezone(UTC)
    return f"{moment:%H:%M} UTC" if moment.date() == datetime.now(UTC).date() else f"{moment:%Y-%m-%d %H:%M} UTC"


def _affected(inc: Incident) -> list[str]:
    cfg = inc.config
    services = [r["service"] for r in inc.rows(R.ERROR_RATIO_NOW)
                if r["service"] != "all" and (r["error_ratio"] or 0) >= cfg.error_ratio_moderate]
    services += [r["service"] for r in inc.rows(R.LATENCY_P95_NOW)
                 if r["service"] != "all" and (r["seconds"] or 0) > cfg.latency_p95_slow_seconds]
    workloads = inc.current(R.WORKLOADS_DOWN) + inc.current(R.WORKLOADS_DEGRADED)
    # A service named as its workload is (ledger-api and Deployment ledger-api) is one thing affected, said once.
    return sorted(set(services)) + sorted(set(workloads) - set(services))


def related_incidents(inc: Incident, outputs: str | Path | None = None, days: int = 30) -> pd.DataFrame | Note:
    """Other incidents' runs whose affected services overlap this one's, in the outputs this run is kept in
    (default: the directory two levels above the run, ``outputs/<incident>/<run>``). This incident's own runs are
    not related incidents: they are this one (the timeline gathers them)."""
    affected = set(_affected(inc))
    rows: list[dict[str, Any]] = []
    cutoff = datetime.now(UTC) - timedelta(days=days)
    outputs = Path(outputs) if outputs is not None else inc.run_dir.parent.parent
    for run in evidence.summaries(outputs):
        if run.run_dir.resolve() == inc.run_dir.resolve() or run.incident == inc.id:
            continue
        if run.finished_at is not None and run.finished_at < cutoff:
            continue
        overlap = affected & set(run.affected)
        if overlap:
            rows.append({"incident": run.incident, "run": run.run_id, "severity": run.severity,
                         "overlap": ", ".join(sorted(overlap)), "path": str(run.run_dir)})
    frame = pd.DataFrame(rows, columns=["incident", "run", "severity", "overlap", "path"])
    inc.record(R.RELATED_INCIDENTS, frame)
    return shown(frame, f"no earlier run in {outputs}/ in the last {days} days touched "
                        f"{', '.join(sorted(affected)) or 'these services'}")


def checklist(inc: Incident) -> pd.DataFrame:
    """The playbook's quick-assessment checklist (1.2), each box answered from the data above."""
    cfg = inc.config
    severity = inc.current(R.SEVERITY)
    ratios = inc.rows(R.ERROR_RATIO_NOW)
    worst = max((r["error_ratio"] for r in ratios if r["error_ratio"] is not None), default=None)
    unhealthy_now = bool(inc.current(R.WORKLOADS_DOWN) or inc.current(R.WORKLOADS_DEGRADED))
    slowest = max((r["seconds"] for r in inc.rows(R.LATENCY_P95_NOW) if r["seconds"] is not None), default=None)
    failing = [e for e in inc.rows(R.ENDPOINTS) if not e.get("ok")]
    waiting = int((inc.current(R.LOCK_WAITS_NOW) or {}).get("waiting") or 0)
    # Ongoing looks at every signal that can classify it, not the error ratio alone.
    ongoing: bool | None = ((worst is not None and worst >= cfg.error_ratio_moderate)
                            or (slowest is not None and slowest > cfg.latency_p95_slow_seconds)
                            or bool(failing) or unhealthy_now or waiting > 0)
    related = inc.rows(R.RELATED_INCIDENTS)
    affected = _affected(inc)
    real = severity.real if severity else None
    if not ongoing and (worst is None or slowest is None):
        ongoing = None  # nothing shows it, but not everything that would was measured
    over = inc.current(R.RESOLVED_AT)
    inc.record(R.AFFECTED, affected)
    inc.record(R.REAL, real)
    inc.record(R.ONGOING, ongoing)
    unmeasured = "; ".join(severity.unmeasured if severity else ())
    rows = [
        ("Confirm incident is real (not false positive)",
         "unknown: the deciding signals were not measured" if real is None else "yes" if real else
         "no: every deciding signal was measured and is under its threshold",
         "; ".join(severity.reasons if severity else ()) + (f"; not measured: {unmeasured}" if unmeasured else "")),
        ("Determine initial severity level", severity.name if severity else "unknown",
         f"respond by {severity.respond_by.isoformat() if severity else '?'}; escalate: "
         f"{severity.escalation if severity else '?'}"),
        ("Check if incident is ongoing or resolved",
         "unknown" if ongoing is None else "ongoing" if ongoing else
         (f"resolved at {when(over)}" if over and real else "resolved or not happening"),
         f"worst error ratio now {worst:.1%}" if worst is not None else "error ratio unavailable"),
        ("Identify affected systems/users", ", ".join(affected) or "none found", ""),
        ("Check for related incidents", f"{len(related)} related run(s)" if related else "none in outputs/", ""),
    ]
    return pd.DataFrame(rows, columns=["check", "answer", "evidence"])
