"""The drill's PostgreSQL lets no one in without the generated password, and scenario SQL is not superuser SQL."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
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
