"""The recovery verdict (playbook 4.1-4.3): every check measured and passed, or not. Pure.

A check that could not be measured never counts as passed: a failed check makes the
verdict NOT RECOVERED, an unmeasured one (with none failed) UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Verdict", "decide"]


@dataclass(frozen=True)
class Verdict:
    """``recovered``: True, False, or None (unknown); ``failed`` and ``unmeasured``: "check: detail"."""

    recovered: bool | None
    failed: tuple[str, ...] = field(default=())
    unmeasured: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"recovered": self.recovered, "failed": list(self.failed), "unmeasured": list(self.unmeasured)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        recovered = data.get("recovered")
        return cls(recovered if isinstance(recovered, bool) else None, tuple(data.get("failed") or ()),
                   tuple(data.get("unmeasured") or ()))


def decide(checks: Iterable[Mapping[str, Any]]) -> Verdict:
    """The verdict over check rows (``check, ok, detail``; ``ok`` None: not measured)."""
    rows = list(checks)
    failed = tuple(f"{r['check']}: {r['detail']}" for r in rows if r["ok"] is False)
    unmeasured = tuple(f"{r['check']}: {r['detail']}" for r in rows if r["ok"] is None)
    recovered = False if failed else (None if unmeasured or not rows else True)
    return Verdict(recovered=recovered, failed=failed, unmeasured=unmeasured)
