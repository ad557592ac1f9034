"""``irkit run``: the phase notebooks executed with papermill, their evidence kept and sealed.

    run.py      the orchestration: a run directory, the phases in order, sealing (summary, report, manifest)
    inputs.py   what comes from outside, checked before anything runs: phases, parameters, context
    kernels.py  the kernels: started one phase ahead, private sockets, never outliving the run
"""

from __future__ import annotations

from irkit.runner.inputs import (
           CONTEXT_KEYS,
           check_incident,
           check_parameters,
           declared_parameters,
           parse_context,
           parse_phases,
)
from irkit.runner.run import STOP_REQUESTED, RunResult, run, seal

__all__ = ["CONTEXT_KEYS", "STOP_REQUESTED", "RunResult", "check_incident", "check_parameters", "declared_parameters", "parse_context", "parse_phases",
           "run", "seal"]
