"""Every notebook renderer but the charts: how a result reads in JupyterLab and in report.html. No I/O.

Records and rule results stay plain data that knows nothing of HTML: the renderer of each type is registered
here (:data:`RENDERERS`) and installed into the notebook's IPython by :func:`install_formatters` (which
``open_incident`` calls), so a cell that shows an :class:`~irkit.rules.severity.Assessment` or a
:class:`~irkit.rules.recovery.Verdict` draws it, while the rules never import a renderer. The phase functions
wrap what needs a view of its own (logs, the plan, the lock graph) in the classes below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import pandas as pd

from irkit.display import charts

if TYPE_CHECKING:
    from irkit.actions.model import Outcome, Step
    from irkit.evidence.records import Unavailable
    from irkit.rules.locks import LockGraph
    from irkit.rules.plan import Mitigation
    from irkit.rules.recovery import Verdict
    from irkit.rules.severity import Assessment
    from irkit.sources.k8s import MetricsResult

__all__ = ["RENDERERS", "Captioned", "ChartAndTable", "install_formatters", "html_of", "table_html", "table_text", "LockView",
           "LogView", "Note", "PlanView", "SaturationView", "StepsView", "assessment_html", "metrics_html",
           "outcomes_frame", "saturation_html", "shown", "unavailable_html", "verdict_html"]

_RED, _GREEN, _ORANGE = "#c0392b", "#27ae60", "#d35400"


def _box(colour: str, html: str) -> str:
    return f"<div style='border-left:4px solid {colour};padding:4px 8px'>{html}</div>"


class Note:
    """A sentence in place of an empty table: "no pod is unhealthy" reads better than bare headers."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return f"<p style='border-left:4px solid {_GREEN};padding:4px 8px'>{escape(self.text)}</p>"

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Note) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class Captioned:
    """A table under a sentence that says where it comes from (phase 3 planning from another run's findings)."""

    def __init__(self, frame: pd.DataFrame, caption: str) -> None:
        self.frame, self.caption = frame, caption

    def _repr_html_(self) -> str:
        return f"<p><i>{escape(self.caption)}</i></p>{table_html(self.frame)}"

    def __repr__(self) -> str:
        return f"{self.caption}\n{table_text(self.frame)}"


def _cell(column: str, value: Any) -> str:
    """One table cell as a responder reads it: ratios as percentages, seconds rounded, times to the second,
    mappings and lists as text, nothing for a missing value (never "nan" beside "None")."""
    if value is None or (not isinstance(value, (str, dict, list, tuple)) and bool(pd.isna(value))):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(str(k), v)}" for k, v in value.items())[:300]
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(column, v) for v in value)[:300]
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        name = column.lower()
        if "ratio" in name and 0 <= value <= 1:
            return f"{value:.1%}"
        if "seconds" in name or name.endswith("_s"):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    return str(value)


MAX_ROWS = 50  # rows a table shows; a notebook's size must not grow with the cluster


def _more(frame: pd.DataFrame) -> str:
    return (f"first {MAX_ROWS} of {len(frame):,} rows, the most telling first; every row is in the phase's record "
            "(phase-N.json)") if len(frame) > MAX_ROWS else ""


def table_html(frame: pd.DataFrame) -> str:
    """A DataFrame without its index column, cells formatted by :func:`_cell`; at most :data:`MAX_ROWS` rows."""
    more = _more(frame)
    frame = frame.head(MAX_ROWS)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{escape(_cell(str(c), v))}</td>" for c, v in zip(frame.columns, row,
                                                                                           strict=True)) + "</tr>"
                   for row in frame.itertuples(index=False, name=None))
    return (f"<table class='irkit-table'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            + (f"<p><i>{escape(more)}</i></p>" if more else ""))


def table_text(frame: pd.DataFrame) -> str:
    """The plain-text table, formatted alike, without the index; at most :data:`MAX_ROWS` rows."""
    more = _more(frame)
    frame = frame.head(MAX_ROWS)
    shown = pd.DataFrame({c: [_cell(str(c), v) for v in frame[c]] for c in frame.columns}, columns=frame.columns)
    return (str(shown.to_string(index=False)) + (f"\n({more})" if more else "")) if not frame.empty else "(no rows)"


def install_formatters(shell: Any) -> None:
    """Show every type of :data:`RENDERERS` through its renderer, and every DataFrame through
    :func:`table_html` / :func:`table_text` (no index, readable numbers), in JupyterLab and in the saved outputs
    alike."""
    formatters = shell.display_formatter.formatters
    for (module, name), render in RENDERERS.items():  # by name: registering imports none of those modules
        formatters["text/html"].for_type_by_name(module, name, render)
    formatters["text/html"].for_type(pd.DataFrame, table_html)
    formatters["text/plain"].for_type(pd.DataFrame, lambda frame, printer, cycle: printer.text(table_text(frame)))


def html_of(value: Any) -> str:
    """``value`` as HTML through its registered renderer (what a notebook shows for it)."""
    if isinstance(value, pd.DataFrame):
        return table_html(value)
    for kind in type(value).__mro__:
        render = RENDERERS.get((kind.__module__, kind.__qualname__))
        if render is not None:
            return render(value)
    raise TypeError(f"no renderer is registered for {type(value).__name__}")


def shown(value: Any, empty: str) -> Any:
    """``value``, or a :class:`Note` saying ``empty`` when it is an empty table."""
    return Note(empty) if isinstance(value, pd.DataFrame) and value.empty else value


def unavailable_html(u: Unavailable) -> str:
    return _box(_RED, f"<b>{escape(u.what)}: unavailable</b> ({escape(u.kind)})<br>{escape(u.error)}")


def assessment_html(a: Assessment) -> str:
    from datetime import UTC
    reasons = "".join(f"<li>{escape(r)}</li>" for r in a.reasons)
    missing = "".join(f"<li>{escape(u)}</li>" for u in a.unmeasured)
    verdict = {None: "severity UNKNOWN: the deciding signals were not measured",
               False: f"{a.name}: not an incident"}.get(a.real, a.name)
    if a.real and a.unmeasured:
        verdict += " (at least: some signals were not measured)"
    return (f"<p><b style='font-size:1.3em'>{escape(verdict)}</b> &mdash; respond within "
            f"{escape(a.response_time)} (by {a.respond_by.astimezone(UTC):%Y-%m-%d %H:%M} UTC); escalate: "
            f"{escape(a.escalation)}</p><ul>{reasons}</ul>"
            + (f"<p>Not measured:</p><ul>{missing}</ul>" if missing else ""))


def verdict_html(v: Verdict) -> str:
    unknown = "".join(f"<li>{escape(f)}</li>" for f in v.unmeasured)
    if v.recovered:
        return f"<h3 style='color:{_GREEN}'>RECOVERED: every check passed</h3>"
    if v.recovered is None:
        return (f"<h3 style='color:{_ORANGE}'>UNKNOWN: no check failed, but these could not be measured</h3>"
                f"<ul>{unknown}</ul>")
    items = "".join(f"<li>{escape(f)}</li>" for f in v.failed)
    return (f"<h3 style='color:{_RED}'>NOT RECOVERED</h3><ul>{items}</ul>"
            + (f"<p>Not measured:</p><ul>{unknown}</ul>" if unknown else ""))


def saturation_html(text: str, ratio: float, threshold: float) -> str:
    return f"<p style='border-left:4px solid {_RED if ratio >= threshold else _GREEN};padding:4px 8px'>" \
           f"{escape(text)}</p>"


class SaturationView:
    """Connection saturation as a sentence, red from the configured threshold (pg_saturation_ratio)."""

    def __init__(self, text: str, ratio: float, threshold: float) -> None:
        self.text, self.ratio, self.threshold = text, ratio, threshold

    def _repr_html_(self) -> str:
        return saturation_html(self.text, self.ratio, self.threshold)

    def __repr__(self) -> str:
        return self.text


class LogView:
    """Folded logs shown whole: a header per group, the text in a ``<pre>`` block."""

    def __init__(self, frame: pd.DataFrame, title: str) -> None:
        self.frame = frame
        self.title = title

    def _blocks(self) -> list[tuple[str, str]]:
        def pods(names: list[str]) -> str:
            return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return [(f"{row['deployment']} / {row['container']}: {len(row['pods'])} pod(s) {pods(row['pods'])}",
                 str(row["text"])) for row in self.frame.to_dict("records")]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        blocks = self._blocks()
        if not blocks:
            return {"text/plain": f"{self.title}: none"}
        return {"text/plain": "\n\n".join(f"== {head}\n{text}" for head, text in blocks),
                "text/html": "".join(f"<p><b>{escape(head)}</b></p><pre>{escape(text)}</pre>" for head, text in blocks)}


class PlanView:
    """The plan as numbered steps, each with its reason and the whole command ready to copy."""

    def __init__(self, steps: Sequence[Mitigation], empty: str = "nothing to do: no finding calls for a mitigation"
                 ) -> None:
        self.steps = list(steps)
        self.empty = empty
        self.frame = pd.DataFrame([s.as_dict() for s in self.steps],
                                  columns=["action", "target", "why", "command", "finding", "status"])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if not self.steps:
            return {"text/plain": self.empty, "text/html": f"<p>{escape(self.empty)}</p>"}
        plain = "\n\n".join(f"{i}. {s.action} {s.target}: {s.why}\n   {s.command}" for i, s in enumerate(self.steps, 1))
        html = "<ol>" + "".join(
            f"<li><b>{escape(s.action)}</b> {escape(s.target)}: {escape(s.why)} "
            f"<i>(from {escape(s.finding)})</i><pre>{escape(s.command)}</pre></li>" for s in self.steps) + "</ol>"
        return {"text/plain": plain, "text/html": html}


class StepsView:
    """Prepared steps: id (what a confirmation names), the diff, guardrails, the dry run's answer, the undo."""

    def __init__(self, steps: Sequence[Step], empty: str = "no steps: the plan is empty") -> None:
        self.steps = list(steps)
        self.empty = empty

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if not self.steps:
            return {"text/plain": self.empty, "text/html": f"<p>{escape(self.empty)}</p>"}
        plain, html = [], ["<ol class='steps'>"]
        for s in self.steps:
            state = s.refused or s.dry_run
            diff = "\n".join(s.diff())
            plain.append(f"{s.id}  {s.action} {s.target}\n  {state}\n  guardrails passed: "
                         f"{', '.join(s.guardrails) or 'none'}\n{diff}\n  undo: {s.undo}"
                         + (f"\n  undo by hand: {s.undo_command}" if s.undo_command else ""))
            html.append(f"<li><b><code>{escape(s.id)}</code></b> {escape(s.action)} {escape(s.target)}"
                        f"<br><i>{escape(state)}</i><br>guardrails passed: {escape(', '.join(s.guardrails) or 'none')}"
                        f"<pre>{_diff_html(s.diff())}</pre>undo: {escape(s.undo)}"
                        + (f"<pre>{escape(s.undo_command)}</pre>" if s.undo_command else "") + "</li>")
        html.append("</ol>")
        return {"text/plain": "\n\n".join(plain), "text/html": "".join(html)}


def _diff_html(lines: Sequence[str]) -> str:
    """Diff lines with removals red and additions green, as a reviewer reads them."""
    colour = {"-": "#b42318", "+": "#067647"}
    return "\n".join(f"<span style='color:{colour[line[0]]}'>{escape(line)}</span>" if line[:1] in colour
                     else escape(line) for line in lines)


def outcomes_frame(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """One row per outcome: id, action, status, detail, confirmed by/at, seconds."""
    return pd.DataFrame([{"id": o.id, "action": o.action, "status": o.status, "detail": o.detail,
                          "confirmed_by": o.confirmation.get("by", ""), "confirmed_at": o.confirmation.get("at", ""),
                          "seconds": o.seconds} for o in outcomes],
                        columns=["id", "action", "status", "detail", "confirmed_by", "confirmed_at", "seconds"])


class LockView:
    """The lock graph as its text tree above its chart."""

    def __init__(self, graph: LockGraph) -> None:
        self.graph = graph

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = charts.lock_graph_chart(self.graph)._repr_mimebundle_()
        bundle["text/html"] = f"<pre>{escape(self.graph.tree())}</pre>" + bundle["text/html"]
        bundle["text/plain"] = self.graph.tree()
        return bundle

    def _ipython_display_(self) -> None:
        # The tree and the chart as two outputs: JupyterLab shows a plotly output as the chart alone, and the
        # tree (pids, states, ages, queries, "blocks 3") is what a responder reads first.
        from IPython.display import display
        tree = self.graph.tree()
        display({"text/plain": tree, "text/html": f"<pre>{escape(tree)}</pre>"}, raw=True)
        display(charts.lock_graph_chart(self.graph))


class ChartAndTable:
    """A chart above the table a responder reads beside it (the lock history and its episodes)."""

    def __init__(self, chart: charts.Chart, table: pd.DataFrame | Note) -> None:
        self.chart = chart
        self.table = table

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = self.chart._repr_mimebundle_()
        table = self.table._repr_html_() if isinstance(self.table, Note) else table_html(self.table)
        bundle["text/html"] += table
        bundle["text/plain"] += "\n" + (str(self.table) if isinstance(self.table, Note) else table_text(self.table))
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.chart)
        display(self.table)


def metrics_html(result: MetricsResult) -> str:
    if not result.available:
        return f"<p><b>metrics unavailable:</b> {escape(result.note)}</p>"
    return table_html(result.frame)


# The HTML of each type a notebook shows that is not a view of its own: one row per type (its module and name),
# installed into IPython by install_formatters.
RENDERERS: dict[tuple[str, str], Callable[[Any], str]] = {
    ("irkit.rules.severity", "Assessment"): assessment_html,
    ("irkit.rules.recovery", "Verdict"): verdict_html,
    ("irkit.evidence.records", "Unavailable"): unavailable_html,
    ("irkit.sources.k8s", "MetricsResult"): metrics_html,
}
