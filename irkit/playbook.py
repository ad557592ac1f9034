"""The playbook as tables, pure data on the ground floor: its phases (:data:`PHASES`) and the mitigation actions
of its section 3.1 (:data:`ACTIONS`).

The runner, the run directory, the post-mortem, the notebook generator and the docs read the phase table: each
phase's number, notebook, module (``irkit.phases.<module>``, one function per cell), title, the earlier phases
whose records it reads, and the ones that must have succeeded for it to run at all.

The configuration's ``allowed_actions``, the plan's actions, the scenario checks, the table in docs/actions.md and the
backend that carries each action out (``irkit.actions``, one per system) all read the action table: adding an
action is one row here and its methods in its system's backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ACTIONS", "NOTEBOOK_DIR", "NUMBERS", "PHASES", "SYSTEMS", "ActionSpec", "Phase", "phase"]

NOTEBOOK_DIR = Path(__file__).parent / "notebooks"


@dataclass(frozen=True)
class Phase:
    number: int
    notebook: str  # file stem under notebooks/, e.g. "01-detect-and-assess"
    module: str  # irkit.phases.<module>: one function per cell
    title: str  # the playbook's name for it
    reads: tuple[int, ...] = ()  # earlier phases whose records it reads when they exist
    requires: tuple[int, ...] = ()  # earlier phases that must have succeeded, else it is skipped

    @property
    def path(self) -> Path:
        return NOTEBOOK_DIR / f"{self.notebook}.ipynb"


PHASES: tuple[Phase, ...] = (
    Phase(1, "01-detect-and-assess", "assess", "Detection and initial assessment"),
    Phase(2, "02-investigate", "investigate", "Investigation and diagnosis", reads=(1,)),
    # The plan is made from phase 2's findings: without them there is nothing to plan from.
    Phase(3, "03-mitigate", "mitigate", "Mitigation", reads=(1, 2), requires=(2,)),
    Phase(4, "04-recover-and-validate", "validate", "Recovery and validation", reads=(1,)),
    Phase(5, "05-post-incident", "postmortem", "Post-incident", reads=(1, 2, 3, 4)),
)


def phase(number: int) -> Phase:
    """The phase numbered ``number`` (1 to 5)."""
    return PHASES[number - 1]


NUMBERS = tuple(p.number for p in PHASES)


@dataclass(frozen=True)
class ActionSpec:
    """One mitigation action: its ``name`` (a kubectl-like verb), the ``system`` it changes (its backend), how
    it is carried out (``through``) and what undoes it (``undo``; ``undoable`` False: nothing can be restored)."""

    name: str
    system: str
    through: str
    undo: str
    undoable: bool


SYSTEMS = ("kubernetes", "postgresql", "http", "redis")
ACTIONS: dict[str, ActionSpec] = {a.name: a for a in (
    ActionSpec("terminate-backend", "postgresql", "`pg_terminate_backend` on `pg_action_dsn`", "none possible", False),
    ActionSpec("cancel-query", "postgresql", "`pg_cancel_backend` on `pg_action_dsn`", "none possible", False),
    ActionSpec("terminate-idle", "postgresql", "`pg_terminate_backend` of each idle session of the application "
               "(also those idle in a transaction, when the finding counts them: rolled back)",
               "none possible", False),
    ActionSpec("rollout-undo", "kubernetes", "JSON patch of the Deployment with the previous ReplicaSet's template, "
               "as `kubectl rollout undo`", "roll back to the revision it replaced", True),
    ActionSpec("raise-memory-limit", "kubernetes", "strategic merge patch of the container's limit (from its current "
               "limit × `memory_limit_factor`)", "the old limit", True),
    ActionSpec("delete-pod", "kubernetes", "DELETE (its controller makes it again)", "none needed", False),
    ActionSpec("rollout-restart", "kubernetes", "the `kubectl.kubernetes.io/restartedAt` annotation", "none needed",
               False),
    ActionSpec("set-env", "kubernetes", "strategic merge patch of every container's `env`",
               "the old value, or the variable removed", True),
    ActionSpec("enable-circuit-breaker", "http", "HTTP POST to `circuit_breaker_url`",
               "POST to `circuit_breaker_off_url`", True),
    ActionSpec("scale", "kubernetes", "the `scale` subresource", "the old replica count", True),
    ActionSpec("suspend-cronjob", "kubernetes", "merge patch of the CronJob's `spec.suspend` (a scheduled actor that "
               "re-applies a change)", "resume it (`suspend` as it was)", True),
    ActionSpec("flushdb", "redis", "Redis `FLUSHDB` on `redis_url`'s database", "`RESTORE` of the snapshot", True),
)}
