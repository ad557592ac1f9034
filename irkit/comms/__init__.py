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

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit.config import Config, redact
from irkit.errors import ConfigError

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
_ATTEMPTS, _BACKOFF = 3, 1.0  # tries per send, and the first pause (doubled each time): at most ~3 s of waiting


def render(template: str, context: Mapping[str, Any], templates_dir: str = "") -> str:
    """One template filled from ``context``; a team's file of the same name wins."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(TEMPLATES))]
    if templates_dir:
        loaders.insert(0, jinja2.FileSystemLoader(templates_dir))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)  # plain text: mail, Slack, not HTML
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
    """A rendered mail: its ``Subject:`` line and the body after it."""
    first, _, rest = text.partition("\n")
    if first.startswith("Subject: "):
        return first.removeprefix("Subject: ").strip(), rest.lstrip("\n")
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
        text = render(template, context, cfg.templates_dir)
        subject, body = _split(text)
        payload: dict[str, Any] = {}
        to = {"email": cfg.email_to, "customer-email": cfg.customer_email_to, "slack": cfg.war_room,
              "statuspage": cfg.status_page_url}[channel]
        if channel in ("email", "customer-email"):
            payload = {"facts": dict(context.get("facts") or {}), "at": context.get("now", "")}  # for the next update
        elif channel == "slack":
            payload = {"text": body.strip()}
        elif channel == "statuspage":
            payload = {"incident": {"name": context["customer_title"],
                                    "status": _STATUSPAGE_STATUS.get(str(context["status"]), "investigating"),
                                    "impact_override": _IMPACT.get(str(context.get("severity")), "major"),
                                    "body": body.strip()}}
        out.append(Message("", kind, channel, stage, to, subject, body, payload, now,
                           "draft" if draft else "outbox"))
    return out


class Outbox:
    """A run's ``outbox/``: one JSON file per message, numbered in the order they were written."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "outbox"

    def all(self) -> list[Message]:
        if not self.path.is_dir():
            return []
        found = []
        for file in sorted(self.path.glob("*.json")):
            try:
                found.append(Message.from_dict(json.loads(file.read_text())))
            except (OSError, ValueError, KeyError):
                continue  # a file cut short by a crash: the others still count
        return found

    def put(self, message: Message) -> Message:
        self.path.mkdir(parents=True, exist_ok=True)
        if not message.id:
            number = len(list(self.path.glob("*.json"))) + 1
            message = replace(message, id=f"{number:03d}-{message.kind}-{message.channel}")
        (self.path / f"{message.id}.json").write_text(json.dumps(message.as_dict(), indent=2))
        return message

    def get(self, message_id: str) -> Message:
        file = self.path / f"{Path(message_id).name}.json"
        if not file.is_file():
            raise ConfigError(f"no message {message_id} in {self.path}; it has: "
                              f"{', '.join(m.id for m in self.all()) or 'none'}")
        return Message.from_dict(json.loads(file.read_text()))

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
            attempts.append({"at": started, "ok": True})
            return self.put(replace(message, status="sent", attempts=tuple(attempts),
                                    sent_at=datetime.now(UTC).isoformat(), remote_id=answer or message.remote_id))
        return self.put(replace(message, status="failed", attempts=tuple(attempts)))
