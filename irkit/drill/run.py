"""A drill end to end: the scenario's system up, the phases run in it with ``irkit run``, the result checked
against the ground truth and written into the run as ``drill.json``, everything stopped."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from irkit import evidence, runner
from irkit.drill.environment import DrillEnvironment
from irkit.drill.scenario import Scenario, Truth
from irkit.drill.truth import check
from irkit.evidence.records import STEPS, RunRecords
from irkit.evidence.rundir import RunDir, reopened
from irkit.evidence.summary import Summary

__all__ = ["DrillResult", "run_drill"]


@dataclass(frozen=True)
class DrillResult:
    scenario: Scenario
    run_dir: Path
    summary: Summary
    differences: list[str]
    timings: dict[str, float]
    pids: Mapping[str, int] = field(default_factory=dict)  # session name -> pid, as the truth names them
    truth: Truth | None = None  # what the run was checked against (--execute-mitigations expects recovery)
    location: str = ""  # s3://... when the run was kept in object storage

    @property
    def ok(self) -> bool:
        return not self.differences


def run_drill(scenario: Scenario, *, outputs: str | Path = "outputs", incident: str = "",
              keep_running: Callable[[DrillEnvironment, runner.RunResult], None] | None = None,
              progress: Callable[[str], None] | None = None, phases: list[int] | None = None,
              execute_mitigations: bool = False, settle_seconds: int = 150) -> DrillResult:
    """Start the scenario's system, run the phases in it (all five by default; the ground truth needs
    phases 1-4), compare with the ground truth, stop it all.

    ``execute_mitigations``: as a responder would headless, first a run of phases 2-3 makes the plan;
    then the run that is checked enables mitigations and confirms every step that plan prepared
    (``confirm``), and phase 4 waits up to ``settle_seconds`` for the signals: the scenario must
    end recovered. The comparison is written into the run as ``drill.json`` (and the manifest
    re-sealed). ``keep_running`` is called with the environment still up and the checked run, after the run.
    """
    say = progress or (lambda _: None)
    t0 = time.monotonic()
    name = incident or f"DRILL-{scenario.name}"
    # Each drill is an incident of its own: its runs' timeline must not pick up an earlier drill's runs.
    context = {"drill": f"{scenario.name}-{uuid.uuid4().hex[:8]}"}
    with DrillEnvironment(scenario, progress=say) as env:
        say(f"drill services up in {env.timings['services_up_seconds']:.1f} s; running the phases")
        t1 = time.monotonic()
        params = dict(scenario.parameters)
        truth_now = scenario.truth
        if execute_mitigations:
            planned = runner.run(name, [2, 3], config_path=str(env.config_path), outputs=outputs, progress=say,
                                 params=dict(scenario.parameters), context=context)
            ids = [s.id for s in RunRecords(planned.run_dir).get(STEPS) if not s.refused]
            say(f"plan {planned.run_dir.name}: confirming {', '.join(ids) or 'nothing'}")
            params.update(execute_mitigations=True)
            if ids:  # nothing to apply: nothing to wait for either
                params.update(confirm=f"{name}:{','.join(ids)}", settle_seconds=settle_seconds)
            phases = sorted(set(phases or [1, 2, 3, 4, 5]) | {1, 2, 3, 4})
            truth_now = dataclasses.replace(scenario.truth, recovered=scenario.truth.after_mitigation if ids
                                            else scenario.truth.recovered)
        result = runner.run(name, phases, config_path=str(env.config_path),
                            params=params, outputs=outputs, progress=say, context=context)
        env.timings["run_seconds"] = round(time.monotonic() - t1, 2)
        differences = check(result.summary, truth_now, env.pids)
        truth = dataclasses.asdict(truth_now.resolved(env.pids))
        with reopened(result.run_dir):  # sealed read-only: the comparison joins it, and the manifest is re-signed
            evidence.write_json(RunDir(result.run_dir).drill,
                                {"scenario": scenario.name, "title": scenario.title, "truth": truth,
                                 "sessions": env.pids, "differences": differences, "timings": env.timings})
            evidence.write_manifest(result.run_dir)
        if result.location:  # kept in object storage: the comparison and the new manifest go there too
            from irkit.evidence.remote import Remote
            Remote(str(outputs)).push(result.run_dir, to=result.location)
        if keep_running is not None:
            keep_running(env, result)
        timings = dict(env.timings)
    timings["total_seconds"] = round(time.monotonic() - t0, 2)
    return DrillResult(scenario, result.run_dir, result.summary, differences, timings, dict(env.pids), truth_now,
                       result.location)
