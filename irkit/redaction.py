"""Secrets in the data irkit reads, removed where the data enters irkit.

A failing or attacked system puts credentials where irkit reads: a password in SQL text (``ALTER ROLE app
PASSWORD '...'``, a ``postgresql://user:pw@host`` DSN in a query or an ``application_name``), a bearer token
or an AWS key in a log line or an event message, a private key a crashing service dumped. Every source
(PostgreSQL rows, Prometheus label values, Kubernetes events, logs and change causes, alerts) passes what it
read through :func:`redact` before anything else sees it, so no record, notebook, report, post-mortem or
message ever holds them. The redacted form says what was removed: ``[redacted: password]``.

The patterns are :data:`PATTERNS` (docs/trust.md's table shows :data:`DOCUMENTED`, a docs test keeps it so); a team adds its own with the
``redact_patterns`` configuration key. Every pattern is linear in its input (no nested or overlapping
quantifiers) and bounded, so hostile text cannot make redaction slow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DOCUMENTED", "PATTERNS", "Pattern", "compile_extra", "redact", "redact_data", "redact_frame", "redacted"]


def redacted(what: str) -> str:
    """What replaces a removed secret: it says what was there, never any of it."""
    return f"[redacted: {what}]"


@dataclass(frozen=True)
class Pattern:
    """One kind of secret: its name (what the redacted form says), an example, and the regex. A regex with a
    group named ``secret`` replaces only that group (``password=`` stays, the value goes)."""

    name: str
    example: str
    regex: re.Pattern[str]


def _p(name: str, example: str, regex: str, flags: int = 0) -> Pattern:
    return Pattern(name, example, re.compile(regex, flags))


_VALUE = r"(?P<secret>\"[^\"\n]{0,512}\"|'[^'\n]{0,512}'|[^\s,;&'\"<>\[][^\s,;&'\"<>]{0,511})"
_PASSWORD_KEYS = r"pass(?:word|wd)?|pwd"
_SECRET_KEYS = (r"secret[_-]?access[_-]?key|client[_-]?secret|secret|access[_-]?key|api[_-]?key|apikey|"
                r"private[_-]?key|auth[_-]?token|session[_-]?token|token")


PATTERNS: tuple[Pattern, ...] = (
    # A URL's userinfo password: postgresql://app:pw@db:5432/x, https://user:pw@host/ (a DSN in a query).
    # Text is often cut where a source shows it (PostgreSQL keeps 1 KiB of a query), so a password that runs to
    # the end of the text counts too, unless it is all digits (http://host:8080 is a port).
    _p("password", "a URL's password: postgresql://app:hunter2@db/x (also cut off at the end of the text)",
       r"(?i)\b[a-z][a-z0-9+.-]{0,30}://[^\s/:@'\"<>]{0,256}:"
       r"(?P<secret>[^\s@/'\"<>]{1,256}(?=@)|(?![0-9]{1,256}\Z)[^\s@/'\"<>]{1,256}\Z)"),
    # SQL: CREATE/ALTER ROLE ... [ENCRYPTED] PASSWORD 'x' (quotes doubled inside; or cut off before its end).
    _p("password", "SQL: ALTER ROLE app PASSWORD 'hunter2'",
       r"(?i)\bpassword\s{1,10}(?P<secret>E?'(?:[^']|''){0,512}(?:'|\Z))"),
    # An Authorization header's value, and a bearer credential wherever it is written.
    _p("token", "an Authorization header's value: Authorization: Basic aHVudGVy...",
       r"(?i)\b(?:proxy-)?authorization[\"']?\s{0,10}[:=]\s{0,10}[\"']?(?P<secret>[^\s,;\"'\[][^\s,;\"']{0,4095}"
       r"(?:[ \t]{1,10}[^\s,;\"']{1,4096})?)"),
    _p("token", "a bearer credential anywhere: Bearer 4b1d2c3e4f5a... (12 or more characters, a digit among them)", r"(?i)\b(?:bearer|oauth)\s{1,10}"
                                   r"(?P<secret>(?=[A-Za-z._~+/=-]{0,4096}[0-9])[A-Za-z0-9._~+/=-]{12,4096})"),
    # key=value, key: value and "key": "value" for the usual names (libpq's password=, PGPASSWORD=,
    # AWS_SECRET_ACCESS_KEY=, a JSON logger's "token": ...).
    _p("password", "password=, passwd:, pwd= (libpq, PGPASSWORD=, JSON's \"password\": ...)", rf"(?i)(?:{_PASSWORD_KEYS})[\"']?\s{{0,10}}[=:]\s{{0,10}}{_VALUE}"),
    _p("secret", "secret=, token=, api_key=, access_key=, client_secret=, AWS_SECRET_ACCESS_KEY=, ...", rf"(?i)(?:{_SECRET_KEYS})[\"']?\s{{0,10}}[=:]\s{{0,10}}{_VALUE}"),
    # Token formats that need no key name: their prefix says what they are.
    _p("aws key", "an AWS access key id: AKIA... (and ASIA, AGPA, AIDA, AROA, AIPA, ANPA, ANVA)", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b"),
    _p("github token", "ghp_, gho_, ghu_, ghs_, ghr_, github_pat_", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,255}\b|\bgithub_pat_[A-Za-z0-9_]{20,255}\b"),
    _p("gitlab token", "glpat-...", r"\bglpat-[A-Za-z0-9_-]{20,255}\b"),
    _p("slack token", "xoxb-, xoxp-, xoxa-, ...", r"\bxox[abposre]-[A-Za-z0-9-]{10,255}"),
    _p("slack webhook", "https://hooks.slack.com/services/...",
       r"(?i)https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{1,255}"),
    _p("api key", "sk_live_, sk_test_, rk_live_, sk-...", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,255}\b|\bsk-[A-Za-z0-9_-]{20,255}"),
    _p("api key", "a Google API key: AIza...", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    _p("token", "a JWT: eyJ...eyJ...", r"\beyJ[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,8192}\.[A-Za-z0-9_-]{0,4096}"),
)

_BEGIN_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_END_KEY = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# Every kind of secret recognised, as docs/trust.md's table shows them (private keys are cut out by code, not a regex).
DOCUMENTED: tuple[Pattern, ...] = (
    Pattern("private key", "-----BEGIN ... PRIVATE KEY----- to its END line (or to the end of the text)", _BEGIN_KEY),
    *PATTERNS)
MAX_TEXT = 1 << 20  # characters redacted in one value; what is beyond is cut (every source bounds its reads anyway)


def _private_keys(text: str) -> str:
    """Each private-key block, BEGIN to its END (or to the end of the text when the END was cut off)."""
    out, at = [], 0
    while (begin := _BEGIN_KEY.search(text, at)) is not None:
        end = _END_KEY.search(text, begin.end())
        out += [text[at:begin.start()], redacted("private key")]
        at = end.end() if end is not None else len(text)
    return "".join(out) + text[at:] if out else text


def _apply(pattern: Pattern, text: str) -> str:
    if "secret" not in pattern.regex.groupindex:
        return pattern.regex.sub(redacted(pattern.name), text)

    def replace(match: re.Match[str]) -> str:
        whole, start = match.group(0), match.start("secret") - match.start()
        return whole[:start] + redacted(pattern.name) + whole[match.end("secret") - match.start():]

    return pattern.regex.sub(replace, text)


def compile_extra(patterns: Iterable[str]) -> tuple[Pattern, ...]:
    """A team's own patterns (``redact_patterns``), each match removed as ``[redacted: pattern]``."""
    return tuple(Pattern("pattern", p, re.compile(p)) for p in patterns)


def redact(text: str, extra: tuple[Pattern, ...] = ()) -> str:
    """``text`` with every secret :data:`PATTERNS` (and ``extra``) recognise replaced by what it was."""
    if not text:
        return text
    text = text[:MAX_TEXT]
    if "PRIVATE KEY" in text:
        text = _private_keys(text)
    for pattern in (*PATTERNS, *extra):
        text = _apply(pattern, text)
    return text


def redact_data(value: Any, extra: tuple[Pattern, ...] = ()) -> Any:
    """Every string in ``value`` (nested dicts, lists and tuples, keys included) redacted."""
    if isinstance(value, str):
        return redact(value, extra)
    if isinstance(value, Mapping):
        return {redact_data(k, extra): redact_data(v, extra) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v, extra) for v in value) if isinstance(value, tuple) else [
            redact_data(v, extra) for v in value]
    return value


def _text(dtype: Any) -> bool:
    """A column that may hold text: object (pandas 2) or str (pandas 3's default for strings)."""
    return getattr(dtype, "kind", "") in ("O", "U", "S", "T") or str(dtype).startswith("str")


def redact_frame(frame: Any, columns: Iterable[str] | None = None,
                 clean: Callable[[str], str] | None = None) -> Any:
    """A DataFrame with every string cell of ``columns`` (default: every text column) passed through ``clean``
    (default :func:`redact`), in place; returned for chaining."""
    names = list(columns) if columns is not None else [c for c in frame.columns if _text(frame[c].dtype)]
    scrub = clean or redact
    for name in names:
        if name in frame.columns and len(frame):
            frame[name] = frame[name].map(lambda v: scrub(v) if isinstance(v, str) else v)
    return frame
