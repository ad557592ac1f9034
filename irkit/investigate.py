"""Phase 2, investigation and diagnosis (2.1-2.4): health checks, Kubernetes, metrics, database,
ending in a ranked list of findings. One function per notebook cell."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import pandas as pd

from irkit import charts, http, k8s, limits, pg, prom
from irkit.findings import Finding, rank
from irkit.incident import Incident, Note, Unavailable, shown

__all__ = [
    "LogView", "activity", "endpoints", "error_ratio", "events", "findings", "fold_logs", "latency", "lock_graph",
    "logs",
    "long_running", "pod_chart", "previous_logs", "rollout_history", "saturation", "top", "unhealthy_pods",
]


def endpoints(inc: Incident) -> pd.DataFrame:
    """health-check.sh: every configured endpoint with status and time."""
    return inc.record("endpoints", http.check_all(inc.config))


def unhealthy_pods(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """``kubectl get pods | grep -v Running``."""
    return shown(inc.record("unhealthy_pods", inc.attempt("unhealthy pods", lambda: k8s.unhealthy_pods(inc.kube))),
                 "no unhealthy pod: every pod is Running and ready")


def pod_chart(inc: Incident) -> charts.Chart | Unavailable:
    frame = inc.attempt("pods", lambda: k8s.pods(inc.kube))
    return frame if isinstance(frame, Unavailable) else charts.pod_status_chart(frame)


def events(inc: Incident) -> pd.DataFrame | Note | Unavailable:
    """Warning events, newest first."""
    return shown(inc.record("warning_events",
                            inc.attempt("events", lambda: k8s.events(inc.kube, warnings_only=True, limit=50))),
                 "no Warning event in the namespace")


def top(inc: Incident) -> Any:
    """``kubectl top pods`` (or why it is unavailable)."""
    result = inc.attempt("top pods", lambda: k8s.top_pods(inc.kube))
    if isinstance(result, k8s.MetricsResult):
        inc.record("top_pods", result.frame if result.available else {"unavailable": result.note})
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


class LogView:
    """Folded logs shown whole: a header per group, the text in a ``<pre>`` block."""

    def __init__(self, frame: pd.DataFrame, title: str) -> None:
        self.frame = frame
        self.title = title

    def _blocks(self) -> list[tuple[str, str]]:
        return [(f"{row['deployment']} / {row['container']}: {len(row['pods'])} pod(s) {', '.join(row['pods'])}",
                 str(row["text"])) for row in self.frame.to_dict("records")]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from html import escape
        blocks = self._blocks()
        if not blocks:
            return {"text/plain": f"{self.title}: none"}
        return {"text/plain": "\n\n".join(f"== {head}\n{text}" for head, text in blocks),
                "text/html": "".join(f"<p><b>{escape(head)}</b></p><pre>{escape(text)}</pre>" for head, text in blocks)}


def logs(inc: Incident, tail: int = 50) -> LogView | Unavailable:
    """``kubectl logs deployment/... --tail=N`` for the backend and frontend, identical pods folded."""
    limits.bounded("log_tail", tail)
    def run() -> pd.DataFrame:
        return pd.concat([k8s.logs(inc.kube, d, tail=tail).assign(deployment=d) for d in inc.config.deployments],
                         ignore_index=True)
    frame = inc.attempt("logs", run)
    if isinstance(frame, Unavailable):
        return inc.record("logs", frame)
    return LogView(inc.record("logs", fold_logs(frame)), "logs")


def previous_logs(inc: Incident, tail: int = 50) -> LogView | Unavailable:
    """``kubectl logs --previous`` of the pods that restarted: the crash itself, identical pods folded."""
    limits.bounded("log_tail", tail)
    def run() -> pd.DataFrame:
        restarted = k8s.pods(inc.kube)
        restarted = restarted[restarted["restarts"] > 0]
        frames = []
        for deployment in inc.config.deployments:
            frame = k8s.logs(inc.kube, deployment, tail=tail, previous=True)
            frames.append(frame[frame["pod"].isin(restarted["pod"])].assign(deployment=deployment))
        return pd.concat(frames, ignore_index=True)
    frame = inc.attempt("previous logs", run)
    if isinstance(frame, Unavailable):
        return inc.record("previous_logs", frame)
    return LogView(inc.record("previous_logs", fold_logs(frame)), "previous logs of restarted pods")


def _window(inc: Incident, window_minutes: int) -> prom.Window:
    return prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes)))


def error_ratio(inc: Incident, window_minutes: int = 120) -> charts.Chart | Unavailable:
    """Error ratio per service over the incident window."""
    cfg = inc.config
    frame = inc.attempt("error ratio", lambda: prom.require_data(inc.prom, prom.error_ratio(
        inc.prom, _window(inc, window_minutes), by_service=True), "error ratio", "prom_requests_metric"))
    if isinstance(frame, Unavailable):
        return frame
    now = inc.attempt("error ratio now", lambda: prom.error_ratio(inc.prom, by_service=True))
    if isinstance(now, pd.DataFrame):
        inc.record("error_ratio_now", now.rename(columns={cfg.prom_service_label: "service"}))
    start = inc.earlier(1, "incident_start")
    return charts.error_ratio_chart(frame, moderate=cfg.error_ratio_moderate, high=cfg.error_ratio_high,
                                    deploys=_deploys(inc), incident_start=start,
                                    label=cfg.prom_service_label).with_data(inc.save_data("error-ratio", frame))


def _deploys(inc: Incident) -> pd.DataFrame | None:
    """Deploy markers: the rollout history this phase recorded, asked for only if no cell did yet."""
    if "rollout_history" not in inc.records:
        rollout_history(inc)
    rows = inc.rows("rollout_history")
    return pd.DataFrame(rows) if rows else None


def _quantile(inc: Incident, q: float, window: prom.Window) -> pd.DataFrame:
    # inc.prom inside the attempt: it may raise
    return prom.require_data(inc.prom, prom.latency_quantile(inc.prom, q, window), f"p{int(q * 100)} latency",
                             "prom_latency_metric", by_service=False)


def latency(inc: Incident, window_minutes: int = 120) -> charts.Chart | Unavailable:
    """p95 and p99 over the window, against the 5 s line."""
    window = _window(inc, window_minutes)
    frames: dict[str, Any] = {}
    for q in (0.95, 0.99):
        frame = inc.attempt(f"p{int(q * 100)} latency", partial(_quantile, inc, q, window))
        if isinstance(frame, Unavailable):
            return frame
        frames[f"p{int(q * 100)}"] = frame
    now = inc.attempt("p95 now", lambda: prom.latency_quantile(inc.prom, 0.95, by_service=True))
    inc.record("latency_p95_now", now)
    saved = [inc.save_data(f"latency-{name}", frame) for name, frame in frames.items()]
    return charts.latency_chart(frames, slow_seconds=inc.config.latency_p95_slow_seconds,
                                incident_start=inc.earlier(1, "incident_start"),
                                deploys=_deploys(inc)).with_data(*saved)


def activity(inc: Incident) -> pd.DataFrame | Unavailable:
    """pg_stat_activity by state (2.4)."""
    return inc.record("pg_activity", inc.attempt("database activity", lambda: pg.activity_by_state(inc.pg)))


def lock_graph(inc: Incident) -> Any:
    """Who blocks whom; shows the tree and the graph chart."""
    graph = inc.attempt("lock graph", lambda: pg.lock_graph(inc.pg))
    if isinstance(graph, Unavailable):
        return graph
    inc.record("lock_edges", graph.edges)
    inc.record("lock_roots", graph.roots)
    inc.record("lock_cycles", graph.cycles)
    inc.record("lock_tree", graph.tree())
    return _LockView(graph)


class _LockView:
    def __init__(self, graph: pg.LockGraph) -> None:
        self.graph = graph

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = charts.lock_graph_chart(self.graph)._repr_mimebundle_()
        from html import escape
        bundle["text/html"] = f"<pre>{escape(self.graph.tree())}</pre>" + bundle["text/html"]
        bundle["text/plain"] = self.graph.tree()
        return bundle


def long_running(inc: Incident, older_than_seconds: float = 60) -> pd.DataFrame | Note | Unavailable:
    """Active queries and idle-in-transaction sessions older than the bound."""
    limits.bounded("older_than_seconds", older_than_seconds)
    return shown(inc.record("long_running", inc.attempt(
        "long-running queries", lambda: pg.long_running(inc.pg, timedelta(seconds=older_than_seconds)))),
        f"no active query or open transaction older than {older_than_seconds:g} s")


def saturation(inc: Incident) -> Any:
    """Connections against max_connections."""
    return inc.record("pg_saturation", inc.attempt("connection saturation", lambda: pg.saturation(inc.pg)))


def _age_minutes(created: Any) -> float:
    moment = pd.Timestamp(created)
    return float((pd.Timestamp.now(tz="UTC") - moment).total_seconds() / 60)


def _findings(inc: Incident) -> list[Finding]:
    cfg = inc.config
    rec = inc.records
    out: list[Finding] = []
    for root in inc.rows("lock_roots"):
        out.append(Finding("lock-root", f"pid {root['pid']}",
                           f"{root.get('state')} session blocks {root['blocked_count']} session(s): "
                           f"{(root.get('query') or '')[:120]}",
                           {"pid": root["pid"], "blocked_count": root["blocked_count"], "state": root.get("state"),
                            "impact": root["blocked_count"]}))
    for cycle in inc.rows("lock_cycles"):
        out.append(Finding("deadlock", "pids " + ",".join(map(str, cycle)), "sessions wait on each other",
                           {"pids": list(cycle)}))
    for row in inc.rows("long_running"):
        # long_running already applied the notebook's older_than_seconds bound.
        if row.get("state") == "active" and (row.get("wait_event_type") or "") != "Lock":
            out.append(Finding("long-running-query", f"pid {row['pid']}",
                               f"active for {row['age_seconds']:.0f} s: {(row.get('query') or '')[:120]}",
                               {"pid": row["pid"], "age_seconds": row["age_seconds"], "impact": row["age_seconds"]}))
    sat = rec.get("pg_saturation")
    if isinstance(sat, dict) and sat.get("max_connections"):
        ratio = sat["sessions"] / max(1, sat["max_connections"] - sat.get("reserved", 0))
        if ratio >= 0.9:
            out.append(Finding("db-saturation", "postgres", f"{sat['sessions']} of {sat['max_connections']} "
                                                            "connections in use", {"impact": ratio}))
    pods = inc.rows("unhealthy_pods")
    crashing_by_app: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        reason = pod.get("waiting_reason") or ""
        if reason == "CrashLoopBackOff":
            crashing_by_app.setdefault(pod.get("owner") or "", []).append(pod)
        elif pod.get("last_termination_reason") == "OOMKilled":
            deployment = _deployment_of(pod, cfg)
            out.append(Finding("oom-killed", deployment, f"pod {pod['pod']} was OOMKilled "
                                                          f"({pod['restarts']} restarts)",
                               {"deployment": deployment, "pod": pod["pod"], "impact": pod["restarts"],
                                "container": _container_of(deployment, cfg)}))
        elif reason in ("ImagePullBackOff", "ErrImagePull"):
            out.append(Finding("image-pull", pod["pod"], f"cannot pull the image ({reason})", {}))
        elif not pod.get("all_ready"):
            out.append(Finding("pods-not-ready", pod["pod"], f"{pod.get('phase')} {reason}".strip(), {}))
    for group in crashing_by_app.values():
        deployment = _deployment_of(group[0], cfg)
        history = [h for h in inc.rows("rollout_history") if h["deployment"] == deployment]
        current = [h for h in history if h.get("current")]
        previous = [h for h in history if not h.get("current")]
        if current and previous and _age_minutes(current[-1]["created"]) < 24 * 60:
            cur = current[-1]
            out.append(Finding("bad-revision", deployment,
                               f"revision {cur['revision']} ({cur['images']}) crashloops in {len(group)} pod(s) since "
                               f"its deploy {_age_minutes(cur['created']):.0f} min ago",
                               {"deployment": deployment, "revision": cur["revision"], "image": cur["images"],
                                "previous_revision": previous[-1]["revision"], "age_minutes": _age_minutes(cur["created"]),
                                "impact": len(group)}))
        else:
            for pod in group:
                out.append(Finding("crashloop", pod["pod"], f"CrashLoopBackOff, {pod['restarts']} restarts", {}))
    for row in inc.rows("error_ratio_now"):
        ratio = row.get("value", row.get("error_ratio"))
        service = row.get("service", "all")
        if ratio is not None and ratio >= cfg.error_ratio_moderate:
            out.append(Finding("error-spike", service, f"{ratio:.1%} of requests fail", {"impact": ratio}))
    for row in inc.rows("latency_p95_now"):
        value = row.get("value")
        if value is not None and value > cfg.latency_p95_slow_seconds:
            out.append(Finding("slow-latency", row.get(cfg.prom_service_label, "all"), f"p95 {value:.1f} s",
                               {"impact": value}))
    for ep in inc.rows("endpoints"):
        if not ep.get("ok"):
            out.append(Finding("endpoint-down", ep["url"], ep.get("error") or f"HTTP {ep.get('status')}", {}))
    for problem in inc.problems:
        out.append(Finding("source-unavailable", problem["step"], problem["error"], {}))
    return rank(out)


def _deployment_of(pod: dict[str, Any], cfg: Any) -> str:
    name = pod["pod"]
    for deployment in (*cfg.deployments, cfg.postgres_statefulset, cfg.redis_statefulset):
        if name.startswith(deployment + "-"):
            return str(deployment)
    return str(pod.get("owner") or name)


def _container_of(deployment: str, cfg: Any) -> str:
    return str(cfg.frontend_container if deployment == cfg.frontend_deployment else cfg.backend_container)


def rollout_history(inc: Incident) -> pd.DataFrame | Unavailable:
    """Revision history of the deployments (the deploy markers and rollback candidates)."""
    return inc.record("rollout_history", inc.attempt(
        "rollout history", lambda: k8s.rollout_histories(inc.kube, inc.config.deployments)))


def findings(inc: Incident) -> pd.DataFrame | Note:
    """The ranked findings: causes first. Recorded for the plan and the post-mortem."""
    ranked = _findings(inc)
    inc.record("findings", [{"kind": f.kind, "subject": f.subject, "detail": f.detail, "evidence": f.evidence}
                            for f in ranked])
    return shown(pd.DataFrame([{"rank": i + 1, "kind": f.kind, "subject": f.subject, "detail": f.detail}
                               for i, f in enumerate(ranked)], columns=["rank", "kind", "subject", "detail"]),
                 "no finding: every source answered and nothing is over its threshold")

