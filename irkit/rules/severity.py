"""Severity classification: the playbook's four levels and its rules (Incident Classification, 1.2).

Pure: takes observed signals, returns an assessment. No clients, no I/O.

Rules, highest level wins, and every rule that fired is a reason:

- SEV1: complete outage, database corruption, security breach, payment failure;
- SEV2: error ratio above 10 %, p95 latency above 5 s, authentication failures,
  blockchain connectivity issues;
- SEV3: error ratio from 5 % to 10 % (both ends included, "5-10%" in the playbook),
  performance degradation, non-critical feature failure, monitoring alerts;
- SEV4: anything else.

The thresholds come from the config (``error_ratio_high``, ``error_ratio_moderate``,
``latency_p95_slow_seconds``).

Phase 2 revisits the assessment with what the investigation found (:func:`revise`): the playbook's SEV-2 for
authentication failures and blockchain connectivity issues is decided from their evidence (the database or the
cache refusing the application's credentials, the blockchain provider failing), and a cause found while every
signal is under its threshold is a minor incident (SEV-4, real), never "not an incident".

Never fail open: "SEV-4, not an incident" needs every deciding signal measured. When no
rule fired and a signal could not be measured (its source down, its metric matching no
series, no health endpoint configured), the assessment is *unknown* and names what was
not measured and why. When a rule fired, its level stands as a floor, and what was not
measured is listed beside it (a SEV-2 may be a SEV-1 nobody could see).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from irkit.config import DEFAULTS, Config

__all__ = ["LEVELS", "UNKNOWN", "Assessment", "Level", "Signals", "Thresholds", "classify", "revise"]


@dataclass(frozen=True)
class Level:
    number: int
    name: str
    definition: str
    examples: tuple[str, ...]
    response_time: str
    respond_within: timedelta | None  # None: next business day
    escalation: str


LEVELS: dict[int, Level] = {
    1: Level(1, "SEV-1", "Complete service outage or security breach",
             ("Website completely down", "Database corruption", "Security breach with data exposure",
              "Payment processing failure"),
             "Immediate (< 5 minutes)", timedelta(minutes=5), "Automatic to on-call engineer and management"),
    2: Level(2, "SEV-2", "Major functionality impacted, significant user impact",
             ("High error rates (>10%)", "Slow response times (>5s)", "Authentication failures",
              "Blockchain connectivity issues"),
             "15 minutes", timedelta(minutes=15), "On-call engineer, notify team lead"),
    3: Level(3, "SEV-3", "Partial functionality impacted, moderate user impact",
             ("Moderate error rates (5-10%)", "Performance degradation", "Non-critical feature failures",
              "Monitoring alerts"),
             "1 hour", timedelta(hours=1), "On-call engineer"),
    4: Level(4, "SEV-4", "Minor issues, minimal user impact",
             ("Cosmetic issues", "Non-critical warnings", "Documentation updates needed"),
             "Next business day", None, "Standard ticket queue"),
}


@dataclass(frozen=True)
class Thresholds:
    error_ratio_high: float = DEFAULTS.error_ratio_high
    error_ratio_moderate: float = DEFAULTS.error_ratio_moderate
    latency_p95_slow_seconds: float = DEFAULTS.latency_p95_slow_seconds

    @classmethod
    def from_config(cls, cfg: Config) -> Thresholds:
        return cls(cfg.error_ratio_high, cfg.error_ratio_moderate, cfg.latency_p95_slow_seconds)


@dataclass(frozen=True)
class Signals:
    """What was observed. ``None`` means not measured, which is not the same as fine."""

    outage: bool = False
    database_corruption: bool = False
    security_breach: bool = False
    payment_failure: bool = False
    error_ratio: float | None = None
    latency_p95_seconds: float | None = None
    authentication_failures: bool = False
    blockchain_connectivity_lost: bool = False
    performance_degraded: bool = False
    feature_failures: tuple[str, ...] = ()
    alerts_firing: tuple[str, ...] = ()
    # Critical journeys that fail, with the severity their failure is: (name, level).
    journeys_failing: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = field(default=())
    # Deciding signals that could not be measured, each "what: why" ("error ratio: ... has no series").
    unmeasured: tuple[str, ...] = ()


# An unknown severity is answered like a SEV-2 until it is measured: someone looks within 15 minutes.
UNKNOWN = Level(0, "unknown", "Severity could not be measured", (), "15 minutes (until measured)",
                timedelta(minutes=15), "On-call engineer: restore the missing signals, then reassess")


@dataclass(frozen=True)
class Assessment:
    """The classification. ``level`` is None when it is unknown (see the module's docstring)."""

    level: int | None
    reasons: tuple[str, ...]
    detected_at: datetime
    respond_by: datetime
    escalation: str
    unmeasured: tuple[str, ...] = ()
    cause: str = ""  # a cause the investigation found: a SEV-4 beside it is a minor incident, not none

    @property
    def _level(self) -> Level:
        return UNKNOWN if self.level is None else LEVELS[self.level]

    @property
    def name(self) -> str:
        return self._level.name

    @property
    def known(self) -> bool:
        return self.level is not None

    @property
    def real(self) -> bool | None:
        """Whether this is an incident at all: some rule above SEV4 fired, or a cause was found. None: unknown."""
        return None if self.level is None else self.level < 4 or bool(self.cause)

    @property
    def response_time(self) -> str:
        return self._level.response_time

    def as_dict(self) -> dict[str, object]:
        return {"level": self.level, "name": self.name, "real": self.real, "known": self.known,
                "reasons": list(self.reasons), "unmeasured": list(self.unmeasured),
                "detected_at": self.detected_at.isoformat(), "respond_by": self.respond_by.isoformat(),
                "response_time": self.response_time, "escalation": self.escalation, "cause": self.cause}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        level = data.get("level")
        return cls(level=level if isinstance(level, int) and level in LEVELS else None,
                   reasons=tuple(data.get("reasons") or ()), detected_at=datetime.fromisoformat(data["detected_at"]),
                   respond_by=datetime.fromisoformat(data["respond_by"]), escalation=str(data.get("escalation", "")),
                   unmeasured=tuple(data.get("unmeasured") or ()), cause=str(data.get("cause") or ""))


def _next_business_day(moment: datetime) -> datetime:
    day = moment.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(9, 0), tzinfo=moment.tzinfo or UTC)


def _respond_by(level: Level, detected_at: datetime) -> datetime:
    """The level's deadline from the detection: its response time, or the next business day (SEV-4)."""
    within = level.respond_within
    return detected_at + within if within is not None else _next_business_day(detected_at)


def _percent(share: float) -> str:
    """A configured threshold as people write it: 0.1 is "10%", 0.025 is "2.5%"."""
    return f"{share * 100:g}%"


def classify(signals: Signals, thresholds: Thresholds | None = None,
             detected_at: datetime | None = None) -> Assessment:
    """Apply the playbook's rules; the highest level wins and every rule that fired is a reason."""
    t = thresholds or Thresholds()
    detected_at = detected_at or datetime.now(UTC)
    fired: list[tuple[int, str]] = []
    if signals.outage:
        fired.append((1, "complete service outage: health endpoints down or no ready pods"))
    if signals.database_corruption:
        fired.append((1, "database corruption"))
    if signals.security_breach:
        fired.append((1, "security breach"))
    if signals.payment_failure:
        fired.append((1, "payment processing failure"))
    ratio = signals.error_ratio
    if ratio is not None:
        if ratio > t.error_ratio_high:
            fired.append((2, f"error ratio {ratio:.1%} is above {_percent(t.error_ratio_high)}"))
        elif ratio >= t.error_ratio_moderate:
            fired.append((3, f"error ratio {ratio:.1%} is between {_percent(t.error_ratio_moderate)} "
                             f"and {_percent(t.error_ratio_high)}"))
    p95 = signals.latency_p95_seconds
    if p95 is not None and p95 > t.latency_p95_slow_seconds:
        fired.append((2, f"p95 latency {p95:.2f} s is above {t.latency_p95_slow_seconds:g} s"))
    if signals.authentication_failures:
        fired.append((2, "authentication failures"))
    if signals.blockchain_connectivity_lost:
        fired.append((2, "blockchain connectivity issues"))
    if signals.performance_degraded:
        fired.append((3, "performance degradation"))
    for feature in signals.feature_failures:
        fired.append((3, f"non-critical feature failing: {feature}"))
    for alert in signals.alerts_firing:
        fired.append((3, f"monitoring alert firing: {alert}"))
    for journey, journey_level in signals.journeys_failing:
        fired.append((journey_level, f"critical journey '{journey}' fails (SEV-{journey_level} whatever the error "
                                     "ratio)"))

    level: int | None = min((lvl for lvl, _ in fired), default=4)
    reasons = tuple(reason for _, reason in sorted(fired, key=lambda item: item[0]))
    if not reasons and signals.unmeasured:
        level = None  # nothing fired, but not everything was looked at: never "not an incident"
        reasons = ("no rule fired on what was measured, but the signals below were not measured",)
    elif not reasons:
        reasons = ("no rule for SEV-1 to SEV-3 fired: every deciding signal was measured and is under its "
                   "threshold",)
    spec = UNKNOWN if level is None else LEVELS[level]
    respond_by = _respond_by(spec, detected_at)
    return Assessment(level=level, reasons=reasons, detected_at=detected_at, respond_by=respond_by,
                      escalation=spec.escalation, unmeasured=signals.unmeasured)


def revise(before: Assessment, *, authentication_failures: str = "", blockchain_connectivity_lost: str = "",
           cause: str = "") -> Assessment:
    """``before`` (phase 1's assessment) revisited with what the investigation found; each argument is the
    finding that shows it, in words ("" when none does). The higher level wins as in :func:`classify`; what was
    not measured stays listed (an unknown severity with a SEV-2 finding is at least SEV-2). A cause found while
    nothing else fired makes a SEV-4 a minor incident (real), with the cause as its reason."""
    fired = [(2, f"authentication failures: {authentication_failures}")] if authentication_failures else []
    if blockchain_connectivity_lost:
        fired.append((2, f"blockchain connectivity issues: {blockchain_connectivity_lost}"))
    level = min([lvl for lvl, _ in fired] + ([before.level] if before.level is not None else []), default=None)
    if not fired and not (cause and level == 4 and not before.cause):
        return before
    reasons = tuple(reason for _, reason in fired if reason not in before.reasons) + tuple(
        r for r in before.reasons if not r.startswith(("no rule for SEV-1", "no rule fired on what")))
    if level == 4 and cause:
        reasons = (f"a cause was found with minimal user impact (every deciding signal is under its threshold): "
                   f"{cause}",)
    spec = LEVELS[level] if level is not None else UNKNOWN
    respond_by = _respond_by(spec, before.detected_at)
    return Assessment(level=level, reasons=reasons or before.reasons, detected_at=before.detected_at,
                      respond_by=respond_by, escalation=spec.escalation, unmeasured=before.unmeasured,
                      cause=cause if level == 4 else before.cause)
