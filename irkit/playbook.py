"""The playbook's phases, one module per notebook, and :data:`PHASES`, the one table of them.

The runner, the post-mortem, the notebook generator and the docs all read the table:
each phase's number, notebook, module, title, the earlier phases whose records it reads,
and the ones that must have succeeded for it to run at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["NOTEBOOK_DIR", "PHASES", "Phase", "phase"]

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"


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
