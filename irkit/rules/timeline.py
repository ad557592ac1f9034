"""The incident timeline and its measures (playbook: post-incident data collection). Pure.

An :class:`Event` is one thing that happened to the incident, with its time, the source that
saw it and a link to the evidence: the onset in Prometheus, an alert, a deploy, a Kubernetes
warning, a finding, a step planned, confirmed, applied or undone, a message, the recovery
verdict. irkit's own phase starts and finishes are not events. :func:`merge` orders them and
drops repeats (an incident spans several runs that see the same deploy); :func:`measures`
derives the response times:

- **MTTD**, time to detect: the onset to the first alert, else to the first run (a person noticed);
- **MTTA**, time to acknowledge: detection to the first run (someone is on it);
- **MTTM**, time to mitigate: the onset to the first applied step that showed its effect;
- **MTTR**, time to resolve: the onset to the signals back under their thresholds, or to the
  first recovered verdict, whichever is first known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["KINDS", "Event", "Measures", "measures", "merge"]

# The kinds of event, in the order a post-mortem reads them when two share a time.
KINDS = ("tampered", "onset", "alert", "deploy", "k8s-event", "run", "finding", "planned", "confirmed", "applying",
         "applied", "failed", "undone", "message", "peak", "resolved", "recovered", "not-recovered")


@dataclass(frozen=True)
class Event:
    """One entry: ``time`` (UTC), ``source`` (prometheus, alertmanager, kubernetes, postgresql, irkit,
    responder, comms), ``kind`` (:data:`KINDS`), ``text``, and ``link``: the evidence, a path relative to
    the incident's directory (``<run id>/phase-2.json``)."""

    time: datetime
    source: str
    kind: str
    text: str
    link: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": self.time.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(datetime.fromisoformat(str(data["time"])), str(data["source"]), str(data["kind"]),
                   str(data["text"]), str(data.get("link") or ""))


def merge(events: Iterable[Event]) -> list[Event]:
    """In time order (ties by kind), each event once (a finding once per kind and subject): the first run
    that saw it keeps it."""
    seen: set[tuple[str, str]] = set()
    out = []
    order = {kind: i for i, kind in enumerate(KINDS)}
    for event in sorted(events, key=lambda e: (e.time, order.get(e.kind, len(KINDS)))):
        # A finding is the same finding in a later run even when its numbers moved ("12.0%" then "12.1%").
        key = (event.kind, event.text.split(":", 1)[0] if event.kind == "finding" else event.text)
        if key in seen:
            continue
        seen.add(key)
        out.append(event)
    return out


@dataclass(frozen=True)
class Measures:
    """The moments and the response times between them; None where the timeline does not say."""

    onset: datetime | None
    detected: datetime | None
    acknowledged: datetime | None
    mitigated: datetime | None
    resolved: datetime | None
    respond_by: datetime | None

    @staticmethod
    def _span(start: datetime | None, end: datetime | None) -> timedelta | None:
        return end - start if start is not None and end is not None and end >= start else None

    @property
    def mttd(self) -> timedelta | None:
        return self._span(self.onset, self.detected)

    @property
    def mtta(self) -> timedelta | None:
        return self._span(self.detected, self.acknowledged)

    @property
    def mttm(self) -> timedelta | None:
        return self._span(self.onset, self.mitigated)

    @property
    def mttr(self) -> timedelta | None:
        return self._span(self.onset, self.resolved)

    @property
    def deadline_met(self) -> bool | None:
        """Acknowledged within the severity's response time (None: not known)."""
        if self.acknowledged is None or self.respond_by is None:
            return None
        return self.acknowledged <= self.respond_by

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        def seconds(span: timedelta | None) -> float | None:
            return round(span.total_seconds(), 1) if span is not None else None

        return {"onset": iso(self.onset), "detected": iso(self.detected), "acknowledged": iso(self.acknowledged),
                "mitigated": iso(self.mitigated), "resolved": iso(self.resolved), "respond_by": iso(self.respond_by),
                "mttd_seconds": seconds(self.mttd), "mtta_seconds": seconds(self.mtta),
                "mttm_seconds": seconds(self.mttm), "mttr_seconds": seconds(self.mttr),
                "deadline_met": self.deadline_met}


def _first(events: list[Event], *kinds: str) -> datetime | None:
    return next((e.time for e in events if e.kind in kinds), None)


def measures(events: Iterable[Event], respond_by: datetime | None = None) -> Measures:
    """The moments of :class:`Measures` from a merged timeline."""
    ordered = merge(events)
    onset = _first(ordered, "onset")
    alert = _first(ordered, "alert")
    first_run = _first(ordered, "run")
    detected = alert or first_run
    return Measures(onset=onset, detected=detected, acknowledged=first_run if first_run else None,
                    mitigated=_first(ordered, "applied"), resolved=_first(ordered, "resolved", "recovered"),
                    respond_by=respond_by)
