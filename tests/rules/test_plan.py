"""The plan: the playbook's actions for the findings, every command quoted, every target from config."""

from __future__ import annotations

import shlex

import pytest

from irkit import config
from irkit.rules.kinds import (
    BadRevision,
    DbSaturation,
    DdlQueued,
    Dependency,
    Finding,
    Kind,
    LockRoot,
    LongRunningQuery,
    OomKilled,
    Overload,
)
from irkit.rules.plan import ACTIONS, PlanTargets, plan, raised_quantity

HOSTILE = "x; touch /tmp/pwned #"


def test_every_planned_command_is_quoted_for_the_shell():
    steps = plan([Finding(Kind.CRASHLOOP, HOSTILE, "d"), Finding(Kind.BAD_REVISION, "api", "d", BadRevision(deployment=HOSTILE)),
                  Finding(Kind.LOCK_ROOT, "pid 42", "d", LockRoot(pid=42))],
                 PlanTargets(namespace="prod", postgres="pg-0", database="db name; rm", admin_user="dba"))
    commands = {s.action: s.command for s in steps}
    assert shlex.split(commands["delete-pod"]) == ["kubectl", "delete", "pod", HOSTILE, "-n", "prod"]
    assert shlex.split(commands["rollout-undo"]) == ["kubectl", "rollout", "undo", f"deployment/{HOSTILE}", "-n", "prod"]
    assert shlex.split(commands["terminate-backend"]) == [
        "kubectl", "exec", "-n", "prod", "statefulset/pg-0", "--", "psql", "-U", "dba", "-d", "db name; rm",
        "-c", "SELECT pg_terminate_backend(42);"]
    assert {s.action for s in steps} <= set(ACTIONS)


def test_a_pid_that_is_not_a_number_plans_no_sql():
    # A pid enters as an integer or not at all: made in diagnosis or read back from a record.
    for hostile in ("1); DROP TABLE orders; --", True, 0):
        with pytest.raises(ValueError, match="pid"):
            LockRoot(pid=hostile)
        with pytest.raises(ValueError, match="pid"):
            Finding.from_dict({"kind": "long-running-query", "subject": "pid 1", "evidence": {"pid": hostile}})
    steps = plan([Finding(Kind.LOCK_ROOT, "pid 1); DROP TABLE orders; --", "d"),
                  Finding(Kind.LONG_RUNNING_QUERY, "pid x", "d")])
    assert steps == []


def test_every_target_comes_from_the_configuration():
    cfg = config.load(env={}, namespace="shop", backend_deployment="api-server", postgres_statefulset="db-0",
                      pg_database="shop", pg_admin_user="dba", memory_limit_factor=2.0)
    steps = plan([Finding(Kind.DB_SATURATION, "postgres", "d"), Finding(Kind.LONG_RUNNING_QUERY, "pid 9", "d", LongRunningQuery(pid=9)),
                  Finding(Kind.OOM_KILLED, "web", "d", OomKilled(deployment="web", container="nginx",
                                                         memory_limit="512Mi"))],
                 PlanTargets.from_config(cfg))
    by_action = {s.action: s for s in steps}
    assert by_action["rollout-restart"].target == "deployment/api-server"
    assert "-n shop statefulset/db-0 -- psql -U dba -d shop" in by_action["cancel-query"].command
    assert by_action["raise-memory-limit"].command.endswith("-c nginx --limits=memory=1024Mi")


@pytest.mark.parametrize(("limit", "factor", "raised"), [
    ("512Mi", 1.5, "768Mi"), ("1Gi", 1.5, "1536Mi"), ("1G", 2.0, "1908Mi"), ("1000000", 1.5, "2Mi"), ("2.5Gi", 1.2, "3072Mi"),
    ("lots", 1.5, None), ("", 1.5, None),
])
def test_a_memory_limit_is_raised_from_its_current_value(limit: str, factor: float, raised: str | None):
    assert raised_quantity(limit, factor) == raised


def test_an_unknown_limit_is_not_guessed():
    step = plan([Finding(Kind.OOM_KILLED, "web", "d", OomKilled(deployment="web", container="nginx"))])[0]
    assert "not known" in step.why and "--limits" not in step.command


def test_a_mitigation_round_trips_through_its_record():
    step = plan([Finding(Kind.BAD_REVISION, "api", "d", BadRevision(deployment="api", revision=3))])[0]
    assert type(step).from_dict(step.as_dict()) == step and step.status == "planned"


def test_the_queued_ddl_is_cancelled_before_the_reader_is_terminated():
    steps = plan([Finding(Kind.LOCK_ROOT, "pid 10", "d", LockRoot(pid=10, blocked_count=3)),
                  Finding(Kind.DDL_QUEUED, "pid 11", "d", DdlQueued(pid=11, queued_behind=2))])
    assert [(s.action, s.target) for s in steps] == [("cancel-query", "pid 11"), ("terminate-backend", "pid 10")]


def test_idle_sessions_of_an_application_are_terminated_with_its_name_as_a_quoted_literal():
    name = "o'brien; DROP TABLE orders; --"
    step = plan([Finding(Kind.DB_SATURATION, "postgres", "d", DbSaturation(application=name, idle_sessions=40))])[0]
    assert step.action == "terminate-idle"
    sql = shlex.split(step.command)[-1]
    assert sql.endswith("application_name = 'o''brien; DROP TABLE orders; --';")


def test_dependencies_and_load_get_the_playbooks_actions():
    steps = plan([Finding(Kind.PROVIDER_FAILING, "backend-deployment", "d", Dependency(deployment="backend-deployment")),
                  Finding(Kind.UPSTREAM_TIMEOUT, "backend-deployment", "d", Dependency(deployment="backend-deployment")),
                  Finding(Kind.OVERLOAD, "backend", "d", Overload(deployment="backend-deployment", replicas=3,
                                                          impact=3.0))],
                 PlanTargets(namespace="prod", max_replicas=5))
    commands = [shlex.split(s.command) for s in steps]
    assert ["kubectl", "set", "env", "deployment/backend-deployment", "BLOCKCHAIN_PROVIDER=backup", "-n", "prod"] in commands
    assert ["kubectl", "set", "env", "deployment/backend-deployment", "API_TIMEOUT=30000", "-n", "prod"] in commands
    assert any(c[-2:] == ["-X", "POST", "http://localhost:3000/admin/circuit-breaker/enable"][-2:] for c in commands)
    scale = next(s for s in steps if s.action == "scale")
    assert "--replicas=5" in scale.command  # 3 x 2 = 6, held to max_replicas


def test_a_session_gets_one_step_a_cancel_after_its_terminate_would_find_no_one():
    findings = [Finding(Kind.LOCK_ROOT, "pid 42", "d", LockRoot(pid=42, blocked_count=4, state="active")),
                Finding(Kind.DDL_QUEUED, "pid 43", "d", DdlQueued(pid=43, queued_behind=3)),
                Finding(Kind.LONG_RUNNING_QUERY, "pid 42", "d", LongRunningQuery(pid=42, age_seconds=900))]
    assert [(m.action, m.target) for m in plan(findings)] == [("cancel-query", "pid 43"),
                                                             ("terminate-backend", "pid 42")]
