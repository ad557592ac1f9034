"""The channels a message leaves by: a Slack incoming webhook, a status page REST API (Atlassian
Statuspage's shape: create, update and resolve an incident), and email over SMTP with STARTTLS.

Each call is bounded by the configuration's timeouts; credentials come only from the environment
or files (:class:`~irkit.config.Config`'s secrets). A failure is a :class:`SendError` that says
whether trying again may help (a timeout, HTTP 429 or 5xx) or not (no credentials, HTTP 4xx).
"""

from __future__ import annotations

import email.policy
import smtplib
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import requests

from irkit.config import Config, redact
from irkit.errors import IrkitError
from irkit.escaping import one_line
from irkit.sources import http

if TYPE_CHECKING:
    from irkit.comms import Message

__all__ = ["SendError", "deliver"]


class SendError(IrkitError):
    """A message could not be delivered; ``retry``: whether another attempt may succeed."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def _http(cfg: Config, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
    try:  # a whole answer within the timeouts, and no more of it than a receipt needs
        with http.bounded_session(cfg.connect_timeout + cfg.http_timeout, 1 << 20, truncate=True) as session:
            answer = session.request(method, url, timeout=(cfg.connect_timeout, cfg.http_timeout), **kwargs)
    except requests.RequestException as exc:
        raise SendError(f"{what}: {type(exc).__name__} at {redact(url, cfg)}", retry=True) from exc
    if answer.status_code == 429 or answer.status_code >= 500:
        raise SendError(f"{what}: HTTP {answer.status_code}", retry=True)
    if not answer.ok:
        raise SendError(f"{what}: HTTP {answer.status_code} {answer.text[:200]}", retry=False)
    return answer


def _slack(message: Message, cfg: Config) -> str:
    if cfg.slack_webhook is None:
        raise SendError("no Slack webhook: set IRKIT_SLACK_WEBHOOK_URL or slack_webhook_file", retry=False)
    _http(cfg, "POST", cfg.slack_webhook.reveal(), "Slack webhook", json=dict(message.payload))
    return ""


def _statuspage(message: Message, cfg: Config, remote_id: str) -> str:
    if cfg.statuspage_token is None:
        raise SendError("no status page token: set IRKIT_STATUSPAGE_TOKEN or statuspage_token_file", retry=False)
    base = f"{cfg.statuspage_api.rstrip('/')}/pages/{cfg.statuspage_page_id}/incidents"
    headers = {"Authorization": f"OAuth {cfg.statuspage_token.reveal()}"}
    if remote_id:  # the incident exists on the page: update it (resolve it, at the end)
        answer = _http(cfg, "PATCH", f"{base}/{remote_id}", "status page update", json=dict(message.payload),
                       headers=headers)
    else:
        answer = _http(cfg, "POST", base, "status page incident", json=dict(message.payload), headers=headers)
    try:
        return str(answer.json().get("id") or remote_id)
    except ValueError:
        return remote_id


def _email(message: Message, cfg: Config) -> str:
    if not cfg.smtp_host:
        raise SendError("no SMTP server: set smtp_host in [comms]", retry=False)
    # Long subjects stay on one line (the default folds at 78 characters, right after "Subject:").
    mail = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    # Headers from single-line values only: a line break in a value would start a header of its own.
    mail["From"], mail["To"], mail["Subject"] = cfg.email_from, one_line(message.to), one_line(message.subject)
    mail.set_content(message.body)
    try:
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.http_timeout) as server:
            server.ehlo()
            if cfg.smtp_starttls:
                if not server.has_extn("starttls"):
                    raise SendError(f"{cfg.smtp_host}:{cfg.smtp_port} does not offer STARTTLS: not sending in "
                                    "clear (set smtp_starttls = false only for a server on the same host)",
                                    retry=False)
                server.starttls(context=ssl.create_default_context(cafile=cfg.smtp_ca_file or None))
                server.ehlo()
            if cfg.smtp_user:
                server.login(cfg.smtp_user, cfg.smtp_password.reveal() if cfg.smtp_password else "")
            server.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(f"SMTP login as {cfg.smtp_user} refused; check IRKIT_SMTP_PASSWORD", retry=False) from exc
    except ssl.SSLError as exc:
        raise SendError(f"STARTTLS with {cfg.smtp_host} failed ({exc.reason}); check smtp_ca_file",
                        retry=False) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"SMTP {cfg.smtp_host}:{cfg.smtp_port}: {type(exc).__name__}: {exc}", retry=True) from exc
    return ""


def deliver(message: Message, cfg: Config, *, remote_id: str = "") -> str:
    """Send ``message`` by its channel; what the channel calls it (a status page incident id), or ''."""
    if message.channel == "slack":
        return _slack(message, cfg)
    if message.channel == "statuspage":
        return _statuspage(message, cfg, remote_id)
    if message.channel in ("email", "customer-email"):
        return _email(message, cfg)
    raise SendError(f"no channel {message.channel}", retry=False)
