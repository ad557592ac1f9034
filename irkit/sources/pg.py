"""PostgreSQL investigation: playbook 2.4 (database health, locks) and 4.3 (data integrity).

What a query returns has every secret removed (``irkit.redaction``: a password in SQL text or an
``application_name``). Every query runs in a session that cannot write (``default_transaction_read_only``),
is bounded on the server (``statement_timeout``, ``lock_timeout``) and on the client
(a watchdog drops the socket when the server stops answering altogether), and is
named ``application_name='irkit'`` so a DBA can tell it apart. Results are
DataFrames with documented columns, or small frozen records.

``default_transaction_read_only`` guards against accidents, not people (``BEGIN
READ WRITE`` bypasses it); production should use a role that can only read, see
docs/configuration.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd
import psycopg
import psycopg.conninfo
import psycopg.errors
from psycopg import sql

from irkit.config import Config, redact, redact_frame
from irkit.errors import PostgresError, PostgresTimeout, PostgresUnavailable
from irkit.rules.locks import SESSION_COLUMNS, LockGraph, build_lock_graph

__all__ = [
    "READONLY_ROLE_SQL",
    "LockGraph",
    "PgSession",
    "RecentRows",
    "Saturation",
    "activity_by_state",
    "connect",
    "connections_by_application",
    "deadlocks",
    "lock_graph",
    "long_running",
    "recent_rows",
    "saturation",
    "seq_scans",
    "table_activity",
    "top_statements",
]

# Extra seconds the client waits beyond statement_timeout before it decides the
# server itself is hung (statement_timeout is enforced by the server, so a stopped
# server never sends the cancellation).
_WATCHDOG_GRACE = 2.0


class PgSession:
    """A read-only, time-bounded investigation session on one database.

    Reconnects by itself if the previous connection was dropped by the watchdog.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, config: Config, *, actions: bool = False) -> None:
        self.config = config
        # actions: the session irkit.actions signals backends from (pg_action_dsn, a role with
        # pg_signal_backend). It is read-only too: it can cancel and terminate sessions, never write data.
        self.actions = actions
        self.dsn = config.pg_action_dsn if actions else config.pg_dsn
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        self.source = f"PostgreSQL at {info.get('host', 'localhost')}:{info.get('port', 5432)}"
        self._conn: psycopg.Connection[Any] | None = None
        self._open()

    def _open(self) -> None:
        cfg = self.config
        options = (
            "-c default_transaction_read_only=on"
            f" -c statement_timeout={int(cfg.statement_timeout * 1000)}"
            f" -c lock_timeout={int(cfg.lock_timeout * 1000)}"
        )
        existing = psycopg.conninfo.conninfo_to_dict(self.dsn).get("options")
        if existing:
            options = f"{existing} {options}"
        started = time.monotonic()
        try:
            # libpq's connect_timeout is whole seconds, at least 2.
            self._conn = psycopg.connect(
                cfg.pg_action_conninfo() if self.actions else cfg.pg_conninfo(),
                connect_timeout=max(2, round(cfg.connect_timeout)),
                application_name="irkit-actions" if self.actions else "irkit",
                options=options,
                autocommit=True,
            )
        except psycopg.Error as exc:
            elapsed = time.monotonic() - started
            detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, cfg)
            raise PostgresUnavailable(
                self.source, "connect", elapsed,
                f"{detail}; check {'IRKIT_PG_ACTION_DSN / IRKIT_PG_ACTION_PASSWORD' if self.actions else 'IRKIT_PG_DSN / IRKIT_PG_PASSWORD'}, the port-forward, and that the server is up",
            ) from exc

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The underlying psycopg connection (reopened if it was dropped)."""
        if self._conn is None or self._conn.closed:
            self._open()
        assert self._conn is not None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> PgSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PgSession {self.source} db={self.config.pg_database}>"

    def query(self, query: sql.Composable | str, params: Mapping[str, Any] | None = None, *,
              what: str) -> pd.DataFrame:
        """Run one bounded query and return its rows; ``what`` names it in errors."""
        conn = self.connection
        started = time.monotonic()
        fired = threading.Event()
        watchdog = threading.Timer(self.config.statement_timeout + _WATCHDOG_GRACE, _drop_socket, (conn, fired))
        watchdog.daemon = True
        watchdog.start()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)  # type: ignore[arg-type]
                columns = [col.name for col in cur.description or ()]
                rows = cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise self._translate(exc, what, time.monotonic() - started, fired.is_set()) from exc
        finally:
            watchdog.cancel()
        # SQL text, application names and the like are the sessions' own words: secrets in them go here.
        return redact_frame(pd.DataFrame(rows, columns=columns), self.config)

    def _translate(self, exc: psycopg.Error, what: str, elapsed: float, hung: bool) -> PostgresError:
        cfg = self.config
        if hung:
            with contextlib.suppress(Exception):
                self.connection.close()
            return PostgresTimeout(
                self.source, what, elapsed,
                f"the server stopped answering for {cfg.statement_timeout + _WATCHDOG_GRACE:.0f} s and the "
                "connection was dropped; the database host may be hung or overloaded (check the postgres pod, "
                "its node, and kubectl top)",
            )
        message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, cfg)
        for kinds, error, hint, down in _ERRORS:
            if isinstance(exc, kinds):
                return error(self.source, what, elapsed, hint.format(message=message, cfg=cfg), down=down)
        return PostgresError(self.source, what, elapsed, message)


# psycopg's errors as irkit's, first match wins: (psycopg classes, irkit error, hint, whether the source is down).
# A statement or lock timeout is one query failing, not the server: later steps still ask it.
_ERRORS: tuple[tuple[type[psycopg.Error] | tuple[type[psycopg.Error], ...], type[PostgresError], str, bool | None],
               ...] = (
    (psycopg.errors.LockNotAvailable, PostgresTimeout,
     "waited more than lock_timeout={cfg.lock_timeout:g} s for a lock ({message}); run lock_graph() to see who "
     "holds it", False),
    (psycopg.errors.QueryCanceled, PostgresTimeout,
     "ran longer than statement_timeout={cfg.statement_timeout:g} s ({message}); the database may be saturated: "
     "look at activity_by_state() and long_running(), or raise IRKIT_STATEMENT_TIMEOUT", False),
    (psycopg.errors.ReadOnlySqlTransaction, PostgresError,
     "refused: irkit investigation sessions are read-only ({message}); changes go through irkit's mitigation "
     "actions", None),
    (psycopg.errors.InsufficientPrivilege, PostgresError,
     "permission denied ({message}); grant the role what the role SQL of docs/configuration.md grants (pg_read_all_stats, "
     "SELECT on pg_orders_table; pg_signal_backend for pg_action_dsn)", None),
    ((psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn), PostgresError,
     "{message}; check pg_orders_table / pg_orders_ts_column (IRKIT_PG_ORDERS_TABLE)", None),
    (psycopg.OperationalError, PostgresUnavailable,
     "{message}; the connection was lost, check the server and retry", None),
)


def _drop_socket(conn: psycopg.Connection[Any], fired: threading.Event) -> None:
    """Unblock a query whose server stopped answering, by shutting its socket down."""
    fired.set()
    with contextlib.suppress(Exception):
        fd = os.dup(conn.pgconn.socket)
        with socket.socket(fileno=fd) as sock:
            sock.shutdown(socket.SHUT_RDWR)


def connect(config: Config) -> PgSession:
    """Open a read-only investigation session on ``config.pg_dsn``."""
    return PgSession(config)


def activity_by_state(conn: PgSession) -> pd.DataFrame:
    """Sessions of the configured database, grouped by state and wait event type (playbook 2.4).

    Columns: ``state, wait_event_type, sessions, oldest_xact_seconds, oldest_query_seconds``.
    irkit's own session is left out.
    """
    return conn.query(
        """
        SELECT coalesce(state, 'unknown') AS state,
               coalesce(wait_event_type, '') AS wait_event_type,
               count(*)::int AS sessions,
               max(extract(epoch FROM now() - xact_start))::float8 AS oldest_xact_seconds,
               max(extract(epoch FROM now() - query_start))::float8 AS oldest_query_seconds
        FROM pg_stat_activity
        WHERE datname = %(db)s AND pid <> pg_backend_pid()
        GROUP BY 1, 2
        ORDER BY sessions DESC, state
        """,
        {"db": conn.config.pg_database},
        what="activity by state",
    )



def deadlocks(conn: PgSession) -> int:
    """``pg_stat_database.deadlocks`` of the configured database: deadlocks PostgreSQL detected and broke
    since the statistics were last reset."""
    frame = conn.query("SELECT coalesce(sum(deadlocks), 0)::bigint AS deadlocks FROM pg_stat_database "
                       "WHERE datname = %(db)s", {"db": conn.config.pg_database}, what="deadlocks")
    return int(frame["deadlocks"].iloc[0])


def connections_by_application(conn: PgSession) -> pd.DataFrame:
    """Client connections to the whole server by application and state, most first (who fills the pool).

    Columns: ``application_name, state, sessions, oldest_state_seconds``. irkit's own session is left out.
    """
    return conn.query(
        """
        SELECT coalesce(nullif(application_name, ''), '(unnamed)') AS application_name,
               coalesce(state, 'unknown') AS state, count(*)::int AS sessions,
               max(extract(epoch FROM now() - state_change))::float8 AS oldest_state_seconds
        FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
        GROUP BY 1, 2
        ORDER BY sessions DESC, 1, 2
        """,
        what="connections by application",
    )


def lock_graph(conn: PgSession) -> LockGraph:
    """Who blocks whom in the configured database, from ``pg_blocking_pids()`` (playbook 2.4)."""
    params = {"db": conn.config.pg_database}
    edges = conn.query(
        """
        WITH waiting AS (  -- pg_blocking_pids() only for sessions waiting on a lock: its cost grows with them
            SELECT a.*, pg_blocking_pids(a.pid) AS blockers
            FROM pg_stat_activity a
            WHERE a.datname = %(db)s AND a.wait_event_type = 'Lock'
        )
        SELECT w.pid AS blocked_pid,
               b.pid AS blocking_pid,
               w.wait_event_type,
               w.wait_event,
               extract(epoch FROM now() - coalesce(
                   (SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted),
                   w.query_start))::float8 AS wait_seconds,
               w.query AS blocked_query,
               b.query AS blocking_query,
               b.state AS blocking_state,
               extract(epoch FROM now() - b.xact_start)::float8 AS blocking_xact_seconds
        FROM waiting w
        CROSS JOIN LATERAL unnest(w.blockers) AS bp(pid)
        LEFT JOIN pg_stat_activity b ON b.pid = bp.pid
        WHERE cardinality(w.blockers) > 0
        ORDER BY wait_seconds DESC
        """,
        params,
        what="lock graph",
    )
    pids = sorted(set(edges["blocked_pid"]) | set(edges["blocking_pid"])) if not edges.empty else []
    sessions = conn.query(
        """
        SELECT a.pid, a.state, a.query,
               extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
               CASE WHEN a.wait_event_type = 'Lock'
                    THEN extract(epoch FROM now() - a.query_start)::float8 END AS wait_seconds,
               a.usename, a.application_name
        FROM pg_stat_activity a
        WHERE a.pid = ANY(%(pids)s)
        """,
        {"pids": [int(p) for p in pids]},
        what="lock graph sessions",
    ) if pids else pd.DataFrame(columns=SESSION_COLUMNS)
    return build_lock_graph(edges, sessions)


def long_running(conn: PgSession, older_than: timedelta = timedelta(minutes=5), *,
                 order: Literal["oldest", "newest"] = "oldest") -> pd.DataFrame:
    """Active queries and idle-in-transaction sessions older than ``older_than``.

    Age is the query's for ``active`` sessions and the transaction's for ``idle in
    transaction`` ones. Columns: ``pid, state, age_seconds, query_seconds,
    xact_seconds, wait_event_type, wait_event, usename, application_name,
    client_addr, query``.
    """
    direction = sql.SQL("DESC") if order == "oldest" else sql.SQL("ASC")
    query = sql.SQL(
        """
        SELECT pid, state, age_seconds, query_seconds, xact_seconds, wait_event_type, wait_event,
               usename, application_name, client_addr::text AS client_addr, query
        FROM (
            SELECT *,
                   extract(epoch FROM now() - query_start)::float8 AS query_seconds,
                   extract(epoch FROM now() - xact_start)::float8 AS xact_seconds,
                   extract(epoch FROM now() - CASE WHEN state = 'active' THEN query_start
                                                   ELSE xact_start END)::float8 AS age_seconds
            FROM pg_stat_activity
            WHERE datname = %(db)s AND pid <> pg_backend_pid()
              AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
        ) s
        WHERE age_seconds > extract(epoch FROM %(older_than)s::interval)
        ORDER BY age_seconds {direction}
        """
    ).format(direction=direction)
    return conn.query(query, {"db": conn.config.pg_database, "older_than": older_than}, what="long-running queries")


def table_activity(conn: PgSession, limit: int = 10) -> pd.DataFrame:
    """The busiest tables by writes, with dead tuples and autovacuum times (playbook 4.3).

    Columns: ``schemaname, tablename, inserts, updates, deletes, live_tuples,
    dead_tuples, dead_ratio, last_autovacuum, last_autoanalyze``.
    """
    return conn.query(
        """
        SELECT schemaname, relname AS tablename,
               n_tup_ins AS inserts, n_tup_upd AS updates, n_tup_del AS deletes,
               n_live_tup AS live_tuples, n_dead_tup AS dead_tuples,
               CASE WHEN n_live_tup + n_dead_tup > 0
                    THEN n_dead_tup::float8 / (n_live_tup + n_dead_tup) END AS dead_ratio,
               last_autovacuum, last_autoanalyze
        FROM pg_stat_user_tables
        ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC
        LIMIT %(limit)s
        """,
        {"limit": int(limit)},
        what="table activity",
    )


def seq_scans(conn: PgSession, limit: int = 10) -> pd.DataFrame:
    """The tables read most by sequential scans (``pg_stat_user_tables``): a big table read whole, again and again,
    is a query without its index. Columns: ``tablename, seq_scans, rows_per_scan, live_tuples, index_scans``."""
    return conn.query(
        """
        SELECT relname AS tablename, seq_scan AS seq_scans,
               CASE WHEN seq_scan > 0 THEN seq_tup_read::float8 / seq_scan END AS rows_per_scan,
               n_live_tup AS live_tuples, coalesce(idx_scan, 0) AS index_scans
        FROM pg_stat_user_tables
        WHERE seq_scan > 0
        ORDER BY seq_tup_read DESC
        LIMIT %(limit)s
        """,
        {"limit": int(limit)},
        what="sequential scans per table",
    )


def top_statements(conn: PgSession, limit: int = 10) -> pd.DataFrame | None:
    """The statements that took the most time in this database (``pg_stat_statements``); None when the extension
    is not installed there. Columns: ``query, calls, mean_ms, total_ms, rows`` (the text as PostgreSQL normalised
    it: constants are $1, $2)."""
    installed = conn.query("SELECT count(*) AS n FROM pg_extension WHERE extname = 'pg_stat_statements'",
                           what="pg_stat_statements installed?")
    if not int(installed["n"].iloc[0]):
        return None
    return conn.query(
        """
        SELECT left(query, 2000) AS query, calls, mean_exec_time AS mean_ms, total_exec_time AS total_ms, rows
        FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND query NOT ILIKE '%%pg_stat_statements%%'
        ORDER BY total_exec_time DESC
        LIMIT %(limit)s
        """,
        {"limit": int(limit)},
        what="top statements (pg_stat_statements)",
    )


@dataclass(frozen=True)
class RecentRows:
    """How many rows arrived in ``table`` during the last ``window``, and the newest one's time."""

    table: str
    window: timedelta
    count: int
    newest: datetime | None


def _identifier(name: str) -> sql.Identifier:
    """``schema.table`` or ``table`` as a quoted identifier; quoting makes hostile names inert."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise PostgresError("PostgreSQL", f"identifier {name!r}", 0.0,
                            "expected 'table' or 'schema.table'")
    return sql.Identifier(*parts)


def recent_rows(conn: PgSession, table: str | None = None, ts_column: str | None = None,
                window: timedelta = timedelta(hours=1)) -> RecentRows:
    """Rows created in the last ``window`` (playbook 4.3: are orders still flowing?)."""
    table = table or conn.config.pg_orders_table
    ts_column = ts_column or conn.config.pg_orders_ts_column
    query = sql.SQL(
        "SELECT count(*)::bigint AS n, max({ts}) AS newest FROM {table} WHERE {ts} > now() - %(window)s::interval"
    ).format(ts=sql.Identifier(ts_column), table=_identifier(table))
    frame = conn.query(query, {"window": window}, what=f"recent rows of {table}")
    row: dict[Any, Any] = frame.iloc[0].to_dict()
    return RecentRows(table=table, window=window, count=int(row["n"]), newest=row["newest"])


@dataclass(frozen=True)
class Saturation:
    """Connection saturation: sessions against ``max_connections``."""

    sessions: int
    in_database: int
    max_connections: int
    reserved: int

    @property
    def ratio(self) -> float:
        """Used share of the connections ordinary roles can take."""
        usable = max(1, self.max_connections - self.reserved)
        return self.sessions / usable

    def __str__(self) -> str:
        return (f"{self.sessions} of {self.max_connections - self.reserved} usable connections in use "
                f"({self.ratio:.0%}; {self.in_database} in this database); max_connections {self.max_connections}, "
                f"{self.reserved} reserved for superusers")


def saturation(conn: PgSession) -> Saturation:
    """How close the server is to refusing connections."""
    frame = conn.query(
        """
        SELECT count(*)::int AS sessions,
               count(*) FILTER (WHERE datname = %(db)s)::int AS in_database,
               current_setting('max_connections')::int AS max_connections,
               current_setting('superuser_reserved_connections')::int AS reserved
        FROM pg_stat_activity
        WHERE backend_type = 'client backend'
        """,
        {"db": conn.config.pg_database},
        what="connection saturation",
    )
    row = frame.iloc[0]
    return Saturation(sessions=int(row["sessions"]), in_database=int(row["in_database"]),
                      max_connections=int(row["max_connections"]), reserved=int(row["reserved"]))


# The production role irkit should use instead of relying on default_transaction_read_only
# (which BEGIN READ WRITE bypasses). pg_read_all_stats lets it see other sessions' queries.
READONLY_ROLE_SQL = """\
CREATE ROLE {role} LOGIN PASSWORD '{password}'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    CONNECTION LIMIT 5;
ALTER ROLE {role} SET default_transaction_read_only = on;
ALTER ROLE {role} SET statement_timeout = '5s';
GRANT pg_read_all_stats TO {role};
GRANT CONNECT ON DATABASE {database} TO {role};
"""
