"""Every command a drill's plan prints, pasted into a shell with the machine's kubectl against the drill: the ones
that change something with --dry-run=server (accepted, nothing changed), the psql and curl lines through kubectl
exec for real (and the drill's system follows)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from irkit import runner
from irkit.drill import DrillEnvironment, load_scenario
from irkit.rules.plan import ACTIONS
from tests.lab.test_kubectl import KUBECTL

# A scenario per action the plans hold (with the new systems' own names among them); together every action.
SCENARIOS = {
    "lock-contention": "terminate-backend", "slow-queries": "cancel-query",
    "idle-connection-saturation": "terminate-idle", "crashloop-after-deploy": "rollout-undo",
    "oom-frontend": "raise-memory-limit", "redis-down": "delete-pod", "provider-errors": "set-env",
    "upstream-timeouts": "enable-circuit-breaker", "overload": "scale",
    "checkout-behind-settlement": "terminate-backend", "rpc-rate-limited-pino": "set-env",
    "release-pinned-by-cronjob": "suspend-cronjob", "etl-idle-in-transaction-pool": "terminate-idle",
}
READ_ONLY = ("get", "logs", "describe", "top")


def test_the_scenarios_cover_every_action_a_built_in_plan_holds():
    # rollout-restart: planned for a saturating deployment, which no built-in scenario stages; flushdb: a person's
    # action from the catalogue, never planned by a rule.
    assert set(SCENARIOS.values()) == set(ACTIONS) - {"rollout-restart", "flushdb"}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_printed_command_works_pasted_against_the_drill(name: str, tmp_path: Path):
    scenario = load_scenario(name)
    with DrillEnvironment(scenario) as env:
        # Phase 2 alone comes sooner than in a drill (no phase 1 before it): a query is long-running only once it
        # has run older_than_seconds, so give it that long, as phase 1 would.
        time.sleep(float(scenario.parameters.get("older_than_seconds", 0)))
        result = runner.run(f"PASTE-{name}", [2, 3], config_path=str(env.config_path), outputs=tmp_path,
                            params=dict(scenario.parameters))
        steps = result.summary.mitigations
        assert SCENARIOS[name] in {m.action for m in steps}, (result.summary.phases, [
            (f.kind.value, f.subject) for f in result.summary.findings])
        shell_env = {**os.environ, "KUBECONFIG": str(env.kubeconfig)}
        for step in steps:
            argv = shlex.split(step.command)  # what a person pastes: one shell word per argument
            assert argv[0] == "kubectl", step.command
            if argv[1] == "exec":
                pasted = [KUBECTL, *argv[1:]]  # psql and curl inside the named container, for real
            elif argv[1] in READ_ONLY:
                pasted = [KUBECTL, *argv[1:]]
            else:
                pasted = [KUBECTL, *argv[1:], "--dry-run=server"]
            done = subprocess.run(pasted, capture_output=True, text=True, timeout=60, env=shell_env)
            assert done.returncode == 0, f"{step.command}: {done.stderr[-1500:]}"
            if step.action == "terminate-backend":
                pid = int(step.target.removeprefix("pid "))
                assert next(h for h in env.postgres.held if h.pid == pid).finished  # the holder is gone
            if step.action == "enable-circuit-breaker":
                assert env.marketplace.circuit_breaker
            if step.action == "terminate-idle":
                assert "pg_terminate_backend" in done.stdout and " t" in done.stdout
