"""The target system irkit investigates, as one frozen object.

Which namespace, which deployments, where PostgreSQL, Prometheus and Redis answer,
which metric and label names the services export, the severity thresholds and the
timeouts. The playbook's Web3 marketplace is the default; any team points irkit at
its own system with, from strongest to weakest:

1. keyword arguments to :func:`load` (what a notebook parameter or a test passes),
2. ``IRKIT_<KEY>`` environment variables (``IRKIT_NAMESPACE``, ``IRKIT_PG_DSN``, ...),
3. ``irkit.toml`` (path from ``IRKIT_CONFIG``, else ``./irkit.toml``),
4. the defaults below, taken from the playbook.

Secrets never live in the toml or in notebook parameters (papermill writes those
into the executed notebook in plain text). They come from the environment
(``IRKIT_PG_PASSWORD``, ``IRKIT_PROM_TOKEN``) or from a file
whose *path* is configured (``pg_password_file``, ``prom_token_file``). They are held
as :class:`Secret`, whose ``repr`` and ``str`` are masked.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from irkit import limits, playbook, redaction
from irkit.errors import ConfigError, IrkitError

__all__ = ["CHECKS", "DEFAULTS", "Config", "Secret", "boolean", "env_targets", "keys", "load", "locate", "read_toml",
           "redact", "redact_frame", "starter_toml", "to_toml"]


class Secret(SecretStr):
    """A string that does not show itself (pydantic's ``SecretStr``: ``repr`` and ``str`` are masked)."""

    def reveal(self) -> str:
        """The secret itself, for the one call that needs it."""
        return self.get_secret_value()

    def __bool__(self) -> bool:
        return bool(self.get_secret_value())


def _key(section: str, doc: str, check: str = "text", bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """A field's metadata: its toml section, its doc line, and how its value is checked (see :data:`CHECKS`)."""
    return {"section": section, "doc": doc, "check": check, "bounds": bounds}


@pydantic_dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False))
class Config:
    """Where the incident happens and how irkit reaches it.

    Each field is one key: ``[section] name`` in ``irkit.toml`` (the section is in the
    field's metadata) and ``IRKIT_<NAME>`` in the environment. Every value is checked by pydantic
    however the object is made (:func:`load`, :meth:`replace`, or ``Config(...)`` by hand), through
    :func:`_field` (what each kind of key allows) and :func:`_consistent` (checks across keys).
    """

    # [kubernetes]
    namespace: str = field(default="web3-marketplace-prod", metadata=_key("kubernetes", "namespace of the service", "label"))
    kube_context: str = field(default="", metadata=_key("kubernetes", "kubeconfig context; empty = current"))
    kubeconfig: str = field(default="", metadata=_key("kubernetes", "kubeconfig path; empty = KUBECONFIG or ~/.kube/config; 'in-cluster' = service account", "path"))
    kube_token_file: str = field(default="/var/run/secrets/kubernetes.io/serviceaccount/token", metadata=_key("kubernetes", "in-cluster: the service account token (a projected token is read again as the kubelet rotates it)", "path"))
    kube_ca_file: str = field(default="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", metadata=_key("kubernetes", "in-cluster: the CA bundle the API server's certificate is checked against", "path"))
    secret_changes: bool = field(default=True, metadata=_key("kubernetes", "list Secrets (metadata only) among the recent config changes; needs list on secrets, which deploy/ does not grant: false there", "text"))
    backend_deployment: str = field(default="backend-deployment", metadata=_key("kubernetes", "backend Deployment", "subdomain"))
    frontend_deployment: str = field(default="frontend-deployment", metadata=_key("kubernetes", "frontend Deployment", "subdomain"))
    other_deployments: tuple[str, ...] = field(default=(), metadata=_key("kubernetes", "more Deployments the investigation reads beside the backend and the frontend (logs, rollout history, findings, the plan): workers, internal APIs", "subdomain"))
    serves_users: tuple[str, ...] = field(default=(), metadata=_key("kubernetes", "the Deployments whose having no ready pod is a complete outage (SEV-1); empty = the backend and the frontend. A Deployment not listed that has none ready is a failing feature (SEV-3)", "subdomain"))
    postgres_statefulset: str = field(default="postgres-primary", metadata=_key("kubernetes", "PostgreSQL StatefulSet", "subdomain"))
    redis_statefulset: str = field(default="redis-master", metadata=_key("kubernetes", "Redis StatefulSet", "subdomain"))
    backend_container: str = field(default="backend", metadata=_key("kubernetes", "container name in the backend pods", "label"))
    frontend_container: str = field(default="frontend", metadata=_key("kubernetes", "container name in the frontend pods", "label"))

    # [postgres]
    pg_dsn: str = field(default="postgresql://irkit@localhost:5432/web3marketplace", metadata=_key("postgres", "libpq DSN without the password"))
    pg_password_file: str = field(default="", metadata=_key("postgres", "file holding the password (or set IRKIT_PG_PASSWORD)", "path"))
    pg_database: str = field(default="web3marketplace", metadata=_key("postgres", "database whose sessions are examined", "identifier"))
    pg_admin_user: str = field(default="postgres", metadata=_key("postgres", "role the plan's psql commands run as (kubectl exec into postgres_statefulset)", "identifier"))
    pg_orders_table: str = field(default="orders", metadata=_key("postgres", "table whose recent rows show orders flowing", "identifier"))
    pg_orders_ts_column: str = field(default="created_at", metadata=_key("postgres", "timestamp column of that table", "identifier"))
    lock_sample_seconds: float = field(default=30.0, metadata=_key("postgres", "while irkit run runs, sample the lock graph this often (one bounded query; at least 5 s, 0 = off); phases 2 and 4 sample it too", "number", (0.0, 3600.0)))

    # [prometheus]
    prom_url: str = field(default="http://prometheus-service:9090", metadata=_key("prometheus", "Prometheus base URL", "http_url"))
    prom_token_file: str = field(default="", metadata=_key("prometheus", "file holding a bearer token (or set IRKIT_PROM_TOKEN)", "path"))
    prom_requests_metric: str = field(default="http_requests_total", metadata=_key("prometheus", "request counter", "promname"))
    prom_status_label: str = field(default="status", metadata=_key("prometheus", "label holding the HTTP status code", "promname"))
    prom_service_label: str = field(default="service", metadata=_key("prometheus", "label naming the service", "promname"))
    prom_latency_metric: str = field(default="http_request_duration_seconds", metadata=_key("prometheus", "latency histogram (without _bucket)", "promname"))
    prom_latency_unit: str = field(default="s", metadata=_key("prometheus", "what the latency histogram counts: s, or ms (Istio's istio_request_duration_milliseconds, Envoy's upstream_rq_time); irkit shows seconds either way", "unit"))
    prom_error_status: str = field(default="5..", metadata=_key("prometheus", "the status label's values that count as errors, a regular expression: 5.. matches codes (500-599) and classes (5xx); Envoy's response_code_class needs 5", "regex"))
    prom_rate_window: str = field(default="5m", metadata=_key("prometheus", "range of rate() as in the playbook", "duration"))

    # [redis]
    redis_url: str = field(default="redis://redis-master:6379/0", metadata=_key("redis", "Redis URL without the password", "redis_url"))

    # [http]
    health_endpoints: tuple[str, ...] = field(
        default=(
            "https://web3marketplace.com/api/health",
            "https://api.web3marketplace.com/products?limit=1",
            "https://api.web3marketplace.com/orders/health-check",
        ),
        metadata=_key("http", "URLs of the critical user journeys (playbook 4.1)", "http_url"),
    )

    critical_journeys: tuple[str, ...] = field(default=(), metadata=_key("http", "NAME=SEV-N=URL-or-path: a journey whose failure is that severity whatever the error ratio (the playbook: payment SEV-1, authentication SEV-2); a path matches the health endpoints ending in it", "journey"))

    # [thresholds]
    error_ratio_high: float = field(default=0.10, metadata=_key("thresholds", "5xx ratio above which it is SEV2", "number", (0.0, 1.0)))
    error_ratio_moderate: float = field(default=0.05, metadata=_key("thresholds", "5xx ratio from which it is SEV3", "number", (0.0, 1.0)))
    latency_p95_slow_seconds: float = field(default=5.0, metadata=_key("thresholds", "p95 latency above which it is SEV2", "number", (0.0, 3600.0)))
    pg_saturation_ratio: float = field(default=0.9, metadata=_key("thresholds", "share of usable PostgreSQL connections in use from which it is a finding", "number", (0.0, 1.0)))
    pg_idle_transaction_seconds: float = field(default=60.0, metadata=_key("thresholds", "a session idle in a transaction this long is one the application does not end: counted in a pool's exhaustion and terminated with the application's idle sessions (a shorter one is a busy application between statements)", "number", (0.0, 86400.0)))

    # [mitigation]
    memory_limit_factor: float = field(default=1.5, metadata=_key("mitigation", "an OOMKilled container's memory limit is raised by this factor", "number", (1.0, 16.0)))
    scale_factor: float = field(default=2.0, metadata=_key("mitigation", "an overloaded deployment is scaled to its replicas times this (the playbook: 3 to 6)", "number", (1.0, 10.0)))
    max_replicas: int = field(default=20, metadata=_key("mitigation", "the plan never scales a deployment above this many replicas", "number", (0.0, 1000.0)))
    circuit_breaker_url: str = field(default="http://localhost:3000/admin/circuit-breaker/enable", metadata=_key("mitigation", "the service's circuit-breaker endpoint; irkit's action POSTs to it, so it must be reachable from where irkit runs (the printed command curls it inside the pod)", "http_url"))
    backup_provider_env: str = field(default="BLOCKCHAIN_PROVIDER=backup", metadata=_key("mitigation", "NAME=VALUE that switches the backend to its backup blockchain provider", "env_assignment"))
    upstream_timeout_env: str = field(default="API_TIMEOUT=30000", metadata=_key("mitigation", "NAME=VALUE that raises the backend's upstream timeout", "env_assignment"))
    circuit_breaker_off_url: str = field(default="http://localhost:3000/admin/circuit-breaker/disable", metadata=_key("mitigation", "the endpoint that closes the circuit breaker again (the undo of enabling it)", "http_url"))
    # Guardrails: what `apply` may change at all (docs/actions.md).
    allowed_actions: tuple[str, ...] = field(default=tuple(playbook.ACTIONS), metadata=_key("mitigation", "actions irkit may apply; any other is refused", "label"))
    allowed_namespaces: tuple[str, ...] = field(default=(), metadata=_key("mitigation", "namespaces actions may touch; empty = namespace only", "label"))
    allowed_workloads: tuple[str, ...] = field(default=(), metadata=_key("mitigation", "Deployments and StatefulSets actions may touch; empty = the Deployments and StatefulSets configured above", "subdomain"))
    min_replicas: int = field(default=1, metadata=_key("mitigation", "never scale a deployment below this many replicas", "number", (0.0, 1000.0)))
    max_terminations: int = field(default=3, metadata=_key("mitigation", "at most this many PostgreSQL sessions cancelled or terminated by one run", "number", (0.0, 1000.0)))
    terminate_superuser: bool = field(default=False, metadata=_key("mitigation", "whether a superuser's session may be cancelled or terminated", "text"))
    pg_action_dsn: str = field(default="", metadata=_key("mitigation", "libpq DSN without the password of a role with pg_signal_backend, for cancelling and terminating sessions (password: IRKIT_PG_ACTION_PASSWORD or a passfile); empty = database actions are refused"))
    action_timeout: float = field(default=120.0, metadata=_key("mitigation", "seconds an applied action has to show its effect before it is called failed", "number", (0.0, 3600.0)))

    # [comms] the playbook's communication protocols: messages go to the run's outbox; they leave only when
    # sending is switched on for a run (send_messages). Credentials: see the secrets below.
    war_room: str = field(default="#incident-response", metadata=_key("comms", "the incident channel named in every message"))
    status_page_url: str = field(default="https://status.web3marketplace.com", metadata=_key("comms", "the public status page named in notifications", "http_url"))
    update_minutes: int = field(default=30, metadata=_key("comms", "minutes between status updates while the incident is active (the playbook: 30)", "number", (0.0, 1440.0)))
    email_to: str = field(default="engineering@web3marketplace.com", metadata=_key("comms", "where internal notifications are mailed", "email"))
    customer_email_to: str = field(default="", metadata=_key("comms", "where the customer notification is mailed (SEV-1 and SEV-2); empty = not mailed", "email"))
    email_from: str = field(default="irkit@web3marketplace.com", metadata=_key("comms", "the sender of the mails", "email"))
    smtp_host: str = field(default="", metadata=_key("comms", "SMTP server; empty = mail stays in the outbox", "text"))
    smtp_port: int = field(default=587, metadata=_key("comms", "SMTP port (STARTTLS on 587)", "number", (0.0, 65535.0)))
    smtp_user: str = field(default="", metadata=_key("comms", "SMTP login; empty = no login (password: IRKIT_SMTP_PASSWORD or smtp_password_file)", "text"))
    smtp_password_file: str = field(default="", metadata=_key("comms", "file holding the SMTP password", "path"))
    smtp_starttls: bool = field(default=True, metadata=_key("comms", "upgrade the SMTP connection with STARTTLS before anything is sent (refused if the server cannot)", "text"))
    smtp_ca_file: str = field(default="", metadata=_key("comms", "CA bundle that signs the SMTP server's certificate; empty = the system's", "path"))
    slack_webhook_file: str = field(default="", metadata=_key("comms", "file holding the Slack incoming-webhook URL (or set IRKIT_SLACK_WEBHOOK_URL)", "path"))
    statuspage_api: str = field(default="https://api.statuspage.io/v1", metadata=_key("comms", "the status page REST API (Atlassian Statuspage's shape)", "http_url"))
    statuspage_page_id: str = field(default="", metadata=_key("comms", "the status page's page id; empty = no status page messages are sent", "text"))
    statuspage_token_file: str = field(default="", metadata=_key("comms", "file holding the status page API key (or set IRKIT_STATUSPAGE_TOKEN)", "path"))
    action_items_file: str = field(default="", metadata=_key("comms", "a TOML file of action items the post-mortem suggests per cause kind (lock-root = [\"...\"]), added to the built-in ones", "path"))
    templates_dir: str = field(default="", metadata=_key("comms", "a directory of Jinja2 templates that replace the built-in ones by file name (docs/communications.md)", "path"))

    # [evidence] what irkit keeps, and who may read it
    redact_patterns: tuple[str, ...] = field(default=(), metadata=_key("evidence", "regular expressions of secrets of your own (an internal token format) removed from everything irkit reads, besides the built-in ones (docs/trust.md)", "regex"))
    evidence_group: str = field(default="", metadata=_key("evidence", "a group that may read the evidence: files 0640 and directories 0750 owned by it; empty = 0600 and 0700, the owner only", "group"))

    # [timeouts] seconds
    connect_timeout: float = field(default=5.0, metadata=_key("timeouts", "connecting to any source", "number", (0.0, 600.0)))
    statement_timeout: float = field(default=5.0, metadata=_key("timeouts", "one PostgreSQL statement", "number", (0.0, 600.0)))
    lock_timeout: float = field(default=1.0, metadata=_key("timeouts", "waiting for a PostgreSQL lock", "number", (0.0, 600.0)))
    request_timeout: float = field(default=10.0, metadata=_key("timeouts", "one Prometheus or Kubernetes request", "number", (0.0, 600.0)))
    http_timeout: float = field(default=5.0, metadata=_key("timeouts", "one health-endpoint request", "number", (0.0, 600.0)))
    retry_after: float = field(default=60.0, metadata=_key("timeouts", "a source that did not answer is not asked again for this long", "number", (0.0, 3600.0)))

    # Secrets: never from the toml, never in repr.
    pg_password: Secret | None = field(default=None, repr=False, compare=False, metadata={"secret": "IRKIT_PG_PASSWORD"})
    prom_token: Secret | None = field(default=None, repr=False, compare=False, metadata={"secret": "IRKIT_PROM_TOKEN"})
    pg_action_password: Secret | None = field(default=None, repr=False, compare=False, metadata={"secret": "IRKIT_PG_ACTION_PASSWORD"})
    slack_webhook: Secret | None = field(default=None, repr=False, compare=False, metadata={"secret": "IRKIT_SLACK_WEBHOOK_URL"})
    statuspage_token: Secret | None = field(default=None, repr=False, compare=False, metadata={"secret": "IRKIT_STATUSPAGE_TOKEN"})
    smtp_password: Secret | None = field(default=None, repr=False, compare=False, metadata={"secret": "IRKIT_SMTP_PASSWORD"})

    @property
    def deployments(self) -> tuple[str, ...]:
        """The Deployments the playbook looks at, backend first, then the frontend and the others configured."""
        return tuple(dict.fromkeys((self.backend_deployment, self.frontend_deployment, *self.other_deployments)))

    @property
    def user_facing(self) -> tuple[str, ...]:
        """The Deployments whose having no ready pod is a complete outage."""
        return self.serves_users or (self.backend_deployment, self.frontend_deployment)

    @property
    def journeys(self) -> tuple[tuple[str, int, str], ...]:
        """The critical journeys as (name, severity level, URL or path)."""
        out = []
        for item in self.critical_journeys:
            name, level, target = item.split("=", 2)
            out.append((name, int(level.removeprefix("SEV-")), target))
        return tuple(out)

    def pg_conninfo(self) -> str:
        """The DSN with the password added back, for the one call that connects."""
        if self.pg_password is None:
            return self.pg_dsn
        import psycopg.conninfo
        return psycopg.conninfo.make_conninfo(self.pg_dsn, password=self.pg_password.reveal())

    def pg_action_conninfo(self) -> str:
        """The actions' DSN with its password added back (empty when database actions are not configured)."""
        if self.pg_action_password is None or not self.pg_action_dsn:
            return self.pg_action_dsn
        import psycopg.conninfo
        return psycopg.conninfo.make_conninfo(self.pg_action_dsn, password=self.pg_action_password.reveal())

    def replace(self, **changes: Any) -> Config:
        """A copy with some keys changed and checked like any other input."""
        return load(base=self, **changes)

    @field_validator("*", mode="before")
    @classmethod
    def _each(cls, raw: Any, info: ValidationInfo) -> Any:
        return _coerce(str(info.field_name), raw, "Config")

    @model_validator(mode="after")
    def _across(self) -> Config:
        _consistent({f.name: getattr(self, f.name) for f in fields(self)})
        return self


def _settable() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in fields(Config) if "secret" not in f.metadata}


def keys() -> list[tuple[str, str, str, Any]]:
    """(section, name, doc, default) of every configuration key, for docs and the example file."""
    return [(f.metadata["section"], f.name, f.metadata["doc"], f.default) for f in _settable().values()]


def to_toml(values: Mapping[str, Any]) -> str:
    """``irkit.toml`` text setting ``values`` (key -> value), each key under its section."""
    settable = _settable()
    unknown = sorted(set(values) - set(settable))
    if unknown:
        raise ConfigError(f"unknown configuration key(s) {', '.join(unknown)}; valid: {', '.join(settable)}")
    sections: dict[str, list[str]] = {}
    for name, value in values.items():
        if isinstance(value, str | list | tuple | bool | int | float):
            text = json.dumps(list(value) if isinstance(value, tuple) else value)  # a TOML literal for these types
        else:
            raise ConfigError(f"configuration key {name}: cannot write a {type(value).__name__} to TOML")
        sections.setdefault(settable[name].metadata["section"], []).append(f"{name} = {text}")
    return "".join(f"[{section}]\n" + "\n".join(lines) + "\n\n" for section, lines in sections.items())


STARTER_HEADER = """\
# irkit configuration: every key, with its default. Copy to irkit.toml and change what differs.
# Precedence: arguments > IRKIT_<KEY> environment variables > this file > defaults.
# Secrets never go here: set IRKIT_PG_PASSWORD / IRKIT_PROM_TOKEN, or point
# pg_password_file / prom_token_file at a file holding them.

"""


def starter_toml() -> str:
    """``irkit.toml`` with every key at its default (the playbook's names), each with what it means: what
    ``irkit init`` writes, and ``irkit.example.toml``."""
    sections: dict[str, list[str]] = {}
    for section, name, doc, default in keys():
        value = json.dumps(list(default) if isinstance(default, tuple) else default)
        sections.setdefault(section, []).append(f"# {doc} (env IRKIT_{name.upper()})\n{name} = {value}")
    return STARTER_HEADER + "".join(f"\n[{section}]\n" + "\n".join(lines) + "\n" for section, lines in sections.items())


def locate(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The ``irkit.toml`` :func:`load` reads (``path``, else ``IRKIT_CONFIG``, else ``./irkit.toml`` if it
    exists), made absolute; None when the configuration comes from the environment and defaults alone."""
    env = os.environ if env is None else env
    if path is not None:
        return Path(path).absolute()
    if "IRKIT_CONFIG" in env:
        return Path(env["IRKIT_CONFIG"]).absolute()
    return Path("irkit.toml").absolute() if Path("irkit.toml").exists() else None


def env_targets(env: Mapping[str, str] | None = None) -> list[str]:
    """The ``IRKIT_<KEY>`` variables set for configuration keys: a configuration given in the environment."""
    env = os.environ if env is None else env
    return sorted(f"IRKIT_{name.upper()}" for name in _settable() if f"IRKIT_{name.upper()}" in env)


def _coerce(name: str, raw: Any, origin: str) -> Any:
    """:func:`_field`, its complaint as one line naming where the value came from, the key and an example."""
    try:
        return _field(name, raw)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"{origin}: {name}={_shown(raw)} is not valid: {exc}; for example "
                          f"{_shown(_settable()[name].default)}") from exc


def _field(name: str, raw: Any) -> Any:
    """A toml, env or argument value as the field's type, checked as its kind of key allows (:data:`CHECKS`);
    ValueError says what is allowed. Booleans are strict: ``flase`` is refused, not taken for False."""
    f = _settable().get(name)
    if f is None:  # a secret: set by load() from the environment or a file, never parsed here
        return raw
    default = f.default
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else boolean(raw)
    if isinstance(default, int):
        if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).strip().lstrip("-").isdigit():
            raise ValueError("it must be a whole number")
        whole = int(raw)
        low, high = f.metadata["bounds"]
        if not low < whole <= high:
            raise ValueError(f"it must be a whole number above {low:g} and at most {high:g}")
        return whole
    if isinstance(default, float):
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError(f"expected a number, got {type(raw).__name__}")
        try:
            value = float(raw)
        except (ValueError, OverflowError):
            raise ValueError("it must be a number") from None
        low, high = f.metadata["bounds"]
        if not math.isfinite(value) or not low < value <= high:
            raise ValueError(f"it must be a number above {low:g} and at most {high:g}")
        return value
    if isinstance(default, tuple):
        if isinstance(raw, str):
            items = [part.strip() for part in raw.split(",") if part.strip()]
        elif isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
            items = list(raw)
        else:
            raise ValueError("expected a list of strings")
        if len(items) > MAX_LIST:
            raise ValueError(f"at most {MAX_LIST} entries")
        return tuple(_checked(item, f.metadata["check"]) for item in items)
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {type(raw).__name__}")
    return _checked(raw, f.metadata["check"])


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def boolean(raw: Any) -> bool:
    """A yes or no as a person writes it (true/false, yes/no, on/off, 1/0); anything else is a ValueError, never
    taken for False (``flase`` must not turn STARTTLS off). Configuration keys and notebook parameters alike."""
    if isinstance(raw, str) and raw.strip().lower() in _BOOLEANS:
        return _BOOLEANS[raw.strip().lower()]
    raise ValueError("it must be true or false")


def _shown(raw: Any) -> str:
    """A bad value as it goes into a one-line message: its repr, cut short."""
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


# Kubernetes names (apimachinery's validation): a namespace or container name is an RFC 1123
# label, an object name a DNS subdomain. Checked when the config loads, since every name ends up
# in an API path and in a command a responder pastes: "prod; touch /tmp/x #" or ".." never do.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_PROM_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")
_IDENTIFIER = re.compile(r"[^\x00-\x1f\x7f]{1,63}")
MAX_TEXT = 4096  # any configured string
MAX_LIST = 50  # health endpoints


def _url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
        raise ValueError(f"it must be a {' or '.join(s + '://' for s in schemes)} URL with a host")
    parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in 0-65535
    return value


# How each kind of key is checked; the field's metadata names its kind. The message says what is allowed.
CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "label": (lambda v: len(v) <= 63 and _LABEL.fullmatch(v) is not None,
              "a Kubernetes name (RFC 1123 label): lowercase letters, digits and '-', at most 63"),
    "subdomain": (lambda v: len(v) <= 253 and _SUBDOMAIN.fullmatch(v) is not None,
                  "a Kubernetes object name (DNS subdomain): lowercase letters, digits, '-' and '.', at most 253"),
    "promname": (lambda v: _PROM_NAME.fullmatch(v) is not None, "a Prometheus metric or label name"),
    "duration": (lambda v: _DURATION.fullmatch(v) is not None, "a PromQL duration like 5m"),
    "identifier": (lambda v: _IDENTIFIER.fullmatch(v) is not None,
                   "a PostgreSQL name: 1 to 63 characters, no control characters"),
    "http_url": (lambda v: bool(_url(v, ("http", "https"))), "an http:// or https:// URL"),
    "redis_url": (lambda v: bool(_url(v, ("redis", "rediss", "unix"))), "a redis:// URL"),
    "path": (lambda v: "\x00" not in v, "a file path"),
    "journey": (lambda v: re.fullmatch(r"[A-Za-z][\w-]*=SEV-[123]=\S+", v) is not None,
                "NAME=SEV-N=URL-or-path, e.g. payment=SEV-1=/api/payments/health"),
    "env_assignment": (lambda v: re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=[^\x00-\x1f]*", v) is not None,
                       "NAME=VALUE, an environment variable assignment"),
    "email": (lambda v: re.fullmatch(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+", v) is not None, "an email address"),
    "text": (lambda v: not any(ord(c) < 32 for c in v), "text without control characters"),
    "group": (lambda v: re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}", v) is not None,
              "a group name or id"),
    "regex": (lambda v: len(v) <= 512 and _compiles(v), "a Python regular expression of at most 512 characters"),
    "unit": (lambda v: v in ("s", "ms"), "s or ms"),
}


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _checked(value: str, check: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    ok, allowed = CHECKS[check]
    if value and not ok(value):  # empty means "not set" for optional keys; required ones are checked below
        raise ValueError(f"it must be {allowed}")
    return value


def _consistent(values: Mapping[str, Any]) -> None:
    """Checks across keys, and keys that may not be empty."""
    for name, f in _settable().items():
        if f.metadata["check"] in ("label", "subdomain", "promname", "duration", "identifier") and not values.get(
                name, f.default) and f.default != ():  # an empty list keeps its documented meaning
            raise ConfigError(f"{name} is empty; set it in irkit.toml or IRKIT_{name.upper()}")
    moderate = values.get("error_ratio_moderate", Config.error_ratio_moderate)
    high = values.get("error_ratio_high", Config.error_ratio_high)
    if moderate > high:
        raise ConfigError(f"error_ratio_moderate={moderate:g} is above error_ratio_high={high:g}; the SEV-3 "
                          "threshold must not exceed the SEV-2 one (the playbook: 0.05 and 0.1)")


def _read_secret_file(path: str, key: str) -> Secret:
    try:
        return Secret(Path(path).expanduser().read_text().strip())
    except OSError as exc:
        raise ConfigError(f"{key}={path!r} cannot be read ({exc.strerror}); fix the path or unset it") from exc


def _strip_password(dsn: str, origin: str, allow: bool) -> tuple[str, Secret | None]:
    """Split a password out of a libpq DSN so that the DSN can be shown."""
    import psycopg.conninfo
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"{origin}: pg_dsn is not a valid libpq DSN ({exc})") from exc
    password = info.pop("password", None)
    if password is None:
        return dsn, None
    if not allow:
        raise ConfigError(
            f"{origin}: pg_dsn contains a password; remove it and set IRKIT_PG_PASSWORD "
            "or pg_password_file instead, so it never lands in a file or a notebook"
        )
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()}), Secret(str(password))


def read_toml(path: Path, error: type[IrkitError], fix: str,
              max_bytes: int = limits.MAX_FILE_BYTES) -> dict[str, Any]:
    """A TOML file read with a bound; too large, not UTF-8, not TOML or unreadable is ``error`` naming ``fix``."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise error(f"{path}: larger than {max_bytes // 1024} KiB, which no such file is; {fix}")
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (not UTF-8); {fix}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc}); {fix}") from exc
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    data = read_toml(path, ConfigError, "check IRKIT_CONFIG or --config, and see irkit.example.toml")
    settable = _settable()
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: '{section}' must be a [section]; see irkit.example.toml")
        for name, value in values.items():
            if name in ("pg_password", "prom_token", "password", "token"):
                raise ConfigError(
                    f"{path}: [{section}] {name} is a secret; set IRKIT_{name.upper()} or the *_file key instead"
                )
            if name not in settable or settable[name].metadata["section"] != section:
                valid = sorted(n for n, f in settable.items() if f.metadata["section"] == section)
                hint = f"valid keys in [{section}]: {', '.join(valid)}" if valid else "unknown section"
                raise ConfigError(f"{path}: [{section}] {name} is not a key irkit knows; {hint}")
            flat[name] = value
    return flat


def load(path: str | os.PathLike[str] | None = None, *, base: Config | None = None,
         env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the configuration: arguments > ``IRKIT_*`` env > toml > defaults.

    ``path`` names the toml; without it ``IRKIT_CONFIG``, then ``./irkit.toml`` if it
    exists. ``base`` starts from an existing config instead of the toml and defaults.
    """
    env = os.environ if env is None else env
    settable = _settable()
    unknown = sorted(set(overrides) - set(settable))
    if unknown:
        raise ConfigError(f"unknown configuration key(s) {', '.join(unknown)}; valid: {', '.join(settable)}")

    values: dict[str, Any] = {}
    if base is not None:
        values = {name: getattr(base, name) for name in settable}
    else:
        toml_path = Path(path) if path is not None else Path(env.get("IRKIT_CONFIG", "irkit.toml"))
        if path is not None or "IRKIT_CONFIG" in env or toml_path.exists():
            for name, raw in _read_toml(toml_path).items():
                values[name] = _coerce(name, raw, str(toml_path))
        for name in settable:
            env_name = f"IRKIT_{name.upper()}"
            if env_name in env:
                values[name] = _coerce(name, env[env_name], env_name)
    for name, raw in overrides.items():
        values[name] = _coerce(name, raw, "argument")

    # The password: the env DSN may carry one (the environment is a fine place for
    # secrets); the toml and arguments may not, since those end up in files.
    pg_password: Secret | None = base.pg_password if base is not None else None
    if "pg_dsn" in values:
        from_env = "pg_dsn" not in overrides and env.get("IRKIT_PG_DSN") == values["pg_dsn"]
        values["pg_dsn"], embedded = _strip_password(values["pg_dsn"], "IRKIT_PG_DSN" if from_env else "pg_dsn",
                                                     allow=from_env)
        pg_password = embedded or pg_password
    if env.get("IRKIT_PG_PASSWORD"):
        pg_password = Secret(env["IRKIT_PG_PASSWORD"])
    elif values.get("pg_password_file"):
        pg_password = _read_secret_file(values["pg_password_file"], "pg_password_file")

    pg_action_password: Secret | None = base.pg_action_password if base is not None else None
    if values.get("pg_action_dsn"):
        from_env = "pg_action_dsn" not in overrides and env.get("IRKIT_PG_ACTION_DSN") == values["pg_action_dsn"]
        values["pg_action_dsn"], embedded = _strip_password(
            values["pg_action_dsn"], "IRKIT_PG_ACTION_DSN" if from_env else "pg_action_dsn", allow=from_env)
        pg_action_password = embedded or pg_action_password
    if env.get("IRKIT_PG_ACTION_PASSWORD"):
        pg_action_password = Secret(env["IRKIT_PG_ACTION_PASSWORD"])

    # Secrets that come from the environment, else from a file named in the configuration.
    secrets: dict[str, Secret | None] = {}
    for secret, env_name, file_key in (("prom_token", "IRKIT_PROM_TOKEN", "prom_token_file"),
                                       ("slack_webhook", "IRKIT_SLACK_WEBHOOK_URL", "slack_webhook_file"),
                                       ("statuspage_token", "IRKIT_STATUSPAGE_TOKEN", "statuspage_token_file"),
                                       ("smtp_password", "IRKIT_SMTP_PASSWORD", "smtp_password_file")):
        secrets[secret] = getattr(base, secret) if base is not None else None
        if env.get(env_name):
            secrets[secret] = Secret(env[env_name])
        elif values.get(file_key):
            secrets[secret] = _read_secret_file(values[file_key], file_key)

    _consistent(values)
    return Config(**values, pg_password=pg_password, pg_action_password=pg_action_password,
                  prom_token=secrets["prom_token"], slack_webhook=secrets["slack_webhook"],
                  statuspage_token=secrets["statuspage_token"], smtp_password=secrets["smtp_password"])


def redact(text: str, config: Config | None = None) -> str:
    """``text`` with every secret irkit knows of removed: the configured ones (IRKIT_PG_PASSWORD, the Slack
    webhook...) by name, then what :mod:`irkit.redaction` recognises and the team's ``redact_patterns``."""
    if config is not None:
        for f in fields(Config):
            secret = getattr(config, f.name) if "secret" in f.metadata else None
            if secret:
                text = text.replace(secret.reveal(), redaction.redacted(f.metadata["secret"]))
    return redaction.redact(text, _extra(config.redact_patterns if config is not None else ()))


def redact_frame(frame: Any, config: Config | None, columns: Any = None) -> Any:
    """A source's table with its text cells redacted like :func:`redact` (every text column by default)."""
    return redaction.redact_frame(frame, columns, lambda text: redact(text, config))


@functools.lru_cache(maxsize=8)
def _extra(patterns: tuple[str, ...]) -> tuple[redaction.Pattern, ...]:
    return redaction.compile_extra(patterns)


# The playbook's system and thresholds, as the projections of the configuration (the severity thresholds, the
# diagnosis's and the plan's targets, the charts' bands) take them when given no Config: the defaults live here only.
DEFAULTS = Config()
