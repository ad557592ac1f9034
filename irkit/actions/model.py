"""What an action is on paper: a prepared :class:`Step`, a :class:`Confirmation`, an :class:`Outcome`. Pure.

A step is a mitigation from the plan made concrete: the state read when it was prepared
(``before``), the state it leaves (``after``), the guardrails it passed or the one that
refused it, the API server's answer to a server-side dry run, and its undo. Its ``id``
is the action and a digest of what it changes, so a confirmation names exactly the
change a person reviewed: if the situation moved (another pid, another revision), the id
moves too and the old confirmation no longer matches.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from irkit.errors import ConfirmationError

if TYPE_CHECKING:
    from irkit.actions.systems import Systems

__all__ = ["Backend", "Confirmation", "Outcome", "Step", "step_id"]



def step_id(incident: str, action: str, target: str, params: Mapping[str, Any]) -> str:
    """``action-xxxxxx``: the action and a digest of the incident, its target and its parameters."""
    digest = hashlib.sha256(json.dumps([incident, action, target, dict(params)], sort_keys=True,
                                       default=str).encode()).hexdigest()
    return f"{action}-{digest[:6]}"


@dataclass(frozen=True)
class Step:
    """A mitigation ready to apply: see the module docstring. ``refused`` names the guardrail that
    stops it (and how to change it); ``undo`` says what undoes it, ``undo_command`` the line for a person."""

    id: str
    action: str
    target: str
    system: str
    why: str
    command: str
    params: Mapping[str, Any]
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    guardrails: tuple[str, ...] = ()
    refused: str = ""
    dry_run: str = ""
    undo: str = ""
    undo_command: str = ""

    def diff(self) -> list[str]:
        """``before`` against ``after`` as unified-diff lines (JSON, keys sorted)."""
        old = json.dumps(dict(self.before), indent=1, sort_keys=True, default=str).splitlines()
        new = json.dumps(dict(self.after), indent=1, sort_keys=True, default=str).splitlines()
        return [line for line in difflib.unified_diff(old, new, "before", "after", lineterm="", n=1)][2:]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(params=dict(self.params), before=dict(self.before), after=dict(self.after),
                    guardrails=list(self.guardrails))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        text = {k: str(data.get(k) or "") for k in ("id", "action", "target", "system", "why", "command", "refused",
                                                     "dry_run", "undo", "undo_command")}
        return cls(**text, params=dict(data.get("params") or {}), before=dict(data.get("before") or {}),
                   after=dict(data.get("after") or {}), guardrails=tuple(data.get("guardrails") or ()))


_CONFIRM = re.compile(r"^(?P<incident>[A-Za-z0-9][A-Za-z0-9._-]{0,63}):(?P<ids>[a-z0-9-]+(?:,[a-z0-9-]+)*)$")


@dataclass(frozen=True)
class Confirmation:
    """A person's yes to some steps of one incident's plan: who, when, and how (a button or a parameter)."""

    incident: str
    ids: tuple[str, ...]
    by: str
    at: datetime
    via: str

    @classmethod
    def parse(cls, text: str, by: str, via: str = "parameter") -> Confirmation:
        """``INCIDENT:step-id,step-id`` (the ids phase 3 shows)."""
        match = _CONFIRM.match(text.strip())
        if not match:
            raise ConfirmationError("confirm must be INCIDENT:STEP-ID[,STEP-ID...], e.g. INC-42:rollout-undo-3f9a2c "
                                    "(the ids are in phase 3's plan)")
        return cls(match["incident"], tuple(match["ids"].split(",")), by, datetime.now(UTC), via)

    def check(self, incident: str, plan_ids: list[str]) -> None:
        """Refuse a confirmation of another incident, or of a step this plan does not have."""
        if self.incident != incident:
            raise ConfirmationError(f"the confirmation is for incident {self.incident}, this run is {incident}: "
                                    "confirm the steps of this incident's plan")
        unknown = [i for i in self.ids if i not in plan_ids]
        if unknown:
            raise ConfirmationError(f"the confirmation names {', '.join(unknown)}, which this plan does not have "
                                    f"(its steps: {', '.join(plan_ids) or 'none'}); the situation may have changed "
                                    "since it was reviewed: review the new plan and confirm its ids")

    def as_dict(self) -> dict[str, Any]:
        return {"incident": self.incident, "ids": list(self.ids), "by": self.by, "at": self.at.isoformat(),
                "via": self.via}


@dataclass(frozen=True)
class Outcome:
    """What became of a step: ``status`` is ``dry-run`` (nothing changed), ``refused``, ``applied`` (and its
    effect seen), ``failed`` (an error, or no effect within the bound), ``undone`` or ``undo-failed``."""

    id: str
    action: str
    status: str
    detail: str
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    confirmation: Mapping[str, Any] = field(default_factory=dict)
    started_at: str = ""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.status in ("applied", "failed", "undone", "undo-failed") and bool(self.confirmation)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "before": dict(self.before), "after": dict(self.after),
                "confirmation": dict(self.confirmation)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(str(data["id"]), str(data.get("action") or ""), str(data["status"]), str(data.get("detail") or ""),
                   dict(data.get("before") or {}), dict(data.get("after") or {}),
                   dict(data.get("confirmation") or {}), str(data.get("started_at") or ""),
                   float(data.get("seconds") or 0.0))


class Backend(Protocol):
    """How one system's actions are carried out (``irkit.actions.BACKENDS``, by :data:`irkit.playbook.SYSTEMS`).

    ``prepare`` reads the target and makes the step concrete (before, after, the parameters what it read, the
    undo; a server-side dry run where the system has one); ``state`` reads it again for the record; ``apply``
    makes the change and says what the system answered; ``verify`` tells whether the change has its effect (it
    is asked again until it does or ``action_timeout`` passes); ``undo`` and ``verify_undo`` likewise for the
    step's undo (``undo`` raises ActionError when there is nothing to restore). Each raises irkit errors only.
    """

    def prepare(self, systems: Systems, step: Step, dry_run: bool) -> Step: ...

    def state(self, systems: Systems, step: Step) -> dict[str, Any]: ...

    def apply(self, systems: Systems, step: Step) -> str: ...

    def verify(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]: ...

    def undo(self, systems: Systems, step: Step) -> str: ...

    def verify_undo(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]: ...
