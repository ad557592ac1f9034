"""Bounds on every number and size that comes from outside: notebook parameters, phases, files.

A parameter like ``window_minutes=99999999999`` or ``--phases 1-99999999999`` must be
refused with one line, not allocate until the kernel's OOM killer steps in. The runner
checks parameters against this table before anything runs, and the phase functions check
again, since in JupyterLab a person edits the parameters cell directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from irkit.errors import ParameterError

__all__ = ["MAX_FILE_BYTES", "MAX_PARAMETERS", "MAX_PARAMETER_TEXT", "PARAMETERS", "Bound", "bounded"]

MAX_PARAMETERS = 32  # -p NAME VALUE pairs in one run
MAX_PARAMETER_TEXT = 1024  # characters in one parameter's name or value
MAX_FILE_BYTES = 1 << 20  # irkit.toml and a scenario file


@dataclass(frozen=True)
class Bound:
    low: float
    high: float
    unit: str

    def __str__(self) -> str:
        return f"{self.low:g} to {self.high:g} {self.unit}"


# The notebook parameters that are numbers, with what makes sense during an incident.
PARAMETERS: dict[str, Bound] = {
    "window_minutes": Bound(1, 7 * 24 * 60, "minutes"),  # a week of history at most
    "log_tail": Bound(1, 10_000, "lines"),
    "older_than_seconds": Bound(0, 7 * 24 * 3600, "seconds"),
    "settle_seconds": Bound(0, 3600, "seconds"),  # phase 4 waits at most an hour for the signals to settle
}


def bounded(name: str, value: float) -> float:
    """``value`` if it lies within the bound of parameter ``name``, else a ParameterError naming the bound."""
    bound = PARAMETERS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not bound.low <= value <= bound.high:
        raise ParameterError(f"parameter {name} must be a number from {bound}; edit the parameters cell "
                             f"or pass -p {name} VALUE")
    return value
