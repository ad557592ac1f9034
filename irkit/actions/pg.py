"""The PostgreSQL backend: cancel or terminate a backend (a lock graph's root, a long-running or queued query), or an
application's idle sessions. Through psycopg, on ``pg_action_dsn`` (a role with pg_signal_backend, its session
read-only).

A pid is a name PostgreSQL reuses. Each session is identified by pid *and* ``backend_start``
when planned, and re-read just before it is signalled: another backend under the same pid, a root
that no longer blocks anyone, or a query that is no longer the one that was running, and nothing is
signalled (:class:`~irkit.errors.StaleTargetError`). irkit's own session, replication and autovacuum
workers, and (unless ``terminate_superuser``) superusers' sessions are never signalled.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from irkit.actions.model import Step
from irkit.config import Config
from irkit.errors import ActionError, GuardrailError, StaleTargetError
from irkit.sources.pg import PgSession

if TYPE_CHECKING:
    from irkit.actions.systems import Systems

__all__ = ["BACKEND", "PgBackend", "apply", "prepare", "recheck", "signals", "verify"]

_SESSION = """
SELECT pid, backend_start::text AS backend_start, backend_type, usename, application_name, state,
       query, query_start::text AS query_start,
       extract(epoch FROM now() - state_change)::float8 AS state_seconds,
       coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = usename), false) AS superuser,
       pid = pg_backend_pid() AS own,
       (SELECT count(*) FROM pg_stat_activity w WHERE a.pid = ANY(pg_blocking_pids(w.pid)))::int AS blocking
FROM pg_stat_activity a WHERE pid = %(pid)s
"""
_IDLE = """
SELECT pid FROM pg_stat_activity
WHERE state = ANY(%(states)s) AND application_name = %(app)s AND backend_type = 'client backend'
  AND (state = 'idle' OR state_change < now() - make_interval(secs => %(seconds)s))
  AND datname = current_database() AND pid <> pg_backend_pid()
ORDER BY pid
"""


def _session(pg: PgSession, pid: int) -> dict[str, Any] | None:
    rows = pg.query(_SESSION, {"pid": int(pid)}, what=f"read session {pid}").to_dict("records")
    if not rows:
        return None
    session = {str(k): (v.item() if hasattr(v, "item") else v) for k, v in rows[0].items()}
    session["query"] = str(session.get("query") or "")[:200]  # cut after the source removed its secrets
    return session


def _guard(cfg: Config, session: dict[str, Any] | None, pid: int) -> dict[str, Any]:
    if session is None:
        raise StaleTargetError(f"pid {pid} no longer exists: nothing to signal")
    if session["own"]:
        raise GuardrailError(f"pid {pid} is irkit's own session: never signalled")
    if session["backend_type"] != "client backend":
        raise GuardrailError(f"pid {pid} is a {session['backend_type']} (replication, autovacuum and other server "
                             "processes are never signalled)")
    if session["superuser"] and not cfg.terminate_superuser:
        raise GuardrailError(f"pid {pid} is a superuser's session ({session['usename']}); refused by guardrail "
                             "terminate_superuser = false (set it in [mitigation] to allow)")
    return session


def prepare(pg: PgSession, cfg: Config, step_action: str,
            params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]:
    """before, after, extra params, undo text: the sessions as they are now."""
    if step_action == "terminate-idle":
        pids = [int(r["pid"]) for r in pg.query(_IDLE, {"app": params["application"], "states": _states(params),
                                                        "seconds": cfg.pg_idle_transaction_seconds},
                                                 what=f"idle sessions of {params['application']}").to_dict("records")]
        sessions = [_guard(cfg, _session(pg, pid), pid) for pid in pids]
        idents = {str(s["pid"]): s["backend_start"] for s in sessions}
        return ({"idle_sessions": len(sessions), "pids": sorted(int(p) for p in idents)},
                {"idle_sessions": 0}, {"sessions": idents},
                "none: a terminated session cannot come back; the application opens new connections")
    pid = int(params["pid"])
    session = _guard(cfg, _session(pg, pid), pid)
    shown = {k: session[k] for k in ("pid", "backend_start", "usename", "application_name", "state", "query",
                                     "blocking")}
    verb = "terminated" if step_action == "terminate-backend" else "query cancelled"
    return (shown, {"pid": pid, "session": verb, "sessions waiting behind it": 0},
            {"backend_start": session["backend_start"], "query_start": session["query_start"]},
            "none: a cancelled query or terminated session cannot come back; its client may retry")


def signals(step: Step) -> int:
    """How many sessions the step signals (the max_terminations guardrail counts them)."""
    return len(step.params.get("sessions") or {}) if step.action == "terminate-idle" else 1


def recheck(pg: PgSession, cfg: Config, step: Step) -> None:
    """Is the target still what was planned? Raises StaleTargetError if not."""
    if step.action == "terminate-idle":
        return  # each session is checked as it is signalled
    pid = int(step.params["pid"])
    session = _guard(cfg, _session(pg, pid), pid)
    if session["backend_start"] != step.params["backend_start"]:
        raise StaleTargetError(f"pid {pid} now belongs to another session (started {session['backend_start']}, "
                               f"planned {step.params['backend_start']}): not signalled; plan again")
    reason = step.params.get("reason")
    if reason in ("lock-root", "deadlock") and not session["blocking"]:
        raise StaleTargetError(f"pid {pid} no longer blocks any session: not signalled")
    if reason in ("long-running", "ddl-queued") and session["query_start"] != step.params["query_start"]:
        raise StaleTargetError(f"pid {pid} is no longer running the query it was chosen for: not signalled")


def _states(params: Any) -> list[str]:
    """The idle states terminate-idle acts on: ``idle``, and the plan may add ``idle in transaction``."""
    wanted = [str(s) for s in params.get("states") or ["idle"]]
    return [s for s in wanted if s in ("idle", "idle in transaction", "idle in transaction (aborted)")] or ["idle"]


def apply(pg: PgSession, cfg: Config, step: Step) -> dict[str, Any]:
    function = "pg_cancel_backend" if step.action == "cancel-query" else "pg_terminate_backend"
    if step.action == "terminate-idle":
        done, skipped = [], []
        for pid, started in (step.params.get("sessions") or {}).items():
            session = _session(pg, int(pid))
            if (session is None or session["backend_start"] != started or session["state"] not in _states(step.params)
                    or (session["state"] != "idle" and float(session.get("state_seconds") or 0)
                        < cfg.pg_idle_transaction_seconds)):
                skipped.append(int(pid))  # gone, reused, or busy again: left alone
                continue
            pg.query("SELECT pg_terminate_backend(%(pid)s)", {"pid": int(pid)}, what=f"terminate {pid}")
            done.append(int(pid))
        return {"terminated": done, "left alone": skipped}
    recheck(pg, cfg, step)
    pid = int(step.params["pid"])
    result = pg.query(f"SELECT {function}(%(pid)s) AS signalled", {"pid": pid}, what=f"{function}({pid})")
    if not bool(result["signalled"].iloc[0]):
        raise ActionError(f"PostgreSQL did not signal pid {pid} (the role needs pg_signal_backend)")
    return {"pid": pid, "signalled": function}


def verify(pg: PgSession, step: Step) -> tuple[bool, str]:
    if step.action == "terminate-idle":
        left = [pid for pid, started in (step.params.get("sessions") or {}).items()
                if (s := _session(pg, int(pid))) is not None and s["backend_start"] == started
                and s["state"] in _states(step.params)]
        return (not left, "no idle session of it is left" if not left else f"{len(left)} still idle")
    pid = int(step.params["pid"])
    session = _session(pg, pid)
    same = session is not None and session["backend_start"] == step.params["backend_start"]
    if step.action == "terminate-backend" and same:
        return False, f"pid {pid} is still there"
    if step.action == "cancel-query" and same and session is not None and \
            session["query_start"] == step.params["query_start"] and session["state"] == "active":
        return False, f"pid {pid} is still running the query"
    waiting = int(session["blocking"]) if same and session is not None else 0
    if waiting:
        return False, f"{waiting} session(s) still wait behind pid {pid}"
    return True, "the session is gone and nothing waits behind it" if not same else "the query was cancelled"


class PgBackend:
    """The :class:`~irkit.actions.model.Backend` of ``postgresql``: nothing to dry-run, nothing to undo; each
    session re-read (same ``backend_start``, same reason) just before it is signalled."""

    def prepare(self, systems: Systems, step: Step, dry_run: bool) -> Step:
        before, after, extra, undo = prepare(systems.pg, systems.config, step.action, dict(step.params))
        return replace(step, params={**step.params, **extra}, before=before, after=after, undo=undo,
                       guardrails=(*step.guardrails, "not irkit's own session, not a server process",
                                   "terminate_superuser"),
                       dry_run="PostgreSQL has no dry run: the session was read and will be re-checked (same "
                               "backend_start, same reason) before it is signalled")

    def state(self, systems: Systems, step: Step) -> dict[str, Any]:
        if "pid" not in step.params:
            return {}
        return {"session": _session(systems.pg, int(step.params["pid"])) or "gone"}

    def apply(self, systems: Systems, step: Step) -> str:
        return str(apply(systems.pg, systems.config, step))

    def verify(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return verify(systems.pg, step)

    def undo(self, systems: Systems, step: Step) -> str:
        raise ActionError(f"{step.action} has no undo: {step.undo or 'a signalled session cannot come back'}")

    def verify_undo(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return False, "nothing to undo"


BACKEND = PgBackend()
