"""Phase 4, recovery and validation (4.1-4.3): one verdict, recovered or not, with what failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import pandas as pd

from irkit import http, k8s, pg, prom
from irkit.incident import Incident, Unavailable

__all__ = ["Verdict", "baseline", "checks", "verdict"]


@dataclass(frozen=True)
class Verdict:
    recovered: bool
    failed: tuple[str, ...] = field(default=())

    def _repr_html_(self) -> str:
        if self.recovered:
            return "<h3 style='color:#27ae60'>RECOVERED: every check passed</h3>"
        items = "".join(f"<li>{escape(f)}</li>" for f in self.failed)
        return f"<h3 style='color:#c0392b'>NOT RECOVERED</h3><ul>{items}</ul>"


def baseline(inc: Incident, hours_before: float = 2.0) -> pd.DataFrame | Unavailable:
    """Error ratio per service before the incident started (the pre-incident baseline)."""
    start = inc.earlier(1, "incident_start")
    at = datetime.fromisoformat(start) if start else datetime.now(UTC) - timedelta(hours=hours_before)
    at -= timedelta(minutes=10)
    frame = inc.attempt("baseline error ratio", lambda: prom.error_ratio(inc.prom, at=at, by_service=True))
    return inc.record("baseline", frame)


def _check(rows: list[dict[str, Any]], name: str, ok: bool, detail: str) -> None:
    rows.append({"check": name, "ok": bool(ok), "detail": detail})


def checks(inc: Incident) -> pd.DataFrame:
    """Health endpoints, error ratio and latency against thresholds, pods ready, orders flowing."""
    cfg = inc.config
    rows: list[dict[str, Any]] = []
    for ep in http.check_all(cfg).to_dict("records"):
        _check(rows, f"endpoint {ep['url']}", ep["ok"], f"HTTP {ep['status']} in {ep['seconds']:.2f} s"
               if ep["status"] else ep["error"])
    ratio = inc.attempt("error ratio now", lambda: prom.error_ratio(inc.prom, by_service=True))
    if isinstance(ratio, Unavailable):
        _check(rows, "error ratio", False, ratio.error)
    else:
        for row in ratio.to_dict("records"):
            _check(rows, f"error ratio {row.get(cfg.prom_service_label, 'all')}",
                   row["value"] < cfg.error_ratio_moderate, f"{row['value']:.1%} (threshold {cfg.error_ratio_moderate:.0%})")
    p95 = inc.attempt("p95 now", lambda: prom.latency_quantile(inc.prom, 0.95, by_service=True))
    if isinstance(p95, Unavailable):
        _check(rows, "p95 latency", False, p95.error)
    else:
        for row in p95.to_dict("records"):
            _check(rows, f"p95 latency {row.get(cfg.prom_service_label, 'all')}",
                   row["value"] <= cfg.latency_p95_slow_seconds, f"{row['value']:.2f} s")
    workloads = inc.attempt("workloads", lambda: k8s.deployments(inc.kube))
    if isinstance(workloads, Unavailable):
        _check(rows, "pods ready", False, workloads.error)
    else:
        for row in workloads.to_dict("records"):
            _check(rows, f"{row['kind']} {row['name']} ready", row["ready"] >= row["desired"],
                   f"{row['ready']}/{row['desired']} ready")
    recent = inc.attempt("recent orders", lambda: pg.recent_rows(inc.pg, window=timedelta(hours=1)))
    if isinstance(recent, Unavailable):
        _check(rows, "orders flowing", False, recent.error)
    else:
        _check(rows, "orders flowing", recent.count > 0, f"{recent.count} orders in the last hour")
    locks = inc.attempt("lock graph", lambda: pg.lock_graph(inc.pg))
    if isinstance(locks, Unavailable):
        _check(rows, "no lock waits", False, locks.error)
    else:
        _check(rows, "no lock waits", locks.empty, f"{len(locks.edges)} waiting session(s)")
    frame = pd.DataFrame(rows, columns=["check", "ok", "detail"])
    inc.record("checks", frame)
    return frame


def verdict(inc: Incident) -> Verdict:
    """Recovered only if every check passed."""
    rows = inc.records.get("checks") or []
    failed = tuple(f"{r['check']}: {r['detail']}" for r in rows if not r["ok"])
    result = Verdict(recovered=bool(rows) and not failed, failed=failed)
    inc.record("verdict", {"recovered": result.recovered, "failed": list(result.failed)})
    return result
