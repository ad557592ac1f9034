"""Communications (playbook 3.2 and its templates): messages rendered from the incident, an outbox, channels.

    messages(context, stage, config)    the playbook's messages for one moment of the incident: the
                                        initial notification, a status update, the resolution; each
                                        for its channel (email, Slack, the status page, customers)
    Outbox(run_dir).put(message)        written to ``outbox/NNN-<kind>-<channel>.json`` in the run
    Outbox(run_dir).send(message, cfg)  only when sending is switched on for the run: retried with
                                        backoff within a bound; a failure is recorded, never raised

Templates are Jinja2 files (``irkit/comms/templates``); a team replaces any of them by putting a
file of the same name in ``templates_dir``. A variable a template names and the incident does
not have is an error, not an empty string.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit.config import Config, redact
from irkit.errors import ConfigError
from irkit.escaping import one_line, slack
from irkit.evidence.rundir import RunDir, make_dir, read_json, write_json

__all__ = ["CHANNELS", "STAGES", "Message", "Outbox", "messages", "render"]

TEMPLATES = Path(__file__).parent / "templates"
# What each moment of the incident sends, by channel: (kind, template, channel).
STAGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "initial": (("initial", "initial.txt.j2", "email"), ("slack", "slack.txt.j2", "slack"),
                ("statuspage", "statuspage.txt.j2", "statuspage"),
                ("customer", "customer-email.txt.j2", "customer-email")),
    "update": (("update", "update.txt.j2", "email"), ("slack", "slack.txt.j2", "slack"),
               ("statuspage", "statuspage.txt.j2", "statuspage")),
    "resolution": (("resolution", "resolution.txt.j2", "email"), ("slack", "slack.txt.j2", "slack"),
                   ("statuspage", "statuspage.txt.j2", "statuspage"),
                   ("customer", "customer-email.txt.j2", "customer-email")),
}
CHANNELS = ("email", "slack", "statuspage", "customer-email")
_MAX_MESSAGE = 1 << 20  # bytes of one outbox file read back
_ATTEMPTS, _BACKOFF = 3, 1.0  # tries per send, and the first pause (doubled each time): at most ~3 s of waiting


# How a template's values are escaped, by the channel the text goes to: a value of the incident (a label, a
# query, a log line) never becomes markup, a mention or a header of its own; the template's own text stays as
# written. Email and the status page take plain text on one line per value (a value never opens a new line, so
# it never reaches the headers); Slack's text escapes & < > and makes mentions inert.
FORMATS: dict[str, Callable[[Any], str]] = {
    "email": one_line, "customer-email": one_line, "statuspage": one_line, "slack": slack, "text": str,
}


def render(template: str, context: Mapping[str, Any], templates_dir: str = "", channel: str = "text") -> str:
    """One template filled from ``context``, every value escaped for ``channel`` (:data:`FORMATS`); a team's
    file of the same name wins."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(TEMPLATES))]
    if templates_dir:
        loaders.insert(0, jinja2.FileSystemLoader(templates_dir))
    escape = FORMATS[channel]
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False,  # plain text: mail, Slack, not HTML
                             finalize=lambda value: escape(value) if isinstance(value, str) else value)
    try:
        return env.get_template(template).render(**context)
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {template}: {exc.message}; the incident has: "
                          f"{', '.join(sorted(context))}") from exc
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template {template}: {exc}; check templates_dir") from exc


@dataclass(frozen=True)
class Message:
    """One message: what (``kind``), where (``channel``, ``to``), the text, the channel's ``payload``, and
    what became of it: ``status`` outbox, draft (not to be sent), sent or failed, with every attempt."""

    id: str
    kind: str
    channel: str
    stage: str
    to: str
    subject: str
    body: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""
    status: str = "outbox"
    attempts: tuple[Mapping[str, Any], ...] = ()
    sent_at: str = ""
    remote_id: str = ""  # what the channel calls it (the status page's incident id)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "payload": dict(self.payload), "attempts": [dict(a) for a in self.attempts]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        text = {k: str(data.get(k) or "") for k in ("id", "kind", "channel", "stage", "to", "subject", "body",
                                                     "created_at", "status", "sent_at", "remote_id")}
        return cls(**text, payload=dict(data.get("payload") or {}),
                   attempts=tuple(dict(a) for a in data.get("attempts") or ()))


def _split(text: str) -> tuple[str, str]:
    """A rendered mail: its ``Subject:`` line (one line, whatever it holds) and the body after it."""
    first, _, rest = text.partition("\n")
    if first.startswith("Subject: "):
        return one_line(first.removeprefix("Subject: ")), rest.lstrip("\n")
    return "", text


_STATUSPAGE_STATUS = {"Investigating": "investigating", "Identified": "identified", "Mitigating": "identified",
                      "Monitoring": "monitoring", "Resolved": "resolved"}
_IMPACT = {"SEV-1": "critical", "SEV-2": "major", "SEV-3": "minor"}


def messages(context: Mapping[str, Any], stage: str, cfg: Config, *, draft: bool = False) -> list[Message]:
    """The stage's messages (:data:`STAGES`), rendered; a channel that is not configured is left out, a
    customer mail is only for SEV-1 and SEV-2. ``draft``: not to be sent (a resolution phase 4 did not
    validate), kept in the outbox as status ``draft``."""
    out = []
    now = datetime.now(UTC).isoformat()
    for kind, template, channel in STAGES[stage]:
        if channel == "customer-email" and (not cfg.customer_email_to or context.get("severity") not in
                                            ("SEV-1", "SEV-2")):
            continue
        if channel == "statuspage" and not cfg.statuspage_page_id:
            continue
        text = render(template, {**context, "stage": stage}, cfg.templates_dir, channel)
        subject, body = _split(text)
        payload: dict[str, Any] = {}
        to = {"email": cfg.email_to, "customer-email": cfg.customer_email_to, "slack": cfg.war_room,
              "statuspage": cfg.status_page_url}[channel]
        if channel in ("email", "customer-email"):
            payload = {"facts": dict(context.get("facts") or {}), "at": context.get("now", "")}  # for the next update
        elif channel == "slack":
            payload = {"text": body.strip()}
        elif channel == "statuspage":
            payload = {"incident": {"name": one_line(context["customer_title"]),
                                    "status": _STATUSPAGE_STATUS.get(str(context["status"]), "investigating"),
                                    "impact_override": _IMPACT.get(str(context.get("severity")), "major"),
                                    "body": body.strip()}}
        out.append(Message("", kind, channel, stage, to, subject, body, payload, now,
                           "draft" if draft else "outbox"))
    return out


class Outbox:
    """A run's ``outbox/``: one JSON file per message, numbered in the order they were written."""

    def __init__(self, run_dir: Path) -> None:
        self.files = RunDir(run_dir)
        self.path = self.files.outbox

    def all(self) -> list[Message]:
        found = []
        for file in self.files.messages():
            data = read_json(file, _MAX_MESSAGE)  # a regular file only: a planted FIFO or link is passed over
            if isinstance(data, dict):
                try:
                    found.append(Message.from_dict(data))
                except (KeyError, TypeError, ValueError):
                    continue  # a file cut short by a crash: the others still count
        return found

    def put(self, message: Message) -> Message:
        """Write the message (atomically, never through a link) as ``outbox/<id>.json``; a new one is numbered."""
        make_dir(self.path)
        if not message.id:
            number = len(self.files.messages()) + 1
            message = replace(message, id=f"{number:03d}-{message.kind}-{message.channel}")
        write_json(self.files.message(message.id), message.as_dict())
        return message

    def get(self, message_id: str) -> Message:
        data = read_json(self.files.message(message_id), _MAX_MESSAGE)
        if not isinstance(data, dict):
            raise ConfigError(f"no message {message_id} in {self.path}; it has: "
                              f"{', '.join(m.id for m in self.all()) or 'none'}")
        return Message.from_dict(data)

    def send(self, message: Message, cfg: Config, *, remote_id: str = "") -> Message:
        """Send one message through its channel, retrying with backoff; the outcome is written back.

        Never raises for a failed send: the message is marked failed with each attempt's error, so the
        phase goes on and the message can be sent again (``irkit send``)."""
        from irkit.comms import channels

        if message.status == "draft":
            return message
        attempts = list(message.attempts)
        pause = _BACKOFF
        for attempt in range(_ATTEMPTS):
            started = datetime.now(UTC).isoformat()
            try:
                answer = channels.deliver(message, cfg, remote_id=remote_id)
            except channels.SendError as exc:
                attempts.append({"at": started, "error": redact(str(exc), cfg)})
                if not exc.retry or attempt == _ATTEMPTS - 1:
                    break
                time.sleep(pause)
                pause *= 2
                continue
            except Exception as exc:  # a value no channel can carry: this message fails, the others still go
                attempts.append({"at": started, "error": redact(f"{type(exc).__name__}: {exc}", cfg)[:300]})
                break
            attempts.append({"at": started, "ok": True})
            return self.put(replace(message, status="sent", attempts=tuple(attempts),
                                    sent_at=datetime.now(UTC).isoformat(), remote_id=answer or message.remote_id))
        return self.put(replace(message, status="failed", attempts=tuple(attempts)))
