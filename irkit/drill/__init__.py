"""``irkit drill``: a self-contained incident to practise on, with its ground truth.

A scenario (a TOML file, see ``irkit/drill/scenarios/``) describes one situation: the
traffic history Prometheus holds, the cluster the Kubernetes API shows, the
database sessions that hold or wait for locks, whether the marketplace API is up,
and the ground truth: the severity, the root cause the findings must name first,
the mitigation the plan must recommend first, and whether it is a real incident.

:class:`DrillEnvironment` starts the drill's system on 127.0.0.1 and free ports
(PostgreSQL, Redis when the scenario wants it, the marketplace HTTP service,
Prometheus backfilled up to now and then scraping the service live, the
Kubernetes API emulator), writes a kubeconfig and an ``irkit.toml`` pointing at
them, and stops all of it on exit, Ctrl-C included. :func:`run_drill` runs the
five phases in it with ``irkit run``; :func:`check` compares ``summary.json`` with
the ground truth.
"""

from __future__ import annotations

from irkit.drill.accuracy import ACCURACY_COLUMNS, accuracy_row, accuracy_table, run_all
from irkit.drill.environment import DrillEnvironment
from irkit.drill.run import DrillResult, run_drill
from irkit.drill.scenario import KEYS, SCENARIO_DIR, Scenario, Session, Truth, load_scenario, scenarios
from irkit.drill.truth import Precision, check, finding_precision, plan_precision

__all__ = ["ACCURACY_COLUMNS", "KEYS", "SCENARIO_DIR", "DrillEnvironment", "DrillResult", "Precision", "Scenario",
           "Session", "Truth", "accuracy_row", "accuracy_table", "check", "finding_precision", "load_scenario",
           "plan_precision", "run_all", "run_drill", "scenarios"]
