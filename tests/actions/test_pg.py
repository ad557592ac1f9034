"""PostgreSQL actions against a real server: the blocker is terminated and its waiters granted; a pid that is
no longer the planned backend, or no longer blocks anyone, is not signalled; guardrails refuse."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from irkit import actions
from irkit import config as irconfig
from irkit.actions import Confirmation, Systems
from irkit.lab.postgres import PostgresLab
from irkit.rules.plan import Mitigation

INCIDENT = "INC-PG"


@pytest.fixture()
def systems(pg_lab: PostgresLab) -> Iterator[Systems]:
    cfg = irconfig.load(env={}, pg_dsn=pg_lab.reader_dsn, pg_action_dsn=pg_lab.responder_dsn, action_timeout=5.0)
    made = Systems(cfg)
    yield made
    made.close()
    pg_lab.release()


def terminate(pid: int, reason: str = "lock-root") -> Mitigation:
    return Mitigation("terminate-backend", f"pid {pid}", "test", "psql ...", "test",
                      params={"namespace": "web3-marketplace-prod", "pid": pid, "reason": reason})


def confirm(*steps: actions.Step) -> Confirmation:
    return Confirmation.parse(f"{INCIDENT}:{','.join(s.id for s in steps)}", by="test")


def alive(pg_lab: PostgresLab, pid: int) -> bool:
    with psycopg.connect(pg_lab.dsn, autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None


def chain(pg_lab: PostgresLab, order: int) -> tuple[Any, Any]:
    holder = pg_lab.hold(["BEGIN", f"UPDATE orders SET status = 'held' WHERE id = {int(order)}"])  # noqa: S608
    waiter = pg_lab.hold(["BEGIN", f"UPDATE orders SET status = 'waiting' WHERE id = {int(order)}"])  # noqa: S608
    return holder, waiter


def test_terminating_the_root_frees_its_waiters_and_is_recorded(pg_lab: PostgresLab, systems: Systems):
    holder, waiter = chain(pg_lab, 3)
    [step] = actions.prepare([terminate(holder.pid)], systems, INCIDENT)
    assert not step.refused, step.refused
    assert step.before["blocking"] == 1 and step.before["state"] == "idle in transaction"
    assert "backend_start" in step.params
    dry = actions.execute(step, systems, incident=INCIDENT)  # not enabled: a dry run
    assert dry.status == "dry-run" and alive(pg_lab, holder.pid) and not waiter.finished
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "applied", outcome.detail
    assert not alive(pg_lab, holder.pid)
    assert waiter.done.wait(5) and waiter.error is None  # the waiter's UPDATE was granted
    assert outcome.after == {"session": "gone"} and outcome.confirmation["by"] == "test"


def test_a_pid_now_used_by_another_backend_is_not_terminated(pg_lab: PostgresLab, systems: Systems):
    holder, _ = chain(pg_lab, 4)
    [step] = actions.prepare([terminate(holder.pid)], systems, INCIDENT)
    # The pid as another backend would have it: the same number, another backend_start.
    reused = replace(step, params={**step.params, "backend_start": "2020-01-01 00:00:00+00"})
    outcome = actions.execute(reused, systems, incident=INCIDENT, enabled=True, confirmation=confirm(reused))
    assert outcome.status == "failed" and "now belongs to another session" in outcome.detail
    assert alive(pg_lab, holder.pid)


def test_a_root_that_no_longer_blocks_anyone_is_not_terminated(pg_lab: PostgresLab, systems: Systems):
    holder, waiter = chain(pg_lab, 5)
    [step] = actions.prepare([terminate(holder.pid)], systems, INCIDENT)
    with psycopg.connect(pg_lab.dsn, autocommit=True) as admin:  # the waiter gives up on its own
        admin.execute("SELECT pg_cancel_backend(%s)", (waiter.pid,))
    assert waiter.done.wait(5)
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "failed" and "no longer blocks any session" in outcome.detail
    assert alive(pg_lab, holder.pid)


def test_a_superusers_session_is_refused_unless_configured(pg_lab: PostgresLab, systems: Systems):
    with psycopg.connect(pg_lab.dsn, autocommit=True) as superuser:
        pid = superuser.info.backend_pid
        [step] = actions.prepare([terminate(pid, reason="long-running")], systems, INCIDENT)
        assert "terminate_superuser" in step.refused
        outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
        assert outcome.status == "refused" and alive(pg_lab, pid)


def test_irkits_own_session_is_never_signalled(systems: Systems):
    own = systems.pg.connection.info.backend_pid
    [step] = actions.prepare([terminate(own, reason="long-running")], systems, INCIDENT)
    assert "irkit's own session" in step.refused


def test_more_terminations_than_max_terminations_are_refused(pg_lab: PostgresLab, systems: Systems):
    systems.config = systems.config.replace(max_terminations=1)
    first, _ = chain(pg_lab, 6)
    second, _ = chain(pg_lab, 7)
    steps = actions.prepare([terminate(first.pid), terminate(second.pid)], systems, INCIDENT)
    assert not steps[0].refused and "max_terminations" in steps[1].refused


def test_idle_sessions_of_one_application_are_terminated_and_no_other(pg_lab: PostgresLab, systems: Systems):
    idle = [psycopg.connect(pg_lab.app_dsn, autocommit=True, application_name="reporting-worker") for _ in range(2)]
    other = psycopg.connect(pg_lab.app_dsn, autocommit=True, application_name="backend")
    try:
        m = Mitigation("terminate-idle", "application reporting-worker", "t", "c", "f",
                       params={"namespace": "x", "application": "reporting-worker"})
        systems.config = systems.config.replace(max_terminations=5)
        [step] = actions.prepare([m], systems, INCIDENT)
        assert step.before["idle_sessions"] == 2, step
        outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
        assert outcome.status == "applied", outcome.detail
        assert not any(alive(pg_lab, c.info.backend_pid) for c in idle)
        assert alive(pg_lab, other.info.backend_pid)
    finally:
        for conn in (*idle, other):
            conn.close()


def test_sessions_idle_in_a_transaction_are_terminated_only_when_the_plan_says_so(pg_lab: PostgresLab,
                                                                                 systems: Systems):
    """An application that never ends its transactions fills the pool with sessions 'idle in transaction': the
    plan names that state, and only then are they terminated (their transactions rolled back)."""
    held = [psycopg.connect(pg_lab.app_dsn, application_name="etl-sync") for _ in range(2)]  # not autocommit
    try:
        for conn in held:
            conn.execute("SELECT 1")  # a transaction begun and left open
        systems.config = systems.config.replace(max_terminations=5, pg_idle_transaction_seconds=1.0)
        young = Mitigation("terminate-idle", "application etl-sync", "t", "c", "f",
                           params={"namespace": "x", "application": "etl-sync",
                                   "states": ["idle", "idle in transaction"]})
        [step] = actions.prepare([young], systems, INCIDENT)
        assert step.before["idle_sessions"] == 0  # open for less than a second: a busy application, left alone
        time.sleep(1.2)
        plain = Mitigation("terminate-idle", "application etl-sync", "t", "c", "f",
                           params={"namespace": "x", "application": "etl-sync"})
        [step] = actions.prepare([plain], systems, INCIDENT)
        assert step.before["idle_sessions"] == 0  # idle alone: none of them
        named = Mitigation("terminate-idle", "application etl-sync", "t", "c", "f",
                           params={"namespace": "x", "application": "etl-sync",
                                   "states": ["idle", "idle in transaction"]})
        [step] = actions.prepare([named], systems, INCIDENT)
        assert step.before["idle_sessions"] == 2, step
        outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
        assert outcome.status == "applied", outcome.detail
        assert not any(alive(pg_lab, c.info.backend_pid) for c in held)
    finally:
        for conn in held:
            conn.close()


def test_a_confirmation_of_idle_sessions_names_those_sessions_and_no_new_ones(pg_lab: PostgresLab,
                                                                             systems: Systems):
    """A confirmation pasted after more sessions appeared must not terminate them: the step's id covers the
    sessions it was prepared with, so the re-planned step is another step."""
    m = Mitigation("terminate-idle", "application batch-worker", "t", "c", "f",
                   params={"namespace": "x", "application": "batch-worker"})
    systems.config = systems.config.replace(max_terminations=10)
    first = [psycopg.connect(pg_lab.app_dsn, autocommit=True, application_name="batch-worker") for _ in range(2)]
    later: list[psycopg.Connection[Any]] = []
    try:
        [reviewed] = actions.prepare([m], systems, INCIDENT)
        [again] = actions.prepare([m], systems, INCIDENT)
        assert again.id == reviewed.id  # nothing moved: the same step
        later = [psycopg.connect(pg_lab.app_dsn, autocommit=True, application_name="batch-worker") for _ in range(3)]
        [replanned] = actions.prepare([m], systems, INCIDENT)
        assert replanned.before["idle_sessions"] == 5 and replanned.id != reviewed.id
        with pytest.raises(actions.ConfirmationError, match="situation may have changed"):
            confirm(reviewed).check(INCIDENT, [replanned.id])
        outcome = actions.execute(reviewed, systems, incident=INCIDENT, enabled=True, confirmation=confirm(reviewed))
        assert outcome.status == "applied", outcome.detail  # the reviewed step signals only what was reviewed
        assert all(alive(pg_lab, c.info.backend_pid) for c in later)
    finally:
        for conn in (*first, *later):
            conn.close()


def test_without_pg_action_dsn_a_database_step_says_how_to_configure_it(systems: Systems):
    systems.config = systems.config.replace(pg_action_dsn="")
    systems._pg = None
    [step] = actions.prepare([terminate(1)], systems, INCIDENT)
    assert "IRKIT_PG_ACTION_DSN" in step.refused
