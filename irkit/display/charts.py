"""Plotly figure builders for the playbook's charts. No I/O except :func:`save_image`.

A figure is shown through :class:`Chart`, which offers two renderings of it:
``application/vnd.plotly.v1+json`` (JupyterLab draws it from the saved notebook with
the jupyterlab-plotly extension) and a small ``text/html`` div whose script draws it
with a ``Plotly`` already on the page. The executed notebook therefore carries no
4.8 MB copy of plotly.js; ``report.html`` inlines plotly.js exactly once, so it opens
with no network at all.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io
from plotly.subplots import make_subplots

from irkit.config import DEFAULTS
from irkit.escaping import html, markdown, script_json
from irkit.escaping import plotly_text as _t

__all__ = [
    "cross_layer_chart",
    "lock_history_chart",
    "timeline_chart",
    "top_series",
    "save_images",
    "warm_renderer",
    "Chart",
    "downsample",
    "error_ratio_chart",
    "latency_chart",
    "lock_graph_chart",
    "pod_status_chart",
    "save_image",
]

MAX_POINTS = 600  # per series, for display; the full data is recorded beside the chart

_STATE_COLOURS = {"idle in transaction": "#c0392b", "active": "#2980b9", "idle": "#95a5a6",
                  "idle in transaction (aborted)": "#8e44ad"}


class Chart:
    """A figure with the two renderings described in the module docstring."""

    def __init__(self, figure: go.Figure, name: str) -> None:
        self.figure = figure
        self.name = name
        self.data: list[str] = []  # paths (relative to the notebook) of the full data behind it

    def with_data(self, *paths: str) -> Chart:
        """Name the files holding the full, not downsampled, data (shown under the chart)."""
        self.data.extend(paths)
        return self

    def _ipython_display_(self) -> None:
        # Two outputs: JupyterLab shows a plotly output as the chart alone (it prefers the plotly mime type
        # over the HTML that carries the links), so the links to the full data are an output of their own.
        from IPython.display import display
        display(self._bundle(links=False), raw=True)
        if self.data:
            display({"text/markdown": "full data: " + ", ".join(f"[{markdown(p)}](<{p}>)" for p in self.data),
                     "text/plain": "full data: " + ", ".join(self.data)}, raw=True)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self._bundle(links=True)

    def _bundle(self, links: bool) -> dict[str, Any]:
        """The chart as plotly JSON, HTML that draws it, and text; ``links``: the full-data links in the HTML too
        (a notebook shows them as an output of their own instead). The JSON goes into the script as plotly wrote
        it, made safe for a ``<script>`` element: a label holding ``</script>`` stays text."""
        text = plotly.io.to_json(self.figure, validate=False)
        div = f"irkit-chart-{uuid.uuid4().hex[:12]}"
        name = html(self.name)
        html_out = (f'<div id="{div}" class="irkit-chart" data-chart="{name}" '
                    f'style="height:{int(self.figure.layout.height or 420)}px"></div>'
                    f"<script>(function(){{var s={script_json(text)};"
                    f"if(window.Plotly){{Plotly.newPlot('{div}',s.data,s.layout,{{responsive:true}});}}"
                    f"else{{document.getElementById('{div}').innerText='chart {name}: open report.html "
                    f"or this notebook in JupyterLab to see it';}}}})();</script>")
        if self.data and links:
            anchors = ", ".join(f'<a href="{html(path)}">{html(path)}</a>' for path in self.data)
            html_out += f'<p class="irkit-chart-data">full data: {anchors}</p>'
        plain = f"<chart {self.name}>" + (f" full data: {', '.join(self.data)}" if self.data and links else "")
        return {"application/vnd.plotly.v1+json": json.loads(text), "text/html": html_out, "text/plain": plain}


def downsample(frame: pd.DataFrame, max_points: int = MAX_POINTS, by: str | None = None) -> pd.DataFrame:
    """At most ``max_points`` rows per series (keeping the maximum of each bucket, so spikes stay)."""
    if frame.empty:
        return frame
    groups = [g for _, g in frame.groupby(by)] if by and by in frame.columns else [frame]
    parts = []
    for group in groups:
        if len(group) <= max_points:
            parts.append(group)
            continue
        buckets = pd.Series(range(len(group)), index=group.index) * max_points // len(group)
        idx = group.assign(_bucket=buckets.to_numpy()).groupby("_bucket")["value"].idxmax()
        parts.append(group.loc[idx.to_numpy()])
    return pd.concat(parts).sort_index()


MAX_SERIES = 10  # lines per chart: the services that rose highest; the full data file has every one


def top_series(frame: pd.DataFrame, label: str | None, n: int = MAX_SERIES) -> tuple[pd.DataFrame, int]:
    """The rows of the ``n`` series (by ``label``) that reached the highest values, and how many were left out."""
    if frame.empty or not label or label not in frame.columns:
        return frame, 0
    peaks = frame.groupby(label)["value"].max().sort_values(ascending=False)
    if len(peaks) <= n:
        return frame, 0
    return frame[frame[label].isin(peaks.index[:n])], len(peaks) - n


def _series(fig: go.Figure, frame: pd.DataFrame, label: str | None, scale: float = 1.0) -> None:
    if frame.empty:
        fig.add_annotation(text="no data", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return
    frame, left_out = top_series(frame, label)
    if left_out:
        fig.add_annotation(text=f"the {MAX_SERIES} highest of {MAX_SERIES + left_out} {label}s drawn", showarrow=False,
                           x=1, y=1.02, xref="paper", yref="paper", xanchor="right", yanchor="bottom")
    frame = downsample(frame, by=label)
    groups = frame.groupby(label) if label and label in frame.columns else [("all", frame)]
    for name, group in groups:
        fig.add_trace(go.Scatter(x=group.index, y=group["value"] * scale, mode="lines", name=_t(name)))


def _span(frames: list[pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last time of the plotted data, or None when there is none."""
    indexes = [f.index for f in frames if not f.empty]
    if not indexes:
        return None
    return min(i.min() for i in indexes), max(i.max() for i in indexes)


def _deploy_marks(deploys: pd.DataFrame | None,
                  span: tuple[pd.Timestamp, pd.Timestamp] | None) -> list[tuple[pd.Timestamp, str]]:
    """Each deploy inside the plotted span (older ones would stretch the axis over days), as (time, label)."""
    marks = []
    for row in deploys.to_dict("records") if deploys is not None and not deploys.empty else []:
        at = _utc(row["created"])
        if span is None or _utc(span[0]) <= at <= _utc(span[1]):
            marks.append((at, _t(f"deploy {str(row.get('deployment') or '').removesuffix('-deployment')} "
                                 f"r{row.get('revision', '')}".replace("  ", " "))))
    return marks


def _markers(fig: go.Figure, deploys: pd.DataFrame | None, incident_start: Any,
             span: tuple[pd.Timestamp, pd.Timestamp] | None) -> None:
    """Deploys inside the plotted span (older ones would stretch the axis over days), and the onset."""
    if span is not None:
        fig.update_xaxes(range=[span[0].to_pydatetime(), span[1].to_pydatetime()])
    for at, text in _deploy_marks(deploys, span):
        fig.add_vline(x=at.to_pydatetime(), line_dash="dot", line_color="#7f8c8d")
        fig.add_annotation(x=at.to_pydatetime(), y=1, yref="paper", text=text, showarrow=False, yanchor="bottom",
                           textangle=-90, xanchor="right")
    if incident_start is not None and not pd.isna(incident_start):
        fig.add_vline(x=pd.Timestamp(incident_start).to_pydatetime(), line_color="#c0392b", line_width=2)
        fig.add_annotation(x=pd.Timestamp(incident_start).to_pydatetime(), y=0.95, yref="paper",
                           text="incident start", showarrow=False, font={"color": "#c0392b"})


def error_ratio_chart(frame: pd.DataFrame, *, moderate: float = DEFAULTS.error_ratio_moderate,
                      high: float = DEFAULTS.error_ratio_high,
                      deploys: pd.DataFrame | None = None, incident_start: Any = None,
                      label: str | None = "service") -> Chart:
    """5xx ratio in percent over time, the SEV-3 and SEV-2 bands at the configured thresholds (the playbook's
    5-10 % and >10 % by default), deploys, the onset."""
    fig = go.Figure()
    _series(fig, frame, label, scale=100)
    top = max(high * 100 * 1.5, float(frame["value"].max() * 100 * 1.1) if not frame.empty else 0)
    fig.add_hrect(y0=moderate * 100, y1=high * 100, fillcolor="#f39c12", opacity=0.15, line_width=0,
                  annotation_text=f"SEV-3 {moderate * 100:g}-{high * 100:g}%", annotation_position="top left")
    fig.add_hrect(y0=high * 100, y1=top, fillcolor="#c0392b", opacity=0.12, line_width=0,
                  annotation_text=f"SEV-2 >{high * 100:g}%", annotation_position="top left")
    _markers(fig, deploys, incident_start, _span([frame]))
    fig.update_layout(title="Error ratio (5xx share of requests)", yaxis_title="% of requests",
                      yaxis_range=[0, top], template="plotly_white", height=420)
    return Chart(fig, "error-ratio")


def latency_chart(frames: Mapping[str, pd.DataFrame], *, slow_seconds: float = DEFAULTS.latency_p95_slow_seconds,
                  incident_start: Any = None, deploys: pd.DataFrame | None = None) -> Chart:
    """Latency quantiles (``{"p95": frame, ...}``) with the SEV-2 line at ``slow_seconds``."""
    fig = go.Figure()
    for name, frame in frames.items():
        if frame.empty:
            continue
        frame = downsample(frame)
        fig.add_trace(go.Scatter(x=frame.index, y=frame["value"], mode="lines", name=name))
    fig.add_hline(y=slow_seconds, line_color="#c0392b", line_dash="dash",
                  annotation_text=f"SEV-2 > {slow_seconds:g} s")
    _markers(fig, deploys, incident_start, _span(list(frames.values())))
    fig.update_layout(title="Latency quantiles", yaxis_title="seconds", template="plotly_white", height=420)
    return Chart(fig, "latency")


MAX_LOCK_NODES = 60  # sessions in the lock graph chart


def lock_graph_chart(graph: Any) -> Chart:
    """Sessions as nodes (colour = state, size = wait), edges from waiter to blocker, roots marked."""
    fig = go.Figure()
    sessions = graph.sessions.set_index("pid") if not graph.sessions.empty else pd.DataFrame()
    pids = sorted(set(graph.edges["blocked_pid"]) | set(graph.edges["blocking_pid"])) if not graph.empty else []
    if not pids:
        fig.add_annotation(text="no session is waiting on a lock", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_layout(title="Lock graph", template="plotly_white", height=260,
                          xaxis={"visible": False}, yaxis={"visible": False})
        return Chart(fig, "lock-graph")
    # Depth = distance from a root (blockers at the left), computed once with the graph.
    depth = {pid: int(graph.depths.get(pid, 0)) for pid in pids}
    everyone = len(pids)
    if everyone > MAX_LOCK_NODES:  # the blockers and the sessions nearest them; the tree lists every one
        pids = sorted(sorted(pids, key=lambda p: (depth[p], p))[:MAX_LOCK_NODES])
        kept = set(pids)
        edges = graph.edges[graph.edges["blocked_pid"].isin(kept) & graph.edges["blocking_pid"].isin(kept)]
    else:
        edges = graph.edges
    rows: dict[int, int] = {}
    pos: dict[int, tuple[float, float]] = {}
    for pid in sorted(pids, key=lambda p: (depth[p], p)):
        rows[depth[pid]] = rows.get(depth[pid], 0) + 1
        pos[pid] = (float(depth[pid]), float(-rows[depth[pid]]))
    roots = {int(r["pid"]): r for r in graph.roots.to_dict("records")}

    def attr(pid: int, column: str) -> Any:
        value: Any = sessions.loc[pid, column] if pid in sessions.index and column in sessions.columns else None
        return None if value is None or (not isinstance(value, str) and bool(pd.isna(value))) else value

    states = [str(attr(p, "state") or "unknown") for p in pids]
    waits = [float(attr(p, "wait_seconds") or 0) for p in pids]
    # A root stands out: large (by how many wait behind it), a thick red ring, its state, age and query.
    sizes = {p: 34 + min(30, 4 * int(roots[p].get("blocked_count") or 0)) if p in roots
             else 14 + min(24.0, w * 2) for p, w in zip(pids, waits, strict=True)}
    # One arrow per edge, given to the layout at once (add_annotation validates each: seconds for a long chain).
    fig.update_layout(annotations=[
        {"x": pos[int(b)][0], "y": pos[int(b)][1], "ax": pos[int(w)][0], "ay": pos[int(w)][1], "xref": "x",
         "yref": "y", "axref": "x", "ayref": "y", "showarrow": True, "arrowhead": 2, "arrowsize": 1.6,
         "arrowwidth": 2, "arrowcolor": "#475467", "standoff": sizes[int(b)] / 2 + 2,
         "startstandoff": sizes[int(w)] / 2}
        for w, b in zip(edges["blocked_pid"], edges["blocking_pid"], strict=True)])
    if everyone > len(pids):
        fig.add_annotation(text=f"{len(pids)} of {everyone} sessions drawn, nearest the roots; the tree lists "
                                "every one", showarrow=False, x=1, y=1.02, xref="paper", yref="paper",
                           xanchor="right", yanchor="bottom")

    def label(p: int) -> str:
        if p not in roots:
            return f"pid {p}"
        age = roots[p].get("xact_seconds")
        return (f"ROOT pid {p} · {_t(roots[p].get('state') or '?')}"
                + (f" {float(age):.0f}s" if age is not None and not pd.isna(age) else "")
                + f" · blocks {int(roots[p].get('blocked_count') or 0)}<br>{_t(str(roots[p].get('query') or '')[:60])}")

    def hover(p: int, state: str, wait: float) -> str:
        query = _t(str(attr(p, "query") or (roots[p].get("query") if p in roots else "") or "")[:120])
        state = _t(state)
        if p in roots:
            age = roots[p].get("xact_seconds")
            return (f"ROOT pid {p} [{state}] holds the lock; transaction open "
                    f"{float(age or 0):.0f}s; {int(roots[p].get('blocked_count') or 0)} wait behind it<br>{query}")
        return f"pid {p} [{state}] waits {wait:.1f}s<br>{query}"

    fig.add_trace(go.Scatter(
        x=[pos[p][0] for p in pids], y=[pos[p][1] for p in pids], mode="markers+text",
        text=[label(p) for p in pids], textposition="top center",
        marker={"size": [sizes[p] for p in pids],
                "color": [_STATE_COLOURS.get(s, "#34495e") for s in states],
                "line": {"width": [5 if p in roots else 1 for p in pids],
                         "color": ["#b42318" if p in roots else "#000" for p in pids]}},
        hovertext=[hover(p, s, w) for p, s, w in zip(pids, states, waits, strict=True)],
        hoverinfo="text", name="sessions"))
    # Room around the nodes so labels are not cut at the plot's edges.
    fig.update_layout(title="Lock graph: arrows point from waiter to blocker", template="plotly_white",
                      height=max(300, 90 * max(rows.values()) + 160), showlegend=False,
                      xaxis={"visible": False, "range": [-1.0, max(depth[p] for p in pids) + 0.6]},
                      yaxis={"visible": False, "range": [-max(rows.values()) - 0.6, 0.2]})
    return Chart(fig, "lock-graph")


def cross_layer_chart(*, errors: pd.DataFrame | None, latency: pd.DataFrame | None,
                      kube_events: Sequence[Mapping[str, Any]], terminations: Sequence[Mapping[str, Any]],
                      lock_samples: Sequence[Mapping[str, Any]], deploys: pd.DataFrame | None, incident_start: Any,
                      moderate: float = DEFAULTS.error_ratio_moderate, high: float = DEFAULTS.error_ratio_high,
                      slow_seconds: float = DEFAULTS.latency_p95_slow_seconds,
                      label: str | None = "service") -> Chart:
    """Every layer on one time axis, so cause and effect line up: the error ratio per service, p95 latency, the
    pods' trouble (Kubernetes warnings from first to last seen, containers terminated), sessions waiting on
    locks, with deploys and the onset drawn through all of them. A layer with no data says so."""
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        row_heights=[0.3, 0.22, 0.28, 0.2],
                        subplot_titles=("error ratio (% of requests)", "p95 latency (s)",
                                        "pods: warnings (first to last seen) and terminations",
                                        "sessions waiting on a lock"))

    frames = [f for f in (errors, latency) if f is not None and not f.empty]
    window = _span(frames)

    def empty(row: int, text: str) -> None:
        # A trace without points over the window makes the row a subplot on the shared axis, so the deploy
        # lines and the onset cross it too; then say why it is empty.
        fig.add_trace(go.Scatter(x=list(window) if window else [], y=[None, None] if window else [],
                                 showlegend=False, hoverinfo="skip"), row=row, col=1)
        fig.update_yaxes(showticklabels=False, showgrid=False, row=row, col=1)
        fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref=f"x{row} domain" if row > 1 else "x domain",
                           yref=f"y{row} domain" if row > 1 else "y domain", font={"color": "#667085"})

    if errors is not None and not errors.empty:
        part = downsample(top_series(errors, label)[0], by=label)
        groups = part.groupby(label) if label and label in part.columns else [("all", part)]
        for name, group in groups:
            fig.add_trace(go.Scatter(x=group.index, y=group["value"] * 100, mode="lines", name=_t(f"errors {name}"),
                                     legendgroup="errors"), row=1, col=1)
        fig.add_hline(y=moderate * 100, line_dash="dot", line_color="#f39c12", row=1, col=1)
        fig.add_hline(y=high * 100, line_dash="dot", line_color="#c0392b", row=1, col=1)
    else:
        empty(1, "no error-ratio series")
    if latency is not None and not latency.empty:
        part = downsample(latency)
        fig.add_trace(go.Scatter(x=part.index, y=part["value"], mode="lines", name="p95", line={"color": "#6941c6"}),
                      row=2, col=1)
        fig.add_hline(y=slow_seconds, line_dash="dot", line_color="#c0392b", row=2, col=1)
    else:
        empty(2, "no latency series")
    lanes = 0
    for event in kube_events[:30]:
        first, last = event.get("first_seen") or event.get("last_seen"), event.get("last_seen")
        if not first:
            continue
        obj = str(event.get("object") or "").split("/")[-1]
        lane = _t(f"{event.get('reason')} {obj.rsplit('-', 2)[0] if obj.count('-') > 2 else obj}"[:34])
        fig.add_trace(go.Scatter(x=[pd.Timestamp(first), pd.Timestamp(last or first)], y=[lane, lane],
                                 mode="lines+markers", line={"width": 6, "color": "#dc6803"}, showlegend=False,
                                 text=[_t(f"x{event.get('count') or 1}: {str(event.get('message') or '')[:120]}")] * 2,
                                 hovertemplate="%{x}<br>%{text}<extra>" + lane.replace("%", "%%") + "</extra>"),
                      row=3, col=1)
        lanes += 1
    ended = [t for t in terminations if t.get("last_terminated_at")]
    if ended:
        fig.add_trace(go.Scatter(x=[pd.Timestamp(t["last_terminated_at"]) for t in ended],
                                 y=[_t(f"terminated {t.get('last_termination_reason') or ''}".strip()) for t in ended],
                                 mode="markers", marker={"symbol": "x", "size": 10, "color": "#b42318"},
                                 text=[_t(f"{t.get('pod')} restarts {t.get('restarts')}") for t in ended],
                                 hovertemplate="%{x}<br>%{text}<extra></extra>", showlegend=False), row=3, col=1)
        lanes += 1
    if not lanes:
        empty(3, "no Kubernetes warning, no container terminated")
    taken = [s for s in lock_samples if isinstance(s.get("roots"), list)]
    if taken:
        fig.add_trace(go.Scatter(x=[pd.Timestamp(s["at"]) for s in taken], y=[int(s.get("waiting") or 0) for s in taken],
                                 mode="lines+markers", line={"shape": "hv", "color": "#475467"}, name="waiting on locks",
                                 text=[_t(", ".join(f"pid {r.get('pid')} blocks {r.get('blocked_count')}"
                                                    for r in s["roots"][:3])) or "no root" for s in taken],
                                 hovertemplate="%{x}<br>%{y} waiting; %{text}<extra></extra>"), row=4, col=1)
        fig.update_yaxes(rangemode="tozero", row=4, col=1)
    else:
        empty(4, "no lock-graph sample")
    # The window of the series; later samples (phase 4 after the fix) stretch it to the right. Without a series,
    # the moments the other layers saw (and the onset) make the span: a deploy days before stays out of it.
    moments = [_utc(s["at"]) for s in taken] + [_utc(m) for e in kube_events
                                               for m in (e.get("first_seen"), e.get("last_seen")) if m]
    if incident_start is not None and not pd.isna(incident_start):
        moments.append(_utc(incident_start))
    span = (_utc(window[0]), _utc(window[1])) if window else (
        (min(moments), max(moments)) if moments else None)
    if span is not None:
        span = (span[0], max([span[1], *moments]))
        fig.update_xaxes(range=[span[0].to_pydatetime(), span[1].to_pydatetime()])
    for at, text in _deploy_marks(deploys, span):
        fig.add_vline(x=at.to_pydatetime(), line_dash="dot", line_color="#6941c6", row="all", col=1)
        fig.add_annotation(x=at.to_pydatetime(), y=1, xref="x", yref="paper", yanchor="bottom", showarrow=False,
                           text=text, font={"color": "#6941c6", "size": 10})
    if incident_start is not None and not pd.isna(incident_start):
        fig.add_vline(x=pd.Timestamp(incident_start).to_pydatetime(), line_color="#c0392b", line_width=2,
                      row="all", col=1)
    fig.update_layout(title="Cross-layer view: errors, latency, pods, locks and deploys on one time axis",
                      template="plotly_white", height=820, legend={"orientation": "h", "y": -0.06},
                      margin={"t": 90})
    fig.update_xaxes(showticklabels=True, row=4, col=1)
    return Chart(fig, "cross-layer")


def _utc(value: Any) -> pd.Timestamp:
    moment = pd.Timestamp(value)
    return moment.tz_convert("UTC") if moment.tzinfo else moment.tz_localize("UTC")


def lock_history_chart(samples: Sequence[Mapping[str, Any]], episodes: pd.DataFrame) -> Chart:
    """The lock graph through the incident: sessions waiting in all (grey), each root's queue as a line from
    the sample it appeared in to the one it was gone from (dropping to 0 there), and samples that failed."""
    fig = go.Figure()
    taken = [s for s in samples if isinstance(s.get("roots"), list)]
    failed = [s for s in samples if not isinstance(s.get("roots"), list)]
    if not taken:
        fig.add_annotation(text="no lock-graph sample" + (f" ({len(failed)} failed)" if failed else ""),
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    else:
        at = [pd.Timestamp(s["at"]) for s in taken]
        fig.add_trace(go.Scatter(x=at, y=[int(s.get("waiting") or 0) for s in taken], mode="lines",
                                 line={"shape": "hv", "color": "#98a2b3", "width": 1}, fill="tozeroy",
                                 fillcolor="rgba(152,162,179,0.25)", name="waiting (all)"))
        for episode in episodes.to_dict("records"):
            pid, start, end = int(episode["root"]), episode["first_seen"], episode["cleared_at"]
            points = [(pd.Timestamp(s["at"]), next(int(r.get("blocked_count") or 0) for r in s["roots"]
                                                   if int(r.get("pid", -1)) == pid))
                      for s in taken if start <= s["at"] <= episode["last_seen"]
                      and any(int(r.get("pid", -1)) == pid for r in s["roots"])]
            if end:
                points.append((pd.Timestamp(end), 0))
            query = str(episode.get("query") or "")[:50]
            name = _t(f"root pid {pid} ({episode.get('state') or '?'}): {query}")
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                     line={"shape": "hv", "width": 3}, name=name,
                                     hovertemplate="%{x}<br>%{y} waiting behind pid " + str(pid) + "<extra></extra>"))
            fig.add_annotation(x=points[0][0].to_pydatetime(), y=points[0][1], text=f"pid {pid} appears",
                               showarrow=True, arrowhead=2, ay=-30, font={"color": "#b42318"})
            if end:
                fig.add_annotation(x=pd.Timestamp(end).to_pydatetime(), y=0, text=f"pid {pid} cleared",
                                   showarrow=True, arrowhead=2, ay=-30, font={"color": "#067647"})
    if failed:
        fig.add_trace(go.Scatter(x=[pd.Timestamp(s["at"]) for s in failed], y=[0] * len(failed), mode="markers",
                                 marker={"symbol": "x", "color": "#dc6803", "size": 9}, name="not sampled",
                                 text=[_t(str(s.get("error") or "")[:120]) for s in failed],
                                 hovertemplate="%{x}<br>%{text}<extra></extra>"))
    fig.update_layout(title="Lock history: sessions waiting behind each root over time", template="plotly_white",
                      height=380, yaxis_title="sessions waiting", xaxis_title="time (UTC)",
                      legend={"orientation": "h", "y": -0.25})
    return Chart(fig, "lock-history")


MAX_PODS = 40  # bars in the pod chart


def pod_status_chart(pods: pd.DataFrame) -> Chart:
    """Restarts per pod, coloured by what is wrong with it."""
    fig = go.Figure()
    if pods.empty:
        fig.add_annotation(text="no pods", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    else:
        # The pods worth a bar: restarted or not running and ready, the most restarts first, at most MAX_PODS.
        trouble = pods[(pods["restarts"] > 0) | (pods["phase"] != "Running") | ~pods["all_ready"].astype(bool)]
        shown = trouble.sort_values(["restarts", "pod"], ascending=[False, True]).head(MAX_PODS)
        status = shown["waiting_reason"].fillna(shown["last_termination_reason"]).fillna(shown["phase"])
        for name in sorted(status.unique()):
            part = shown[status == name]
            fig.add_trace(go.Bar(x=[_t(p) for p in part["pod"]], y=part["restarts"], name=_t(name)))
        if len(pods) > len(shown):
            fig.add_annotation(text=f"{len(shown)} of {len(pods)} pods drawn: the others run, ready, never restarted"
                               if len(trouble) <= MAX_PODS else f"the {MAX_PODS} with the most restarts of "
                               f"{len(trouble)} troubled pods ({len(pods)} in all)", showarrow=False, x=1, y=1.02,
                               xref="paper", yref="paper", xanchor="right", yanchor="bottom")
        if not pods["restarts"].any():
            fig.add_annotation(text=f"no pod has restarted ({len(pods)} pods)", showarrow=False, x=0.5, y=0.5,
                               xref="paper", yref="paper")
            fig.update_yaxes(range=[0, 1])
    fig.update_layout(title="Pod restarts and status", yaxis_title="restarts", template="plotly_white",
                      height=420, barmode="stack")
    return Chart(fig, "pod-status")


_LANES = ("prometheus", "alertmanager", "kubernetes", "responder", "irkit", "comms")
_KIND_COLOURS = {"onset": "#b42318", "alert": "#b42318", "peak": "#b42318", "deploy": "#6941c6",
                 "k8s-event": "#dc6803", "finding": "#475467", "planned": "#475467", "confirmed": "#1570ef",
                 "applying": "#dc6803", "applied": "#067647", "failed": "#b42318", "tampered": "#b42318", "undone": "#dc6803", "message": "#0e9384",
                 "resolved": "#067647", "recovered": "#067647", "not-recovered": "#b42318", "run": "#1570ef"}


def timeline_chart(events: pd.DataFrame) -> Chart:
    """The incident's events on one time axis, a lane per source (columns: time, source, kind, event)."""
    fig = go.Figure()
    if events.empty:
        fig.add_annotation(text="no events", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    for kind in [k for k in _KIND_COLOURS if not events.empty and (events["kind"] == k).any()]:
        part = events[events["kind"] == kind]
        fig.add_trace(go.Scatter(x=part["time"], y=part["source"], mode="markers", name=kind,
                                 marker={"size": 12, "color": _KIND_COLOURS[kind], "symbol": "diamond"},
                                 text=[_t(e) for e in part["event"]],
                                 hovertemplate="%{x}<br>%{text}<extra>" + kind + "</extra>"))
    lanes = [lane for lane in _LANES if not events.empty and (events["source"] == lane).any()]
    fig.update_yaxes(categoryorder="array", categoryarray=lanes[::-1])
    fig.update_layout(title="Incident timeline", template="plotly_white", height=360, xaxis_title="time (UTC)")
    return Chart(fig, "timeline")


_warming: list[threading.Thread] = []


def warm_renderer() -> None:
    """Start the image renderer (Chromium, through kaleido's server) in the background, so the images a phase
    draws later do not wait for a browser to start: seconds saved per run. Idempotent; never raises."""
    if _warming:
        return

    def warm() -> None:
        with contextlib.suppress(Exception), warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
            warnings.simplefilter("ignore")
            import kaleido
            import plotly.io as pio
            kaleido.start_sync_server(silence_warnings=True)
            pio.write_images([go.Figure()], [str(Path(tmp) / "warm.png")], width=10, height=10)

    _warming.append(threading.Thread(target=warm, name="irkit-renderer", daemon=True))
    _warming[0].start()


def save_image(chart: Chart, path: str | Path) -> Path | None:
    """Write a PNG with kaleido (Debian's chromium); None if no browser is available here."""
    saved = save_images([(chart, Path(path))])
    return saved[0] if saved else None


def save_images(charts: list[tuple[Chart, Path]]) -> list[Path]:
    """Write several PNGs in one browser session (starting Chromium costs seconds); [] if none is available."""
    if not charts:
        return []
    import plotly.io as pio
    for thread in _warming:
        thread.join(60)  # a renderer being started: use it once it is up
    try:
        with warnings.catch_warnings():  # kaleido's server warns that it ignores per-call browser options
            warnings.simplefilter("ignore")
            pio.write_images([c.figure for c, _ in charts], [str(p) for _, p in charts], width=1000,
                             height=[int(c.figure.layout.height or 420) for c, _ in charts])
    except Exception:  # kaleido raises several unrelated types when chromium is missing
        return []
    return [p for _, p in charts]
