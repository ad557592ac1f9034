"""The drill's PostgreSQL lets no one in without the generated password, and scenario SQL is not superuser SQL."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from irkit.errors import DrillError
from irkit.lab.postgres import PostgresLab


def test_no_connection_without_the_password(pg_lab: PostgresLab):
    for dsn in (f"postgresql://postgres@127.0.0.1:{pg_lab.port}/web3marketplace",  # TCP, no passfile
                f"host={pg_lab._root} port={pg_lab.port} user=postgres dbname=web3marketplace"):  # Unix socket
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(dsn, connect_timeout=5, passfile="/nonexistent").close()


def test_the_passfile_is_private_and_no_dsn_carries_a_password(pg_lab: PostgresLab):
    assert stat.S_IMODE(os.stat(pg_lab.passfile).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(pg_lab.passfile).parent).st_mode) == 0o700
    for dsn in (pg_lab.dsn, pg_lab.app_dsn, pg_lab.reader_dsn):
        assert "passfile=" in dsn
        assert not any(pw in dsn for pw in pg_lab._passwords.values())


def test_the_printed_psql_line_works(pg_lab: PostgresLab):
    psql = shutil.which("psql")
    assert psql, "psql is installed with postgresql-15"
    result = subprocess.run([psql, pg_lab.dsn, "-Atc", "SELECT current_user"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "postgres", result.stderr


def test_scenario_sessions_run_as_an_ordinary_role(pg_lab: PostgresLab, tmp_path: Path):
    marker = tmp_path / "pwned"
    with pytest.raises(DrillError, match="permission denied|must be superuser|pg_execute_server_program"):
        pg_lab.hold([f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'"])
    pg_lab.release()
    assert not marker.exists()
    with psycopg.connect(pg_lab.app_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper, (SELECT tableowner FROM pg_tables WHERE tablename = 'orders') "
                           "FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False, "marketplace")


def test_the_investigation_role_reads_but_cannot_write(pg_lab: PostgresLab):
    with psycopg.connect(pg_lab.reader_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM orders WHERE id = 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("BEGIN READ WRITE; DELETE FROM orders WHERE id = 1")


def test_a_steady_workload_shows_in_pg_stat_statements_and_stops_with_the_lab():
    with PostgresLab(settings=("shared_preload_libraries=pg_stat_statements",)) as lab:
        lookup = "SELECT id FROM orders WHERE user_id = 7 AND status = 'pending'"  # no index on user_id
        workload = lab.hold([lookup], application="order-lookups", every=0.05)
        assert workload.steady
        deadline = time.monotonic() + 10
        while workload.rounds < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        with psycopg.connect(lab.reader_dsn, autocommit=True) as conn:  # the investigation's role reads it
            calls = conn.execute("SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE %s",
                                 ("SELECT id FROM orders WHERE user_id%",)).fetchone()[0]
            scans = 0
            while scans < 20 and time.monotonic() < deadline:  # a busy backend flushes its table counters ~1/s
                scans = conn.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'orders'").fetchone()[0]
                time.sleep(0.2)
        assert calls >= 20 and scans >= 20  # every lookup a sequential scan
        assert not workload.finished  # it keeps going until the lab stops it
    assert workload.finished


def test_a_rotated_password_refuses_what_still_holds_the_old_one(pg_lab: PostgresLab):
    stale = pg_lab.rotate_password("marketplace")
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "marketplace"'):
        psycopg.connect(stale, connect_timeout=5)
    with psycopg.connect(pg_lab.app_dsn, connect_timeout=5) as conn:  # the lab's passfile holds the new one
        assert conn.execute("SELECT current_user").fetchone() == ("marketplace",)
    with psycopg.connect(pg_lab.reader_dsn, connect_timeout=5) as conn:  # the other roles are untouched
        assert conn.execute("SELECT current_user").fetchone() == ("irkit",)
