"""A throwaway PostgreSQL cluster seeded with the marketplace schema.

initdb and pg_ctl refuse to run as root, so as root the cluster belongs to the
``postgres`` user and its commands run through ``runuser``.

Nobody else on the machine gets in: every connection, TCP or Unix socket, needs a
password (scram-sha-256). The passwords are generated per cluster and handed over in a
libpq passfile in a private (0700) directory, named by ``passfile=`` in each DSN, so a
DSN can be printed, written into ``irkit.toml`` or pasted into ``psql`` without carrying
a secret. Four roles:

- ``postgres``, the superuser: the lab's own administration (``dsn``);
- ``marketplace``, an ordinary role that owns the marketplace tables: the application
  and the scenario's sessions (``app_dsn``), so a scenario's SQL cannot run
  ``COPY ... TO PROGRAM`` or anything else only a superuser may;
- ``irkit``, the read-only role of docs/configuration.md plus SELECT on the orders table (``reader_dsn``):
  what a drill's investigation connects as;
- ``responder``, pg_signal_backend and pg_read_all_stats (``responder_dsn``): what irkit's
  database actions connect as (``pg_action_dsn``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psycopg

from irkit.errors import DrillError
from irkit.lab import find_binary, free_port

__all__ = ["MARKETPLACE_SCHEMA", "HeldSession", "PostgresLab"]

MARKETPLACE_SCHEMA = """
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    wallet_address text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    price_eth numeric(18, 8) NOT NULL,
    stock int NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id),
    product_id bigint NOT NULL REFERENCES products(id),
    status text NOT NULL DEFAULT 'pending',
    amount_eth numeric(18, 8) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_created_at ON orders (created_at);
"""


_SEED = (
    """INSERT INTO users (email, wallet_address, created_at)
       SELECT 'user' || g || '@example.test', '0x' || md5(g::text),
              now() - interval '30 days' + g * interval '1 minute'
       FROM generate_series(1, %(users)s) g""",
    """INSERT INTO products (name, price_eth, stock)
       SELECT 'NFT #' || g, round((0.01 + (g %% 97) / 100.0)::numeric, 8), 10 + g %% 50
       FROM generate_series(1, %(products)s) g""",
    # Orders spread evenly over the last spread_hours: "orders in the last hour" is non-zero.
    """INSERT INTO orders (user_id, product_id, status, amount_eth, created_at)
       SELECT 1 + g %% %(users)s, 1 + g %% %(products)s,
              CASE WHEN g %% 10 = 0 THEN 'pending' ELSE 'paid' END, 0.05,
              now() - (g::float8 / %(orders)s) * %(spread)s::interval
       FROM generate_series(1, %(orders)s) g""",
    "ANALYZE",
)


class HeldSession:
    """A session kept open on a thread of its own: idle in its transaction, waiting on a lock, or running."""

    def __init__(self, dsn: str, statements: tuple[str, ...], application: str, every: float | None = None) -> None:
        # dsn: the role the session runs as (the lab's app_dsn: an ordinary role, never the superuser)
        # every: run the statements again and again, this many seconds apart (a steady workload), until closed
        self.statements = statements
        self.every = every
        self.error: BaseException | None = None
        self.done = threading.Event()  # every statement returned (a steady workload: it stopped)
        self.rounds = 0
        self._ran = threading.Event()  # the statements ran once
        self._stop = threading.Event()
        self._conn = psycopg.connect(dsn, autocommit=True, application_name=application, connect_timeout=5)
        self.pid = self._conn.info.backend_pid
        self._thread = threading.Thread(target=self._run, name=f"held-session-{self.pid}", daemon=True)
        self._thread.start()

    @property
    def steady(self) -> bool:
        """A workload that keeps running, not a session that holds or waits: never the drill's cause."""
        return self.every is not None

    def _run(self) -> None:
        try:
            while True:
                for statement in self.statements:
                    self._conn.execute(statement.encode())  # bytes: no client-side parameter parsing
                self.rounds += 1
                self._ran.set()
                if self.every is None or self._stop.wait(self.every):
                    return
        except psycopg.Error as exc:
            self.error = exc
        finally:
            self.done.set()

    def settle(self, admin: psycopg.Connection[Any], timeout: float = 10.0) -> None:
        """Wait until every statement ran, or the session waits on a lock, or runs its last statement."""
        deadline = time.monotonic() + timeout
        last = self.statements[-1].strip()
        if self.steady:  # a workload has settled once it ran its statements once
            if not self._ran.wait(timeout) and not self.done.is_set():
                raise DrillError(f"the workload did not run its statements once within {timeout:.0f} s")
            if self.error is not None:
                raise DrillError(str(self.error).strip())
            return
        while time.monotonic() < deadline:
            if self.done.wait(0.02):
                if self.error is not None:
                    raise DrillError(str(self.error).strip())
                return
            row = admin.execute("SELECT state, wait_event_type, query FROM pg_stat_activity WHERE pid = %s",
                                (self.pid,)).fetchone()
            if row and row[0] == "active" and (row[1] == "Lock" or row[2].strip() == last):
                return
        raise DrillError(f"the session did not settle within {timeout:.0f} s: a statement may wait on a lock, "
                         "but only the last one may run long")

    @property
    def finished(self) -> bool:
        """Every statement returned, or the session was ended (terminated, cancelled)."""
        return self.done.is_set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        # Never close a connection another thread is executing on (libpq is not safe for that);
        # psycopg's connection lock is free once the statement returned.
        if self._conn.lock.acquire(timeout=5):
            try:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
            finally:
                self._conn.lock.release()


def _quietly(conn: psycopg.Connection[Any], statement: str) -> None:
    with contextlib.suppress(psycopg.errors.DeadlockDetected):
        conn.execute(statement.encode())


def _bindir() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = find_binary("initdb", "postgresql", tuple(candidates))
    return str(Path(initdb).parent)


@dataclass
class PostgresLab:
    """A running throwaway cluster: ``dsn`` (superuser), ``app_dsn`` (table owner), ``reader_dsn`` (irkit)."""

    database: str = "web3marketplace"
    users: int = 200
    products: int = 100
    orders: int = 2000
    orders_spread_hours: float = 3.0
    settings: tuple[str, ...] = ()
    port: int = 0
    datadir: str = ""
    _held: list[HeldSession] = field(default_factory=list, repr=False)

    def start(self) -> PostgresLab:
        bindir = _bindir()
        self._as_root = os.geteuid() == 0
        self._root = tempfile.mkdtemp(prefix="irkit-pg-")
        self._private = tempfile.mkdtemp(prefix="irkit-pgpass-")  # 0700, ours: the passfile lives here
        self.datadir = os.path.join(self._root, "data")
        os.chmod(self._root, 0o755)
        if self._as_root:
            shutil.chown(self._root, "postgres", "postgres")
        self.port = free_port()
        self._passwords = {role: secrets.token_urlsafe(24) for role in ("postgres", "marketplace", "irkit", "responder")}
        self.passfile = os.path.join(self._private, "pgpass")
        with open(os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            # Any host and port: the same cluster reached through a port-forward or a test's proxy.
            fh.writelines(f"*:*:*:{role}:{pw}\n" for role, pw in self._passwords.items())
        pwfile = os.path.join(self._root, "pwfile")  # initdb reads the superuser's password here, once
        with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(self._passwords["postgres"] + "\n")
        if self._as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._pg_ctl = os.path.join(bindir, "pg_ctl")
        try:
            self._run([os.path.join(bindir, "initdb"), "-D", self.datadir, "-U", "postgres",
                       "-A", "scram-sha-256", f"--pwfile={pwfile}",
                       "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
        finally:
            os.unlink(pwfile)
        options = " ".join([
            f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self._root}",
            "-c unix_socket_permissions=0700",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            *(f"-c {s}" for s in self.settings),
        ])
        self._options = options
        self.resume()
        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            for role in ("marketplace", "irkit", "responder"):
                # The password travels as a literal inside DDL (no parameters there); it is generated,
                # URL-safe base64, and never logged.
                conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{self._passwords[role]}' NOSUPERUSER")
            conn.execute(f'CREATE DATABASE "{self.database}" OWNER marketplace')
            conn.execute("GRANT pg_read_all_stats TO irkit")
            conn.execute("ALTER ROLE irkit SET default_transaction_read_only = on")
            # What docs/actions.md asks of pg_action_dsn: signal other sessions, read them, nothing else.
            conn.execute("GRANT pg_signal_backend, pg_read_all_stats TO responder")
        if any("pg_stat_statements" in setting for setting in self.settings):  # loaded: its view, in the database
            with psycopg.connect(self.admin_dsn(self.database), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        with psycopg.connect(self.app_dsn, autocommit=True) as conn:
            conn.execute(MARKETPLACE_SCHEMA)
            params = {"users": self.users, "products": self.products, "orders": self.orders,
                      "spread": timedelta(hours=self.orders_spread_hours)}
            for statement in _SEED:
                conn.execute(statement, params)
            conn.execute("GRANT SELECT ON orders TO irkit")
        return self

    @property
    def held(self) -> list[HeldSession]:
        return list(self._held)

    def hold(self, statements: tuple[str, ...] | list[str], application: str = "backend",
             every: float | None = None) -> HeldSession:
        """Open a session that runs ``statements`` in order and stays (idle in transaction, or blocked); with
        ``every``, one that runs them again and again that many seconds apart (a steady workload)."""
        held = HeldSession(self.app_dsn, tuple(statements), application, every)
        self._held.append(held)
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as admin:
            held.settle(admin)
        return held

    def deadlock(self) -> None:
        """Cause one real deadlock, which PostgreSQL detects and breaks (pg_stat_database.deadlocks + 1)."""
        first = psycopg.connect(self.app_dsn, autocommit=True, application_name="backend", connect_timeout=5)
        second = psycopg.connect(self.app_dsn, autocommit=True, application_name="backend", connect_timeout=5)
        try:
            first.execute("BEGIN")
            second.execute("BEGIN")
            first.execute("UPDATE orders SET status = status WHERE id = 10")
            second.execute("UPDATE orders SET status = status WHERE id = 11")
            waiter = threading.Thread(target=lambda: _quietly(first, "UPDATE orders SET status = status WHERE id = 11"))
            waiter.start()
            time.sleep(0.2)
            _quietly(second, "UPDATE orders SET status = status WHERE id = 10")  # one of the two is the victim
            waiter.join(10)
        finally:
            for conn in (first, second):
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                conn.close()

    def release(self) -> None:
        """End every held session: their locks go, blocked statements return."""
        held, self._held = self._held, []
        if held:
            with contextlib.suppress(psycopg.Error), psycopg.connect(self.dsn, autocommit=True,
                                                                     connect_timeout=5) as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", ([h.pid for h in held],))
        for session in held:
            session.close()

    def _run(self, argv: list[str]) -> None:
        if self._as_root:
            argv = [find_binary("runuser", "util-linux"), "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise DrillError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")

    def _dsn(self, role: str, database: str) -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}?passfile={quote(self.passfile, safe='/')}"

    def admin_dsn(self, database: str) -> str:
        """The superuser on ``database``."""
        return self._dsn("postgres", database)

    @property
    def dsn(self) -> str:
        """The superuser on the marketplace database: the lab's administration and the tests."""
        return self.admin_dsn(self.database)

    @property
    def app_dsn(self) -> str:
        """The ``marketplace`` role, owner of the tables: the application and scenario sessions."""
        return self._dsn("marketplace", self.database)

    @property
    def responder_dsn(self) -> str:
        """The ``responder`` role (pg_signal_backend): what irkit's database actions connect as."""
        return self._dsn("responder", self.database)

    @property
    def reader_dsn(self) -> str:
        """The read-only ``irkit`` role: what a drill's investigation connects as."""
        return self._dsn("irkit", self.database)

    def rotate_password(self, role: str = "marketplace") -> str:
        """Give ``role`` a new password (the lab's passfile follows), as a rotation in a secret store does; the
        DSN of a passfile holding the old one, for what still uses the old credentials, is returned: its
        connections fail with PostgreSQL's ``password authentication failed for user``."""
        stale = os.path.join(self._private, f"pgpass-before-rotation-{role}")
        with open(os.open(stale, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.writelines(f"*:*:*:{r}:{pw}\n" for r, pw in self._passwords.items())
        self._passwords[role] = secrets.token_urlsafe(24)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} PASSWORD '{self._passwords[role]}'")  # generated, URL-safe: a literal
        fresh = f"{self.passfile}.new"
        with open(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.writelines(f"*:*:*:{r}:{pw}\n" for r, pw in self._passwords.items())
        os.replace(fresh, self.passfile)
        return self._dsn(role, self.database).replace(quote(self.passfile, safe="/"), quote(stale, safe="/"))

    def resume(self) -> None:
        """Start the server (again, after :meth:`pause`): the drill's database pod coming back."""
        self._run([self._pg_ctl, "-D", self.datadir, "-o", self._options, "-l", os.path.join(self._root, "log"),
                   "-w", "-t", "30", "start"])

    def pause(self) -> None:
        """Stop the server, keeping its data: the drill's database going down.

        A fast (clean) shutdown: the lab runs with synchronous_commit off, and an immediate one would
        lose the last commits (the roles' grants among them) when the server starts again."""
        self._run([self._pg_ctl, "-D", self.datadir, "-m", "fast", "-w", "-t", "20", "stop"])

    def stop(self) -> None:
        if not self.datadir:
            return
        self.release()
        try:
            self._run([self._pg_ctl, "-D", self.datadir, "-m", "immediate", "-w", "-t", "20", "stop"])
        except (DrillError, subprocess.TimeoutExpired):
            pass  # already gone; the directory goes anyway
        shutil.rmtree(self._root, ignore_errors=True)
        shutil.rmtree(self._private, ignore_errors=True)
        self.datadir = ""

    def __enter__(self) -> PostgresLab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
