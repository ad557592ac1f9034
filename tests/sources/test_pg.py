"""PostgreSQL investigation against a real PostgreSQL 15 cluster."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from irkit import config
from irkit.config import Config
from irkit.errors import PostgresError, PostgresTimeout, PostgresUnavailable, SourceTimeout
from irkit.lab.postgres import PostgresLab
from irkit.sources import pg

Session = Callable[[], psycopg.Connection]


@pytest.fixture()
def session(pg_lab: PostgresLab) -> Iterator[Session]:
    """Open superuser sessions that play the application; all are terminated afterwards."""
    opened: list[psycopg.Connection] = []

    def open_one() -> psycopg.Connection:
        conn = psycopg.connect(pg_lab.dsn, autocommit=True, application_name="app-under-test")
        opened.append(conn)
        return conn

    yield open_one
    with psycopg.connect(pg_lab.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'app-under-test'")
    for conn in opened:
        # A waiter thread may still be inside execute() on this connection: closing it from here
        # meanwhile crashes libpq (a segfault was seen in CI). psycopg's own lock says when it is free.
        if conn.lock.acquire(timeout=10):
            try:
                conn.close()
            except Exception:
                pass
            finally:
                conn.lock.release()


@pytest.fixture()
def irk(cfg: Config) -> Iterator[pg.PgSession]:
    with pg.connect(cfg) as conn:
        yield conn


def _hold(conn: psycopg.Connection, statement: str) -> None:
    """Open a transaction, run ``statement`` and stay idle in transaction."""
    conn.execute("BEGIN")
    conn.execute(statement)


def _wait_behind(conn: psycopg.Connection, statement: str) -> threading.Thread:
    def run() -> None:
        try:
            conn.execute(statement)
        except psycopg.Error:
            pass  # terminated at teardown
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _graph_with(irk: pg.PgSession, edges: int) -> pg.LockGraph:
    deadline = time.monotonic() + 10
    while True:
        graph = pg.lock_graph(irk)
        if len(graph.edges) >= edges or time.monotonic() > deadline:
            return graph
        time.sleep(0.1)


def test_lock_chain_of_three_has_the_idle_in_transaction_session_as_root(session: Session, irk: pg.PgSession):
    a, b, c = session(), session(), session()
    _hold(a, "UPDATE orders SET status = 'held' WHERE id = 1")
    _wait_behind(b, "UPDATE orders SET status = 'b' WHERE id = 1")
    time.sleep(0.2)
    _wait_behind(c, "UPDATE orders SET status = 'c' WHERE id = 1")
    graph = _graph_with(irk, 2)

    assert set(zip(graph.edges.blocked_pid, graph.edges.blocking_pid)) >= {(b.info.backend_pid, a.info.backend_pid)}
    assert list(graph.roots.pid) == [a.info.backend_pid]
    root = graph.roots.iloc[0]
    assert root.state == "idle in transaction"
    assert root.blocked_count == 2  # b directly, c behind b
    edge = graph.edges[graph.edges.blocked_pid == b.info.backend_pid].iloc[0]
    assert edge.wait_event_type == "Lock"
    assert "status = 'held'" in edge.blocking_query
    assert edge.blocking_state == "idle in transaction"
    assert edge.wait_seconds >= 0 and edge.blocking_xact_seconds > 0
    tree = graph.tree()
    assert tree.splitlines()[0].startswith(f"pid {a.info.backend_pid} [idle in transaction")
    assert str(c.info.backend_pid) in tree
    assert graph.cycles == ()


def test_secrets_in_sql_text_and_application_names_never_leave_the_query(session: Session, irk: pg.PgSession):
    a, b = session(), session()
    a.execute("SET application_name = 'postgresql://svc:hunter2-app@db/x'")
    _hold(a, "UPDATE orders SET status = 'held' WHERE id = 1 /* ALTER ROLE app PASSWORD 'hunter2-sql' */")
    _wait_behind(b, "UPDATE orders SET status = 'b' WHERE id = 1 /* host=db password=hunter2-kv */")
    graph = _graph_with(irk, 1)
    frames = [graph.edges, graph.roots, graph.sessions, pg.connections_by_application(irk),
              pg.long_running(irk, timedelta(0))]
    text = " ".join(f.to_string() for f in frames) + graph.tree()
    assert "hunter2" not in text
    assert "PASSWORD [redacted: password]" in graph.roots.iloc[0].query
    assert "postgresql://svc:[redacted: password]@db/x" in set(graph.roots.application_name)


def test_two_independent_roots_are_both_found_and_ranked_by_waiters(session: Session, irk: pg.PgSession):
    a, a1, a2, b, b1 = (session() for _ in range(5))
    _hold(a, "UPDATE products SET stock = stock - 1 WHERE id = 1")
    _hold(b, "UPDATE users SET email = email WHERE id = 1")
    _wait_behind(a1, "UPDATE products SET stock = 0 WHERE id = 1")
    _wait_behind(b1, "UPDATE users SET wallet_address = 'x' WHERE id = 1")
    time.sleep(0.2)
    _wait_behind(a2, "UPDATE products SET stock = 1 WHERE id = 1")
    graph = _graph_with(irk, 3)

    assert list(graph.roots.pid) == [a.info.backend_pid, b.info.backend_pid]
    assert list(graph.roots.blocked_count) == [2, 1]


def test_a_lock_cycle_caught_mid_deadlock_is_reported_as_a_cycle(session: Session, irk: pg.PgSession):
    a, b = session(), session()
    _hold(a, "UPDATE orders SET status = 'a' WHERE id = 10")
    _hold(b, "UPDATE orders SET status = 'b' WHERE id = 11")
    _wait_behind(a, "UPDATE orders SET status = 'a' WHERE id = 11")
    _wait_behind(b, "UPDATE orders SET status = 'b' WHERE id = 10")
    graph = _graph_with(irk, 2)

    assert graph.cycles == (tuple(sorted((a.info.backend_pid, b.info.backend_pid))),)
    assert graph.roots.empty  # nobody in a deadlock waits on nobody
    assert "deadlock cycle" in graph.tree()


def test_no_waiters_gives_an_empty_graph(irk: pg.PgSession):
    graph = pg.lock_graph(irk)
    assert graph.empty and graph.roots.empty
    assert graph.tree() == "no session is waiting on a lock"


def test_investigation_session_refuses_writes(irk: pg.PgSession, pg_lab: PostgresLab):
    with pytest.raises(PostgresError, match="read-only"):
        irk.query("UPDATE orders SET status = 'oops'", what="write attempt")
    with psycopg.connect(pg_lab.dsn) as admin:
        assert admin.execute("SELECT count(*) FROM orders WHERE status = 'oops'").fetchone() == (0,)
    # The session stays usable after the refusal.
    assert irk.query("SELECT 1 AS one", what="ping").one.tolist() == [1]


def test_session_is_named_irkit_and_bounded(irk: pg.PgSession, cfg: Config):
    settings = irk.query("SELECT current_setting('application_name') AS app, "
                         "extract(epoch FROM current_setting('statement_timeout')::interval)::float8 AS st, "
                         "extract(epoch FROM current_setting('lock_timeout')::interval)::float8 AS lt, "
                         "current_setting('default_transaction_read_only') AS ro", what="settings").iloc[0]
    assert settings["app"] == "irkit"
    assert settings["st"] == cfg.statement_timeout
    assert settings["lt"] == cfg.lock_timeout
    assert settings["ro"] == "on"


def test_statement_timeout_becomes_an_irkit_timeout(cfg: Config):
    with pg.connect(cfg.replace(statement_timeout=1.0)) as conn:
        started = time.monotonic()
        with pytest.raises(PostgresTimeout, match="statement_timeout") as info:
            conn.query("SELECT pg_sleep(30)", what="slow analytics")
        assert time.monotonic() - started < 3
        assert isinstance(info.value, SourceTimeout)
        assert info.value.what == "slow analytics" and info.value.elapsed >= 1.0


def test_query_behind_an_access_exclusive_lock_times_out_within_the_bound(session: Session, cfg: Config):
    locker = session()
    _hold(locker, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    with pg.connect(cfg) as conn:
        started = time.monotonic()
        with pytest.raises(PostgresTimeout, match="lock"):
            pg.recent_rows(conn)
        assert time.monotonic() - started < cfg.lock_timeout + 2


def test_a_hung_server_gives_a_timeout_not_a_hang(cfg: Config):
    conn = pg.connect(cfg.replace(statement_timeout=1.0))
    backend = int(conn.query("SELECT pg_backend_pid() AS pid", what="pid").pid[0])
    os.kill(backend, signal.SIGSTOP)  # the server process stops answering altogether
    try:
        started = time.monotonic()
        with pytest.raises(PostgresTimeout, match="stopped answering"):
            conn.query("SELECT 1", what="ping")
        assert time.monotonic() - started < 1.0 + 2.0 + 1.5
    finally:
        os.kill(backend, signal.SIGCONT)
    # The session reconnects by itself for the next question.
    assert conn.query("SELECT 2 AS two", what="ping").two.tolist() == [2]
    conn.close()


def test_unreachable_server_names_the_fix(cfg: Config, closed_port: str):
    bad = cfg.replace(pg_dsn=f"postgresql://irkit@{closed_port}/web3marketplace")
    with pytest.raises(PostgresUnavailable, match="IRKIT_PG_DSN") as info:
        pg.connect(bad)
    assert closed_port in str(info.value)


def test_long_running_filters_by_a_bound_and_orders_as_asked(session: Session, irk: pg.PgSession):
    old, young = session(), session()
    _hold(old, "SELECT 1")
    time.sleep(1.2)
    _hold(young, "SELECT 2")
    time.sleep(0.1)
    frame = pg.long_running(irk, timedelta(seconds=0.05))
    pids = [p for p in frame.pid if p in (old.info.backend_pid, young.info.backend_pid)]
    assert pids == [old.info.backend_pid, young.info.backend_pid]
    newest = pg.long_running(irk, timedelta(seconds=0.05), order="newest")
    assert [p for p in newest.pid if p in pids] == pids[::-1]
    only_old = pg.long_running(irk, timedelta(seconds=1))
    assert old.info.backend_pid in set(only_old.pid) and young.info.backend_pid not in set(only_old.pid)
    assert set(only_old.state) <= {"active", "idle in transaction", "idle in transaction (aborted)"}


def test_activity_by_state_counts_the_application_sessions(session: Session, irk: pg.PgSession):
    held = session()
    _hold(held, "SELECT 1")
    frame = pg.activity_by_state(irk)
    idle_tx = frame[frame.state == "idle in transaction"]
    assert idle_tx.sessions.sum() >= 1
    assert list(frame.columns) == ["state", "wait_event_type", "sessions", "oldest_xact_seconds",
                                   "oldest_query_seconds"]


def test_table_activity_and_recent_orders(irk: pg.PgSession, pg_lab: PostgresLab):
    tables = pg.table_activity(irk, limit=2)
    assert len(tables) == 2
    assert tables.iloc[0].tablename == "orders"  # the seed wrote most rows there
    recent = pg.recent_rows(irk, window=timedelta(hours=1))
    with psycopg.connect(pg_lab.dsn) as conn:
        expected = conn.execute("SELECT count(*) FROM orders WHERE created_at > now() - interval '1 hour'").fetchone()
    assert recent.count == expected[0] > 0
    assert recent.newest is not None


def test_hostile_table_names_are_quoted_not_executed(irk: pg.PgSession, pg_lab: PostgresLab):
    with pytest.raises(PostgresError, match="does not exist"):
        pg.recent_rows(irk, table='orders; DROP TABLE orders; --', ts_column="created_at")
    with pytest.raises(PostgresError):
        pg.recent_rows(irk, table="orders", ts_column='created_at") OR (1=1')
    with psycopg.connect(pg_lab.dsn) as conn:
        assert conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchone() == (True,)


def test_saturation_counts_sessions_against_max_connections(session: Session, irk: pg.PgSession):
    before = pg.saturation(irk)
    extra = [session() for _ in range(3)]
    after = pg.saturation(irk)
    assert after.max_connections == 50
    assert after.sessions >= before.sessions + len(extra)
    assert 0 < after.ratio < 1


def test_readonly_role_from_the_readme_sees_other_sessions_queries(session: Session, pg_lab: PostgresLab,
                                                                   cfg: Config):
    with psycopg.connect(pg_lab.dsn, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS irkit_ro")
        admin.execute(pg.READONLY_ROLE_SQL.format(role="irkit_ro", password="pw", database="web3marketplace"))
    holder = session()
    _hold(holder, "UPDATE orders SET status = 'visible' WHERE id = 3")
    dsn = f"postgresql://irkit_ro@127.0.0.1:{pg_lab.port}/web3marketplace"
    with pg.connect(config.load(base=cfg, env={"IRKIT_PG_PASSWORD": "pw"}, pg_dsn=dsn)) as conn:
        frame = pg.long_running(conn, timedelta(0))
        assert "status = 'visible'" in " ".join(frame["query"])
        with pytest.raises(PostgresError):
            conn.query("BEGIN READ WRITE; DELETE FROM orders WHERE id = 3; COMMIT", what="bypass attempt")


def test_a_slow_query_does_not_stop_the_phase_asking_postgres_but_a_dead_server_does(
        cfg: Config, closed_port: str, tmp_path: Path):
    from irkit.phases.incident import Incident, Unavailable
    inc = Incident("INC-1", 2, tmp_path, cfg.replace(statement_timeout=1.0))
    slow = inc.attempt("slow", lambda: inc.pg.query("SELECT pg_sleep(3)", what="slow"))
    assert isinstance(slow, Unavailable) and "statement_timeout" in slow.error
    assert inc.attempt("next", lambda: inc.pg.query("SELECT 1 AS one", what="one"))["one"].tolist() == [1]  # asked again
    inc.close()
    dead = Incident("INC-1", 2, tmp_path / "dead", cfg.replace(pg_dsn=f"postgresql://irkit@{closed_port}/db"))
    first = dead.attempt("first", lambda: dead.pg.query("SELECT 1", what="one"))
    second = dead.attempt("second", lambda: dead.pg.query("SELECT 1", what="one"))
    assert isinstance(first, Unavailable) and "not asked again" not in first.error
    assert isinstance(second, Unavailable) and "not asked again yet, it did not answer earlier" in second.error
    assert second.kind == "PostgresUnavailable"


def test_a_source_left_alone_is_asked_again_after_retry_after(cfg: Config, closed_port: str, tmp_path: Path):
    from irkit.phases.incident import Incident, Unavailable
    dead = Incident("INC-1", 2, tmp_path, cfg.replace(pg_dsn=f"postgresql://irkit@{closed_port}/db",
                                                      retry_after=0.3))
    assert isinstance(dead.attempt("first", lambda: dead.pg.query("SELECT 1", what="one")), Unavailable)
    time.sleep(0.4)  # e.g. the responder fixed the port-forward and re-runs the cell
    again = dead.attempt("again", lambda: dead.pg.query("SELECT 1", what="one"))
    assert isinstance(again, Unavailable) and "not asked again" not in again.error  # it was asked


def test_sequential_scans_per_table_and_the_slowest_statements_when_pg_stat_statements_is_there(
        pg_lab: PostgresLab, irk: pg.PgSession, cfg: Config):
    with psycopg.connect(pg_lab.dsn, autocommit=True) as conn:
        before = int(conn.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'orders'").fetchone()[0])
        for _ in range(5):
            conn.execute("SELECT count(*) FROM orders WHERE status = 'refunded'")
    # A backend's counters reach the statistics when it goes idle or ends: this one has ended.
    scans = pg.seq_scans(irk)
    [orders] = scans[scans["tablename"] == "orders"].to_dict("records")
    assert orders["seq_scans"] >= before + 5 and orders["rows_per_scan"] > 0
    assert pg.top_statements(irk) is None  # this cluster has no pg_stat_statements: said, not an error
    with PostgresLab(settings=("shared_preload_libraries=pg_stat_statements",)) as lab:
        with psycopg.connect(lab.dsn, autocommit=True) as conn:
            for _ in range(3):
                conn.execute("SELECT count(*) FROM orders WHERE status = 'refunded' -- password='hunter2'")
        with pg.connect(cfg.replace(pg_dsn=lab.reader_dsn)) as reader:
            top = pg.top_statements(reader)
    assert top is not None
    mine = top[top["query"].str.contains("FROM orders WHERE status")]
    assert not mine.empty and int(mine["calls"].iloc[0]) >= 3
    assert "hunter2" not in " ".join(top["query"])


@pytest.mark.parametrize("conforming", ["on", "off"])
def test_a_name_in_a_printed_sql_literal_reads_back_whole_whatever_standard_conforming_strings(
        pg_lab: PostgresLab, conforming: str):
    from irkit.rules.plan import sql_literal
    hostile = "o'brien\\'; DROP TABLE orders; --\\"
    with psycopg.connect(pg_lab.dsn, autocommit=True) as conn:
        conn.execute(f"SET standard_conforming_strings = {conforming}")
        [(read,)] = conn.execute(f"SELECT {sql_literal(hostile)}".encode()).fetchall()
    assert read == hostile
