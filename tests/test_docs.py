"""The README stays true: every configuration key, variable and error is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from irkit import config, errors, pg

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize(("section", "name"), [(s, n) for s, n, _, _ in config.keys()])
def test_every_config_key_and_env_var_is_in_the_readme(section: str, name: str):
    assert f"`{name}` ([{section}])" in README
    assert f"`IRKIT_{name.upper()}`" in README


def test_secret_variables_are_documented():
    for variable in ("IRKIT_PG_PASSWORD", "IRKIT_PROM_TOKEN", "IRKIT_CONFIG"):
        assert variable in README


def test_every_error_class_is_in_the_readme_tree():
    for name, obj in vars(errors).items():
        if inspect.isclass(obj) and issubclass(obj, errors.IrkitError):
            assert name in README, name


def test_readonly_role_sql_is_the_one_the_tests_exercise():
    assert "GRANT pg_read_all_stats TO irkit;" in README
    assert pg.READONLY_ROLE_SQL.splitlines()[-1].format(role="irkit", database="web3marketplace") in README


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
