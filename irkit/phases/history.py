"""The incident through time, across its layers and runs: the cross-layer view (error ratio, latency, pods,
locks and deploys on one time axis) and the lock history. Cells of phases 2, 4 and 5; the report puts the
newest cross-layer view at its top and the post-mortem carries it as an image."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from irkit import limits
from irkit.display import charts, views
from irkit.escaping import code_span, markdown
from irkit.evidence import records as R
from irkit.evidence.lockhistory import incident_samples
from irkit.evidence.timeline import incident_runs
from irkit.phases.communicate import incident_records
from irkit.phases.incident import Incident, Note
from irkit.rules.locks import episodes, sample
from irkit.sources import prom

__all__ = ["cross_layer", "episode_lines", "lock_history", "record_sample"]


def record_sample(inc: Incident, graph: Any, source: str) -> None:
    """Add the lock graph just read to this phase's samples (phase 2's cell, each of phase 4's rounds)."""
    inc.record(R.LOCK_SAMPLES, [*inc.rows(R.LOCK_SAMPLES), sample(graph, datetime.now(UTC), source)])


def _series(inc: Incident, name: str, what: str, query: Any) -> pd.DataFrame | None:
    """A series this phase already saved (asked once per run), else asked now; None when it cannot be had."""
    if name in inc.frames:
        return inc.frames[name]
    frame = inc.attempt(what, query)
    if not isinstance(frame, pd.DataFrame):
        return None
    inc.save_data(name, frame)  # the full series beside the chart, and asked once more in this phase is free
    return frame


def cross_layer(inc: Incident, window_minutes: int = 120) -> charts.Chart:
    """Error ratio, p95 latency, the pods' warnings and terminations, lock waits and deploys on one time axis,
    over the window and every run of the incident so far (phase 4 after a fix shows the recovery on it)."""
    cfg = inc.config
    window = prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes)))
    errors = _series(inc, "error-ratio", "error ratio", lambda: prom.error_ratio(inc.prom, window, by_service=True))
    latency = _series(inc, "latency-p95", "p95 latency", lambda: prom.latency_quantile(inc.prom, 0.95, window))
    runs = incident_records(inc)
    # This phase's records (not yet read back when the phase is phase 2) and the earlier runs', newest first.
    events = inc.rows(R.WARNING_EVENTS) or next((rows for run in reversed(runs)
                                                 if (rows := run.get(R.WARNING_EVENTS))), [])
    pods = inc.rows(R.UNHEALTHY_PODS) or next((rows for run in reversed(runs)
                                               if (rows := run.get(R.UNHEALTHY_PODS))), [])
    deploys = {(r.get("deployment"), r.get("revision")): r for run in runs for r in run.get(R.ROLLOUT_HISTORY)}
    deploys.update({(r.get("deployment"), r.get("revision")): r for r in inc.rows(R.ROLLOUT_HISTORY)})
    onset = next((found for run in runs if (found := run.get(R.INCIDENT_START))), None)
    chart = charts.cross_layer_chart(
        errors=errors, latency=latency, kube_events=events, terminations=pods,
        lock_samples=incident_samples(run.run_dir for run in runs),
        deploys=pd.DataFrame(list(deploys.values())) if deploys else None, incident_start=onset,
        moderate=cfg.error_ratio_moderate, high=cfg.error_ratio_high, slow_seconds=cfg.latency_p95_slow_seconds,
        label=cfg.prom_service_label)
    return chart.with_data(*[inc.files.data_file(inc.phase, name) for name in ("error-ratio", "latency-p95")
                             if name in inc.frames])


def lock_history(inc: Incident) -> views.ChartAndTable:
    """The lock graph sampled through the incident (phases 2 and 4, and irkit run's sampler): which root appeared
    when, how many waited behind it, and when it cleared."""
    samples = _samples(inc)
    found = episodes(samples)
    taken = sum(1 for s in samples if isinstance(s.get("roots"), list))
    table: pd.DataFrame | Note = found if not found.empty else Note(
        f"no session blocked another in {taken} sample(s) of the lock graph" if taken
        else "the lock graph was not sampled (phase 2 or 4 records a sample; irkit run samples every "
             "lock_sample_seconds)")
    return views.ChartAndTable(charts.lock_history_chart(samples, found), table)


def _samples(inc: Incident) -> list[dict[str, Any]]:
    """The incident's samples: every run's on disk; this phase's own are among them (flushed as taken)."""
    return incident_samples(incident_runs(inc.run_dir))


def episode_lines(found: pd.DataFrame) -> list[str]:
    """The episodes as the post-mortem's sentences (Markdown; the sessions' words escaped)."""
    def at(value: Any) -> str:
        return pd.Timestamp(value).strftime("%H:%M:%S") if value else "?"
    return [f"- pid {e['root']} ({markdown(e['state'] or '?')}, "
            f"{markdown(e['application_name'] or 'no application name')}) "
            f"{code_span(e['query'] or '')}: first seen blocking at {at(e['first_seen'])} UTC, up to {e['peak_waiting']} "
            f"waiting behind it; " + (f"cleared by {at(e['cleared_at'])} UTC" if e["cleared_at"]
                                      else "still blocking at the last sample")
            for e in found.to_dict("records")]
