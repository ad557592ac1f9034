"""Phase 2, investigation and diagnosis (2.1-2.4): health checks, Kubernetes, metrics, database,
ending in a ranked list of findings. One function per notebook cell."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial
from typing import Any

import pandas as pd

from irkit import limits
from irkit.display import charts, views
from irkit.evidence import records as R
from irkit.phases import assess, history
from irkit.phases.incident import Incident, Note, Unavailable, shown
from irkit.rules.diagnosis import Observations, Targets, diagnose
from irkit.rules.kinds import Finding, Kind
from irkit.rules.names import belongs_to
from irkit.rules.severity import Assessment, revise
from irkit.sources import http, k8s, pg, prom

__all__ = [
    "config_changes", "cronjobs", "services",
    "activity", "connections", "database_logs", "traffic", "workloads", "endpoints", "error_ratio", "events", "findings", "fold_logs", "latency", "lock_graph",
    "logs",
    "long_running", "observations", "pod_chart", "previous_logs", "rollout_history", "saturation", "severity", "table_scans", "top",
    "top_statements",
    "unhealthy_pods",
]


def endpoints(inc: Incident) -> pd.DataFrame:
    """health-check.sh: every configured endpoint with status and time."""
    return inc.record(R.ENDPOINTS, inc.fetched("endpoints", lambda: http.check_all(inc.config)))


def unhealthy_pods(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """``kubectl get pods | grep -v Running``."""
    return shown(inc.record(R.UNHEALTHY_PODS, inc.attempt("unhealthy pods", lambda: k8s.unhealthy(_pods(inc)))),
                 "no unhealthy pod: every pod is Running and ready")


def _pods(inc: Incident) -> pd.DataFrame:
    """The namespace's pods, listed once for the phase's cells (unhealthy pods, the chart, previous logs)."""
    return inc.fetched("pods", lambda: k8s.pods(inc.kube))


def pod_chart(inc: Incident) -> charts.Chart | Unavailable:
    frame = inc.attempt("pods", lambda: _pods(inc))
    return frame if isinstance(frame, Unavailable) else charts.pod_status_chart(frame)


def events(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """Warning events, newest first."""
    return shown(inc.record(R.WARNING_EVENTS,
                            inc.attempt("events", lambda: k8s.events(inc.kube, warnings_only=True, limit=50))),
                 "no Warning event in the namespace")


def top(inc: Incident) -> Any:
    """``kubectl top pods`` (or why it is unavailable)."""
    result = inc.attempt("top pods", lambda: k8s.top_pods(inc.kube))
    if isinstance(result, k8s.MetricsResult):
        inc.record(R.TOP_PODS, result.frame if result.available else {"unavailable": result.note})
    return result


def fold_logs(frame: pd.DataFrame) -> pd.DataFrame:
    """Identical log text from several pods once, with the pods that printed it (pure).

    Columns: ``deployment, container, pods, text``: three replicas crashing the same
    way show one panic, not three truncated copies.
    """
    columns = ["deployment", "container", "pods", "text"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(["deployment", "container", "text"], sort=False)["pod"].agg(list).reset_index()
    return grouped.rename(columns={"pod": "pods"})[columns]


def logs(inc: Incident, tail: int = 50) -> views.LogView | Unavailable:
    """``kubectl logs deployment/... --tail=N`` for the backend and frontend, identical pods folded."""
    limits.bounded("log_tail", tail)
    def run() -> pd.DataFrame:
        return pd.concat([k8s.logs(inc.kube, d, tail=tail).assign(deployment=d) for d in inc.config.deployments],
                         ignore_index=True)
    frame = inc.attempt("logs", run)
    if isinstance(frame, Unavailable):
        return inc.record(R.LOGS, frame)
    return views.LogView(inc.record(R.LOGS, fold_logs(frame)), "logs")


def previous_logs(inc: Incident, tail: int = 50) -> views.LogView | Unavailable:
    """``kubectl logs --previous`` of the pods that restarted: the crash itself, identical pods folded."""
    limits.bounded("log_tail", tail)
    def run() -> pd.DataFrame:
        restarted = _pods(inc)
        restarted = restarted[restarted["restarts"] > 0]
        frames = []
        for deployment in inc.config.deployments:
            # A Deployment's pods are named <deployment>-<hash>-<5 characters>: none restarted, nothing to ask.
            mine = restarted[[belongs_to(str(pod), deployment, str(owner or ""))
                              for pod, owner in zip(restarted["pod"], restarted["owner"], strict=True)]]
            if mine.empty:
                continue
            frame = k8s.logs(inc.kube, deployment, tail=tail, previous=True, only=mine["pod"])
            frames.append(frame.assign(deployment=deployment))
        if not frames:
            return pd.DataFrame(columns=["pod", "container", "previous", "text", "deployment"])
        return pd.concat(frames, ignore_index=True)
    frame = inc.attempt("previous logs", run)
    if isinstance(frame, Unavailable):
        return inc.record(R.PREVIOUS_LOGS, frame)
    return views.LogView(inc.record(R.PREVIOUS_LOGS, fold_logs(frame)), "previous logs of restarted pods")


def _window(inc: Incident, window_minutes: int) -> prom.Window:
    return prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes)))


def error_ratio(inc: Incident, window_minutes: int = 120) -> charts.Chart | Unavailable:
    """Error ratio per service over the incident window."""
    cfg = inc.config
    frame = inc.attempt("error ratio", lambda: prom.require_data(inc.prom, prom.error_ratio(
        inc.prom, _window(inc, window_minutes), by_service=True), "error ratio", "prom_requests_metric"))
    if isinstance(frame, Unavailable):
        return frame
    assess.error_ratio_now(inc)  # the same record, in the same shape, as phase 1's
    start = inc.earlier(R.INCIDENT_START)
    return charts.error_ratio_chart(frame, moderate=cfg.error_ratio_moderate, high=cfg.error_ratio_high,
                                    deploys=_deploys(inc), incident_start=start,
                                    label=cfg.prom_service_label).with_data(inc.save_data("error-ratio", frame))


def _deploys(inc: Incident) -> pd.DataFrame | None:
    """Deploy markers: the rollout history this phase recorded, asked for only if no cell did yet."""
    if not inc.has(R.ROLLOUT_HISTORY):
        rollout_history(inc)
    rows = inc.rows(R.ROLLOUT_HISTORY)
    return pd.DataFrame(rows) if rows else None


def _quantile(inc: Incident, q: float, window: prom.Window) -> pd.DataFrame:
    # inc.prom inside the attempt: it may raise
    return prom.require_data(inc.prom, prom.latency_quantile(inc.prom, q, window), f"p{int(q * 100)} latency",
                             "prom_latency_metric", by_service=False)


def latency(inc: Incident, window_minutes: int = 120) -> charts.Chart | Unavailable:
    """p95 and p99 over the window, against the SEV-2 line (latency_p95_slow_seconds)."""
    window = _window(inc, window_minutes)
    frames: dict[str, Any] = {}
    for q in (0.95, 0.99):
        frame = inc.attempt(f"p{int(q * 100)} latency", partial(_quantile, inc, q, window))
        if isinstance(frame, Unavailable):
            return frame
        frames[f"p{int(q * 100)}"] = frame
    assess.latency_now(inc)
    saved = [inc.save_data(f"latency-{name}", frame) for name, frame in frames.items()]
    return charts.latency_chart(frames, slow_seconds=inc.config.latency_p95_slow_seconds,
                                incident_start=inc.earlier(R.INCIDENT_START),
                                deploys=_deploys(inc)).with_data(*saved)


def activity(inc: Incident) -> pd.DataFrame | Unavailable:
    """pg_stat_activity by state (2.4)."""
    return inc.record(R.PG_ACTIVITY, inc.attempt("database activity", lambda: pg.activity_by_state(inc.pg)))


def lock_graph(inc: Incident) -> Any:
    """Who blocks whom; shows the tree and the graph chart."""
    graph = inc.attempt("lock graph", lambda: pg.lock_graph(inc.pg))
    if isinstance(graph, Unavailable):
        return graph
    inc.record(R.LOCK_EDGES, graph.edges)
    inc.record(R.LOCK_ROOTS, graph.roots)
    inc.record(R.LOCK_CYCLES, graph.cycles)
    inc.record(R.LOCK_TREE, graph.tree())
    history.record_sample(inc, graph, "phase 2")
    return views.LockView(graph)


def long_running(inc: Incident, older_than_seconds: float = 60) -> pd.DataFrame | Note | Unavailable:
    """Active queries and idle-in-transaction sessions older than the bound."""
    limits.bounded("older_than_seconds", older_than_seconds)
    return shown(inc.record(R.LONG_RUNNING, inc.attempt(
        "long-running queries", lambda: pg.long_running(inc.pg, timedelta(seconds=older_than_seconds)))),
        f"no active query or open transaction older than {older_than_seconds:g} s")


def table_scans(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """Tables read whole by sequential scans, most rows read first: a big one read again and again wants an
    index (``pg_stat_user_tables``)."""
    return shown(inc.record(R.TABLE_SCANS, inc.attempt("sequential scans", lambda: pg.seq_scans(inc.pg))),
                 "no table was read by a sequential scan")


def top_statements(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """The statements that took the most time (``pg_stat_statements``), when the extension is installed."""
    found = inc.attempt("top statements", lambda: pg.top_statements(inc.pg))
    if found is None:
        inc.record(R.TOP_STATEMENTS, [])
        return Note("pg_stat_statements is not installed in this database: without it the slowest statements are "
                    "not known (shared_preload_libraries = 'pg_stat_statements', then CREATE EXTENSION "
                    "pg_stat_statements)")
    return shown(inc.record(R.TOP_STATEMENTS, found), "no statement recorded yet")


def saturation(inc: Incident) -> Any:
    """Connections against max_connections, red from pg_saturation_ratio."""
    result = inc.record(R.PG_SATURATION, inc.attempt("connection saturation", lambda: pg.saturation(inc.pg)))
    if isinstance(result, Unavailable):
        return result
    return views.SaturationView(str(result), result.ratio, inc.config.pg_saturation_ratio)


def config_changes(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """ConfigMaps and Secrets and when each was last written, newest first (a Secret's values are never read)."""
    return shown(inc.record(R.CONFIG_CHANGES, inc.attempt("config changes", lambda: k8s.config_changes(inc.kube))),
                 "no ConfigMap or Secret in the namespace")


def services(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """``kubectl get svc,endpoints``: a Service that selects ready pods but lists none of them routes nothing."""
    return shown(inc.record(R.SERVICES, inc.attempt("services", lambda: k8s.services(inc.kube))),
                 "no Service in the namespace")


def cronjobs(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """``kubectl get cronjobs``: what runs on a schedule, and what it runs (one that re-applies a change undoes
    every fix until it is suspended)."""
    return shown(inc.record(R.CRONJOBS, inc.attempt("cronjobs", lambda: k8s.cronjobs(inc.kube))),
                 "no CronJob in the namespace")


def rollout_history(inc: Incident) -> pd.DataFrame | Unavailable:
    """Revision history of the deployments (the deploy markers and rollback candidates)."""
    return inc.record(R.ROLLOUT_HISTORY, inc.attempt(
        "rollout history", lambda: k8s.rollout_histories(inc.kube, inc.config.deployments)))


def connections(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """Who holds the database's connections: by application and state (the pool an app filled)."""
    return shown(inc.record(R.CONNECTIONS, inc.attempt("connections by application",
                                                        lambda: pg.connections_by_application(inc.pg))),
                 "no client connection besides irkit's")


def database_logs(inc: Incident, tail: int = 50) -> views.LogView | Unavailable:
    """The database's own logs (its StatefulSet's pods) and its deadlock counter: deadlocks PostgreSQL broke
    show here, with both queries."""
    limits.bounded("log_tail", tail)
    count = inc.attempt("deadlocks", lambda: pg.deadlocks(inc.pg))
    if isinstance(count, int):
        inc.record(R.PG_DEADLOCKS, {"deadlocks": count})
    def read() -> pd.DataFrame:
        name = inc.config.postgres_statefulset
        now = k8s.logs(inc.kube, name, tail=tail, kind="StatefulSet")
        # A database pod that restarted said why in its previous container (a full disk, a crash): read that too.
        restarted = [str(p["pod"]) for p in inc.rows(R.UNHEALTHY_PODS)
                     if p.get("restarts") and belongs_to(str(p["pod"]), name, str(p.get("owner") or ""))]
        if not restarted:
            return now.assign(deployment=name)
        before = k8s.logs(inc.kube, name, tail=tail, kind="StatefulSet", previous=True, only=restarted)
        return pd.concat([now, before], ignore_index=True).assign(deployment=name)

    frame = inc.attempt("database logs", read)
    if isinstance(frame, Unavailable):
        return inc.record(R.DATABASE_LOGS, frame)
    return views.LogView(inc.record(R.DATABASE_LOGS, fold_logs(frame)), "database logs")


def workloads(inc: Incident) -> pd.DataFrame | Unavailable:
    """``kubectl get deployments,statefulsets``: replicas desired and ready (what a scale-up starts from)."""
    return inc.record(R.WORKLOADS, inc.attempt("workloads", lambda: k8s.deployments(inc.kube)))


def traffic(inc: Incident, window_minutes: int = 120) -> pd.DataFrame | Unavailable:
    """Requests per second per service now, against its baseline: the median before the onset phase 1 found, else
    of the first half of the service's own series in the window (a service with less history than the window, a new
    one or one whose metrics began late, still has one)."""
    window = _window(inc, window_minutes)
    label = inc.config.prom_service_label
    view = inc.view()
    onset = inc.earlier(R.INCIDENT_START) or (view.onset.value if view.onset else None)

    def baseline(values: pd.Series) -> float | None:
        before = values[values.index < pd.Timestamp(onset)] if onset is not None else values.iloc[:0]
        if len(before) < BASELINE_POINTS:
            start, end = values.index.min(), values.index.max()
            before = values[values.index < start + (end - start) / 2]
        return float(before.median()) if len(before) >= BASELINE_POINTS else None

    def run() -> pd.DataFrame:
        history = prom.request_rate(inc.prom, window, by_service=True)
        now = prom.require_data(inc.prom, prom.request_rate(inc.prom, by_service=True), "request rate now",
                                "prom_requests_metric")
        baselines = ({str(name): baseline(group["value"]) for name, group in history.groupby(label)}
                     if label in history.columns else {})
        rows = [{"service": row[label], "rps_now": row["value"], "rps_baseline": baselines.get(str(row[label]))}
                for row in now.to_dict("records") if label in row]
        return pd.DataFrame(rows, columns=["service", "rps_now", "rps_baseline"])
    return inc.record(R.REQUEST_RATE, inc.attempt("request rate", run))


BASELINE_POINTS = 4  # a baseline is a median of at least this many points


def observations(inc: Incident) -> Observations:
    """What this phase recorded, as the diagnosis reads it."""
    return Observations(
        lock_roots=inc.rows(R.LOCK_ROOTS), lock_cycles=inc.current(R.LOCK_CYCLES),
        long_running=inc.rows(R.LONG_RUNNING), saturation=inc.current(R.PG_SATURATION),
        unhealthy_pods=inc.rows(R.UNHEALTHY_PODS), rollout_history=inc.rows(R.ROLLOUT_HISTORY),
        error_ratio_now=inc.rows(R.ERROR_RATIO_NOW), latency_p95_now=inc.rows(R.LATENCY_P95_NOW),
        endpoints=inc.rows(R.ENDPOINTS), problems=inc.problems, lock_edges=inc.rows(R.LOCK_EDGES),
        connections=inc.rows(R.CONNECTIONS), logs=inc.rows(R.LOGS) + inc.rows(R.PREVIOUS_LOGS),
        warning_events=inc.rows(R.WARNING_EVENTS), request_rate=inc.rows(R.REQUEST_RATE),
        workloads=inc.rows(R.WORKLOADS), database_logs=inc.rows(R.DATABASE_LOGS),
        config_changes=inc.rows(R.CONFIG_CHANGES), cronjobs=inc.rows(R.CRONJOBS), services=inc.rows(R.SERVICES),
        table_scans=inc.rows(R.TABLE_SCANS), top_statements=inc.rows(R.TOP_STATEMENTS),
        deadlocks=(inc.current(R.PG_DEADLOCKS) or {}).get("deadlocks"))


def severity(inc: Incident) -> Assessment | Note:
    """Phase 1's severity revisited with the findings (playbook 1.2): authentication failures and blockchain
    connectivity issues are SEV-2, decided from the finding that shows them; a cause found while every signal is
    under its threshold makes a minor incident (SEV-4), never "not an incident". Recorded for the messages, the
    report and the post-mortem, which use it from here on."""
    # This run's phase 1 when it ran (an unknown severity stays this run's word: an older run's known one is not
    # put in its place), else the incident's newest assessment.
    base = inc.earlier(R.SEVERITY)
    if base is None:
        assessed = inc.view().assessed
        if assessed is None:
            return Note("no severity to revisit: phase 1 has not assessed this incident (run it, then this cell)")
        base = assessed.value
    found = inc.current(R.FINDINGS)

    def shown_by(*wanted: Kind, replies: tuple[str, ...] = ()) -> str:
        hit = next((f for f in found if f.kind in wanted and (not replies or _reply(f) in replies)), None)
        return f"{hit.kind.value} {hit.subject}" if hit else ""

    cause = next((f for f in found if f.is_cause and f.kind is not Kind.SOURCE_UNAVAILABLE), None)
    revised = revise(base,
                     authentication_failures=shown_by(Kind.CREDENTIALS_REJECTED) or shown_by(
                         Kind.DATASTORE_REFUSING, replies=("NOAUTH", "WRONGPASS")),
                     blockchain_connectivity_lost=_blockchain(found),
                     cause=f"{cause.kind.value} {cause.subject}: {cause.detail}"[:200] if cause else "")
    inc.record(R.SEVERITY_REVISED, revised.as_dict())
    return revised


# The words that make a provider failure a blockchain one (the playbook's SEV-2), not any "provider" (OAuth, payment,
# identity): a Web3 library, a JSON-RPC method, a known node provider.
_BLOCKCHAIN = re.compile(r"\b(blockchain|web3|ethers|infura|alchemy|quicknode|json-?rpc|eth_\w+)\b", re.IGNORECASE)


def _blockchain(found: list[Finding]) -> str:
    hit = next((f for f in found if f.kind is Kind.PROVIDER_FAILING and _BLOCKCHAIN.search(f.detail)), None)
    return f"{hit.kind.value} {hit.subject}" if hit else ""


def _reply(finding: Finding) -> str:
    return str(getattr(finding.evidence, "reply", ""))


def findings(inc: Incident) -> pd.DataFrame | Note:
    """The ranked findings: causes first. Recorded for the plan and the post-mortem."""
    ranked = diagnose(observations(inc), Targets.from_config(inc.config))
    inc.record(R.FINDINGS, [f.as_dict() for f in ranked])
    return shown(pd.DataFrame([{"rank": i + 1, "kind": f.kind.value, "subject": f.subject, "detail": f.detail}
                               for i, f in enumerate(ranked)], columns=["rank", "kind", "subject", "detail"]),
                 "no finding: every source answered and nothing is over its threshold")
