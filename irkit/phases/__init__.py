"""The playbook's phases, one module per notebook (``assess``, ``investigate``, ``mitigate``, ``validate``,
``postmortem``, and ``incident``, what each notebook opens). The table of them is :mod:`irkit.playbook`."""

from __future__ import annotations

from irkit.playbook import NOTEBOOK_DIR, PHASES, Phase, phase

__all__ = ["NOTEBOOK_DIR", "PHASES", "Phase", "phase"]
