"""The one exception tree irkit raises.

Every failure a responder can meet is an :class:`IrkitError`, and its message says
what to check next. Third-party exceptions (``psycopg.Error``, ``ApiException``,
``requests`` errors) are translated where irkit talks to a source, with
``raise ... from exc`` so the original stays in the traceback::

    IrkitError
    ├── ConfigError                  bad or missing configuration; names the key and the fix
    │   └── ParameterError           a notebook parameter is unknown, mistyped or a secret
    ├── SourceError                  a data source failed; .source .what .elapsed
    │   ├── PostgresError
    │   │   ├── PostgresTimeout      (also a SourceTimeout)
    │   │   └── PostgresUnavailable  (also a SourceUnavailable)
    │   ├── PrometheusError
    │   │   ├── PrometheusTimeout
    │   │   ├── PrometheusUnavailable
    │   │   └── PrometheusNoData     a configured metric matches no series: a finding, not silence
    │   ├── KubernetesError
    │   │   ├── KubernetesTimeout
    │   │   └── KubernetesUnavailable
    │   ├── SourceTimeout            no answer within the bound, whichever source
    │   └── SourceUnavailable        refused, unreachable or not configured, whichever source
    ├── ActionError                  a mitigation could not be prepared, applied, verified or undone
    │   ├── GuardrailError           a guardrail refused it; names the guardrail and the key that changes it
    │   ├── ConfirmationError        a confirmation is malformed, for another incident or another step
    │   └── StaleTargetError         the target changed since it was planned (a pid reused, a lock released)
    ├── RunError                     `irkit run` could not execute a phase or write evidence
    └── DrillError                   `irkit drill` could not start its environment or check its result
        └── ScenarioError            a drill scenario is unknown or its file is malformed; names the key

Catch ``SourceTimeout`` to handle "the system hung" for every source at once, or
``PostgresError`` for anything PostgreSQL did.
"""

from __future__ import annotations

__all__ = [
    "ActionError",
    "ConfigError",
    "ConfirmationError",
    "DrillError",
    "GuardrailError",
    "IrkitError",
    "KubernetesError",
    "KubernetesTimeout",
    "KubernetesUnavailable",
    "ParameterError",
    "PostgresError",
    "PostgresTimeout",
    "PostgresUnavailable",
    "PrometheusError",
    "PrometheusNoData",
    "PrometheusTimeout",
    "PrometheusUnavailable",
    "RunError",
    "ScenarioError",
    "SourceError",
    "SourceTimeout",
    "SourceUnavailable",
    "StaleTargetError",
]

class IrkitError(Exception):
    """The root of every error irkit raises."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: in a notebook an irkit error is one line that says what
        # to fix, as on the command line.
        return [f"irkit: {' '.join(str(self).split())}"]


class ConfigError(IrkitError):
    """The configuration is missing, malformed, or puts a secret where it would leak."""


class ParameterError(ConfigError):
    """A notebook parameter is unknown, has the wrong type, or carries a secret."""


class ActionError(IrkitError):
    """A mitigation action could not be prepared, applied, verified or undone."""


class GuardrailError(ActionError):
    """A guardrail from ``[mitigation]`` refuses the action; the message names it and how to change it."""


class ConfirmationError(ActionError):
    """A confirmation is malformed, names another incident, or names a step the plan does not have."""


class StaleTargetError(ActionError):
    """The target is no longer what was planned: a pid now belongs to another session, a root holds no lock."""


class RunError(IrkitError):
    """A phase could not be executed or its evidence could not be written."""


class DrillError(IrkitError):
    """The drill environment could not start, or its result differs from the ground truth."""


class SourceError(IrkitError):
    """A data source (PostgreSQL, Prometheus, Kubernetes, an HTTP endpoint) failed.

    ``source`` names the system and where it is (``"PostgreSQL at 127.0.0.1:5432"``),
    ``what`` the request that failed, ``elapsed`` the seconds spent before failing,
    and ``hint`` what to check next.
    """

    def __init__(self, source: str, what: str, elapsed: float, hint: str, *, down: bool | None = None) -> None:
        self.source = source
        self.what = what
        self.elapsed = elapsed
        self.hint = hint
        # Whether the source as a whole is not answering, rather than this one request failing
        # (a statement_timeout is not "down"): callers stop asking a source that is down.
        self.down = isinstance(self, SourceTimeout | SourceUnavailable) if down is None else down
        super().__init__(f"{source}: {what} failed after {elapsed:.1f} s: {hint}")

    def not_retried(self) -> SourceError:
        """The same error for a later request not sent, because this source is down."""
        again = type(self)(self.source, self.what, 0.0, self.hint, down=True)
        again.args = (f"{self.source}: not asked again yet, it did not answer earlier: {self.what} failed after "
                      f"{self.elapsed:.1f} s: {self.hint}",)
        return again


class SourceTimeout(SourceError):
    """The source did not answer within its bound; it may be hung or overloaded."""


class SourceUnavailable(SourceError):
    """The source refused the connection, could not be reached, or is not configured."""


class PostgresError(SourceError):
    """PostgreSQL refused or failed a query."""


class PostgresTimeout(PostgresError, SourceTimeout):
    """A query hit statement_timeout or lock_timeout, or the server stopped answering."""


class PostgresUnavailable(PostgresError, SourceUnavailable):
    """PostgreSQL could not be reached or refused the login."""


class PrometheusError(SourceError):
    """Prometheus rejected a query or answered something that is not its API."""


class PrometheusTimeout(PrometheusError, SourceTimeout):
    """Prometheus did not answer within the request timeout."""


class PrometheusUnavailable(PrometheusError, SourceUnavailable):
    """Prometheus could not be reached."""


class PrometheusNoData(PrometheusError):
    """A query answered, but a configured metric matches no series (a misspelt metric or label name, or a
    service that stopped reporting): what it was meant to measure was not measured."""

    def __init__(self, source: str, what: str, elapsed: float, hint: str) -> None:
        super().__init__(source, what, elapsed, hint, down=False)


class KubernetesError(SourceError):
    """The Kubernetes API refused or failed a request."""


class KubernetesTimeout(KubernetesError, SourceTimeout):
    """The Kubernetes API did not answer within the request timeout."""


class KubernetesUnavailable(KubernetesError, SourceUnavailable):
    """The Kubernetes API could not be reached, or no kubeconfig was found."""


class ScenarioError(DrillError):
    """A drill scenario is unknown, or its file is malformed; the message names the file and the key."""
