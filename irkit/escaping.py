"""Escape at the edge, per format: text from the investigated system is never markup where irkit writes it.

Logs, SQL text, ``application_name``, Prometheus label values, event messages and alert labels are written
by the systems that are failing, and sometimes by an attacker. Each format irkit writes gets its own escaping,
applied where the text is written (never once "for all"): HTML for the report and notebook outputs, JSON
inside a ``<script>`` for the charts, plotly's text (it renders a subset of HTML: ``<a href>``, ``<b>``,
``<br>``), Markdown for ``postmortem.md``, Slack's message text (``&``, ``<``, ``>`` and mentions), and a mail
header (one line), and a terminal (one line, no control character: an escape sequence in a log line must not
repaint the responder's screen). docs/trust.md.
"""

from __future__ import annotations

import html as _html
import json
import re
from typing import Any

__all__ = ["code_span", "fence", "html", "markdown", "one_line", "plotly_text", "script_json", "slack", "terminal"]

# Every character Python splits lines at (\n \r \v \f \x1c-\x1e \x85 \u2028 \u2029) and the other C0 controls.
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def one_line(text: Any) -> str:
    """``text`` on one line: every line break or control character a space (mail headers, table cells)."""
    return _BREAKS.sub(" ", str(text)).strip()


# ... and the C1 controls a terminal also obeys (\x9b is a one-byte CSI).
_TERMINAL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def terminal(text: Any) -> str:
    """``text`` for a line printed to a terminal: every control character (ESC, CSI, BEL, a line break) a space."""
    return _TERMINAL.sub(" ", str(text))


def html(text: Any) -> str:
    """``text`` as HTML text or an attribute value (``& < > " '`` as entities)."""
    return _html.escape(str(text), quote=True)


# Inside <script>, JSON is safe only when nothing in it can end the element or open a comment:
# `<` `>` `&` as escapes (valid only inside JSON strings, which is the only place JSON has them), and the two
# line separators JavaScript once refused inside string literals.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_RE = re.compile("[<>&\u2028\u2029]")


def script_json(value: Any) -> str:
    """``value`` as JSON to embed in a ``<script>`` element (a ``str`` is taken as JSON text already)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return _SCRIPT_RE.sub(lambda m: _SCRIPT_UNSAFE[m.group(0)], text)


def plotly_text(text: Any) -> str:
    """Data shown in a plotly label, legend or hover text: plotly draws ``<a href>``, ``<b>`` and ``<br>`` in
    them, and turns entities back into characters, so the data's ``& < >`` become entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# CommonMark treats these as markup (emphasis, links, images, code, headings, tables, HTML); a backslash makes
# each a literal character. `<`, `>` and `&` go as entities so no raw HTML or autolink survives.
_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def markdown(text: Any) -> str:
    """``text`` as inline Markdown text: on one line, no markup, no raw HTML, no link."""
    flat = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_PUNCT.sub(r"\\\1", flat)


def code_span(text: Any) -> str:
    """``text`` as a Markdown code span its content cannot close (delimited by more backticks than it holds)."""
    flat = one_line(text)
    run = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    ticks = "`" * (run + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def fence(text: Any, info: str = "") -> str:
    """``text`` as a fenced Markdown block its content cannot close (a longer backtick fence than any in it)."""
    body = str(text).rstrip("\n")
    run = max((len(m) for m in re.findall(r"`{3,}", body)), default=2)
    ticks = "`" * (run + 1)
    return f"{ticks}{info}\n{body}\n{ticks}"


# Slack turns `<!channel>`, `<!here>`, `<@U123>` and `<url|text>` into mentions and links; plain `@channel`
# too where a workspace links names. Escaping `& < >` is Slack's own rule; a zero-width space after `@`
# keeps a mention word readable and inert.
_MENTION = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def slack(text: Any) -> str:
    """Data in a Slack message: one line, ``& < >`` escaped as Slack asks, mentions made inert."""
    flat = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("@\u200b\\1", flat)
