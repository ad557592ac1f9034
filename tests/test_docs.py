"""The README stays true: every configuration key, variable and error is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from irkit import config, errors
from irkit.sources import pg

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


def test_every_notebook_parameter_is_in_the_readme():
    from irkit import runner
    for phase in runner.PHASES:
        for name in runner.declared_parameters(phase):
            assert f"| `{name}` |" in README, name


def test_every_cli_command_and_option_is_in_the_readme():
    from irkit.cli import _parser
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert f"irkit {name}" in README
        for action in command._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in README, option


def test_committed_notebooks_have_no_outputs():
    import json
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), path
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), path


def test_the_first_command_runs_the_lock_contention_drill():
    commands = README.split("## The two commands", 1)[1].split("```")[1].strip().splitlines()
    assert commands[0].startswith("make drill") and commands[1].startswith("make test")
    makefile = (ROOT / "Makefile").read_text()
    assert "irkit drill lock-contention" in makefile.split("\ndrill:", 1)[1].split("\n\n")[0]


def test_every_scenario_key_is_in_the_readme_format_table():
    from irkit.drill import KEYS
    table = README.split("### Writing a scenario", 1)[1].split("\n\n#", 1)[0]
    for keys in KEYS.values():
        for key in keys:
            assert f"`{key}`" in table or f"[{key}]" in table or f"[[{key}]]" in table, key


def test_every_record_key_is_in_the_readme_schema():
    from irkit.evidence.records import KEYS
    for key in KEYS.values():
        assert f"| `{key.name}` | {key.phase} | {key.doc} |" in README, key.name


def test_the_phase_table_is_what_the_notebooks_are():
    from irkit.phases import PHASES
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names == [p.notebook for p in PHASES]
    for phase in PHASES:
        source = phase.path.read_text()
        assert f"from irkit.phases import {phase.module}" in source
        assert f"# Phase {phase.number}: {phase.title}" in source


def test_every_kind_of_secret_removed_is_in_the_readme():
    from irkit.redaction import DOCUMENTED
    for pattern in DOCUMENTED:
        assert f"| `[redacted: {pattern.name}]` | {pattern.example} |" in README, pattern.example
