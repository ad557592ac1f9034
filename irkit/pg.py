"""PostgreSQL investigation: playbook 2.4 (database health, locks) and 4.3 (data integrity).

Every query runs in a session that cannot write (``default_transaction_read_only``),
is bounded on the server (``statement_timeout``, ``lock_timeout``) and on the client
(a watchdog drops the socket when the server stops answering altogether), and is
named ``application_name='irkit'`` so a DBA can tell it apart. Results are
DataFrames with documented columns, or small frozen records.

``default_transaction_read_only`` guards against accidents, not people (``BEGIN
READ WRITE`` bypasses it); production should use a role that can only read, see
the README.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd
import psycopg
import psycopg.conninfo
import psycopg.errors
from psycopg import sql

from irkit.config import Config, redact
from irkit.errors import PostgresError, PostgresTimeout, PostgresUnavailable

__all__ = [
    "READONLY_ROLE_SQL",
    "LockGraph",
    "PgSession",
    "RecentRows",
    "Saturation",
    "activity_by_state",
    "build_lock_graph",
    "connect",
    "lock_graph",
    "long_running",
    "recent_rows",
    "saturation",
    "table_activity",
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

    def __init__(self, config: Config) -> None:
        self.config = config
        self.source = f"PostgreSQL at {config.pg_location}"
        self._conn: psycopg.Connection[Any] | None = None
        self._open()

    def _open(self) -> None:
        cfg = self.config
        options = (
            "-c default_transaction_read_only=on"
            f" -c statement_timeout={int(cfg.statement_timeout * 1000)}"
            f" -c lock_timeout={int(cfg.lock_timeout * 1000)}"
        )
        existing = psycopg.conninfo.conninfo_to_dict(cfg.pg_dsn).get("options")
        if existing:
            options = f"{existing} {options}"
        started = time.monotonic()
        try:
            # libpq's connect_timeout is whole seconds, at least 2.
            self._conn = psycopg.connect(
                cfg.pg_conninfo(),
                connect_timeout=max(2, round(cfg.connect_timeout)),
                application_name="irkit",
                options=options,
                autocommit=True,
            )
        except psycopg.Error as exc:
            elapsed = time.monotonic() - started
            detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, cfg)
            raise PostgresUnavailable(
                self.source, "connect", elapsed,
                f"{detail}; check IRKIT_PG_DSN / IRKIT_PG_PASSWORD, the port-forward, and that the server is up",
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
        return pd.DataFrame(rows, columns=columns)

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
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return PostgresTimeout(
                self.source, what, elapsed,
                f"waited more than lock_timeout={cfg.lock_timeout:g} s for a lock ({message}); "
                "run lock_graph() to see who holds it",
                down=False,
            )
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return PostgresTimeout(
                self.source, what, elapsed,
                f"ran longer than statement_timeout={cfg.statement_timeout:g} s ({message}); the database may be "
                "saturated: look at activity_by_state() and long_running(), or raise IRKIT_STATEMENT_TIMEOUT",
                down=False,
            )
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return PostgresError(
                self.source, what, elapsed,
                f"refused: irkit investigation sessions are read-only ({message}); "
                "changes go through irkit's mitigation actions",
            )
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return PostgresError(
                self.source, what, elapsed,
                f"permission denied ({message}); grant the irkit role pg_read_all_stats (see README)",
            )
        if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
            return PostgresError(
                self.source, what, elapsed,
                f"{message}; check pg_orders_table / pg_orders_ts_column (IRKIT_PG_ORDERS_TABLE)",
            )
        if isinstance(exc, psycopg.OperationalError):
            return PostgresUnavailable(
                self.source, what, elapsed, f"{message}; the connection was lost, check the server and retry",
            )
        return PostgresError(self.source, what, elapsed, message)


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


_EDGE_COLUMNS = [
    "blocked_pid", "blocking_pid", "wait_event_type", "wait_event", "wait_seconds", "blocked_query",
    "blocking_query", "blocking_state", "blocking_xact_seconds",
]
_SESSION_COLUMNS = ["pid", "state", "query", "xact_seconds", "wait_seconds", "usename", "application_name"]


@dataclass(frozen=True)
class LockGraph:
    """Who waits on whom.

    ``edges``: one row per (waiter, blocker) pair, columns ``blocked_pid, blocking_pid,
    wait_event_type, wait_event, wait_seconds, blocked_query, blocking_query,
    blocking_state, blocking_xact_seconds``.

    ``sessions``: every pid in the graph, columns ``pid, state, query, xact_seconds,
    wait_seconds, usename, application_name``.

    ``roots``: the pids that block others and wait on nobody, most blocking first,
    columns ``pid, state, blocked_count`` (sessions waiting behind it, directly or
    transitively), ``direct_count, xact_seconds, query, usename, application_name``.
    An ``idle in transaction`` root is the classic culprit.

    ``cycles``: sets of pids waiting on each other (a deadlock not yet broken).
    """

    edges: pd.DataFrame
    sessions: pd.DataFrame
    roots: pd.DataFrame
    cycles: tuple[tuple[int, ...], ...]

    @property
    def empty(self) -> bool:
        return self.edges.empty

    def tree(self) -> str:
        """The graph as an indented text tree, blockers at the left (like postgres_dba's lock tree)."""
        if self.empty:
            return "no session is waiting on a lock"
        info = self.sessions.set_index("pid")
        waiters: dict[int, list[int]] = {}
        for waiter, blocker in zip(self.edges["blocked_pid"], self.edges["blocking_pid"], strict=True):
            waiters.setdefault(int(blocker), []).append(int(waiter))
        lines: list[str] = []

        def describe(pid: int) -> str:
            if pid not in info.index:
                return f"pid {pid}"
            s = info.loc[pid]
            query = " ".join(str(s["query"] or "").split())[:70]
            age = s["xact_seconds"]
            age_text = f" xact {age:.0f}s" if pd.notna(age) else ""
            return f"pid {pid} [{s['state']}{age_text}] {query}"

        def walk(pid: int, depth: int, seen: frozenset[int]) -> None:
            for child in sorted(waiters.get(pid, [])):
                if child in seen:
                    lines.append("    " * depth + f"└─ pid {child} (cycle)")
                    continue
                lines.append("    " * depth + "└─ " + describe(child))
                walk(child, depth + 1, seen | {child})

        for pid, blocked in zip(self.roots["pid"], self.roots["blocked_count"], strict=True):
            lines.append(describe(int(pid)) + f"  ← blocks {blocked}")
            walk(int(pid), 1, frozenset({int(pid)}))
        for cycle in self.cycles:
            lines.append("deadlock cycle: " + " → ".join(str(p) for p in (*cycle, cycle[0])))
            for pid in cycle:
                lines.append("    " + describe(pid))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape
        return f"<pre>{escape(self.tree())}</pre>" + self.roots.to_html(index=False)


def build_lock_graph(edges: pd.DataFrame, sessions: pd.DataFrame) -> LockGraph:
    """Find roots, transitive waiter counts and cycles from waiter→blocker edges (pure)."""
    edges = edges.reindex(columns=_EDGE_COLUMNS).reset_index(drop=True)
    sessions = sessions.reindex(columns=_SESSION_COLUMNS).drop_duplicates("pid").reset_index(drop=True)
    blockers_of: dict[int, set[int]] = {}
    waiters_of: dict[int, set[int]] = {}
    for waiter, blocker in zip(edges["blocked_pid"], edges["blocking_pid"], strict=True):
        blockers_of.setdefault(int(waiter), set()).add(int(blocker))
        waiters_of.setdefault(int(blocker), set()).add(int(waiter))

    def behind(pid: int) -> set[int]:
        seen: set[int] = set()
        queue = deque(waiters_of.get(pid, ()))
        while queue:
            nxt = queue.popleft()
            if nxt not in seen and nxt != pid:
                seen.add(nxt)
                queue.extend(waiters_of.get(nxt, ()))
        return seen

    info = sessions.set_index("pid") if not sessions.empty else None
    root_rows = []
    for pid in sorted(waiters_of):
        if pid in blockers_of:
            continue  # it waits too: not a root
        row: dict[str, Any] = {
            "pid": pid, "blocked_count": len(behind(pid)), "direct_count": len(waiters_of[pid]),
        }
        if info is not None and pid in info.index:
            s = info.loc[pid]
            row.update(state=s["state"], xact_seconds=s["xact_seconds"], query=s["query"],
                       usename=s["usename"], application_name=s["application_name"])
        root_rows.append(row)
    roots = pd.DataFrame(root_rows, columns=["pid", "state", "blocked_count", "direct_count", "xact_seconds",
                                             "query", "usename", "application_name"])
    roots = roots.sort_values(["blocked_count", "xact_seconds"], ascending=[False, False]).reset_index(drop=True)
    return LockGraph(edges=edges, sessions=sessions, roots=roots, cycles=_cycles(blockers_of))


def _cycles(blockers_of: dict[int, set[int]]) -> tuple[tuple[int, ...], ...]:
    """Strongly connected components with more than one pid (Tarjan, iterative)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    found: list[tuple[int, ...]] = []
    counter = 0
    nodes = set(blockers_of) | {b for bs in blockers_of.values() for b in bs}
    for start in sorted(nodes):
        if start in index:
            continue
        work: list[tuple[int, Iterator[int]]] = [(start, iter(sorted(blockers_of.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(blockers_of.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(tuple(sorted(component)))
    return tuple(sorted(found))


def lock_graph(conn: PgSession) -> LockGraph:
    """Who blocks whom in the configured database, from ``pg_blocking_pids()`` (playbook 2.4)."""
    params = {"db": conn.config.pg_database}
    edges = conn.query(
        """
        WITH waiting AS (
            SELECT a.*, pg_blocking_pids(a.pid) AS blockers
            FROM pg_stat_activity a
            WHERE a.datname = %(db)s
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
    ) if pids else pd.DataFrame(columns=_SESSION_COLUMNS)
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

    def _repr_html_(self) -> str:
        colour = "#c0392b" if self.ratio >= 0.9 else "#27ae60"
        return f"<p style='border-left:4px solid {colour};padding:4px 8px'>{self}</p>"


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
