"""The README and the reference in docs/ stay true: every configuration key, variable, error, record, scenario key,
action and CLI option is documented where the README says it is, and generated tables equal their source."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from irkit import config, errors
from irkit.sources import pg

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def _doc(name: str) -> str:
    return (DOCS / name).read_text()


def test_every_reference_page_is_linked_from_the_readme_and_every_link_resolves():
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert pages, "docs/ holds the reference"
    for page in pages:
        assert f"(docs/{page})" in README, page
    import re
    for source, text in [("README.md", README), *((f"docs/{p}", _doc(p)) for p in pages)]:
        base = ROOT if source == "README.md" else DOCS
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", text):
            assert (base / target).is_file(), f"{source} links {target}"


@pytest.mark.parametrize(("section", "name"), [(s, n) for s, n, _, _ in config.keys()])
def test_every_config_key_and_env_var_is_in_the_configuration_page(section: str, name: str):
    assert f"`{name}` ([{section}])" in _doc("configuration.md")
    assert f"`IRKIT_{name.upper()}`" in _doc("configuration.md")


def test_secret_variables_are_documented():
    for variable in ("IRKIT_PG_PASSWORD", "IRKIT_PROM_TOKEN", "IRKIT_CONFIG", "IRKIT_EVIDENCE_KEY",
                     "IRKIT_SERVE_TOKEN", "IRKIT_SLACK_WEBHOOK_URL", "IRKIT_STATUSPAGE_TOKEN", "IRKIT_SMTP_PASSWORD"):
        assert variable in _doc("configuration.md") or variable in _doc("serve.md"), variable


def test_every_error_class_is_in_the_error_tree():
    tree = _doc("errors.md").split("## The error tree", 1)[1]
    for name, obj in vars(errors).items():
        if inspect.isclass(obj) and issubclass(obj, errors.IrkitError):
            assert f" {name} " in tree or f" {name}\n" in tree, name


def test_the_exit_codes_are_the_same_in_the_readme_and_the_errors_page():
    table = README.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    assert table in _doc("errors.md")
    from irkit import cli
    for code in (cli.OK, cli.FAILED, cli.BAD_INPUT, cli.INCONCLUSIVE, cli.NOT_RECOVERED, cli.INTERNAL, cli.INTERRUPTED):
        assert f"\n| {code} | " in table, code


def test_readonly_role_sql_is_the_one_the_tests_exercise():
    assert "GRANT pg_read_all_stats TO irkit;" in _doc("configuration.md")
    last = pg.READONLY_ROLE_SQL.splitlines()[-1].format(role="irkit", database="web3marketplace")
    assert last in _doc("configuration.md")


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_notebook_parameter_is_in_the_readme():
    from irkit import playbook, runner
    for phase in playbook.NUMBERS:
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


def test_every_scenario_key_is_in_the_format_table():
    from irkit.drill import KEYS
    table = _doc("drills.md").split("## Writing a scenario", 1)[1].split("\n\n#", 1)[0]
    for keys in KEYS.values():
        for key in keys:
            assert f"`{key}`" in table or f"[{key}]" in table or f"[[{key}]]" in table, key


def test_the_phase_table_is_what_the_notebooks_are():
    from irkit.phases import PHASES
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names == [p.notebook for p in PHASES]
    for phase in PHASES:
        source = phase.path.read_text()
        assert f"from irkit.phases import {phase.module}" in source
        assert f"# Phase {phase.number}: {phase.title}" in source


def test_every_built_in_scenario_is_in_the_drills_table():
    from irkit.drill.scenario import scenarios
    text = _doc("drills.md")
    for name in scenarios():
        assert f"\n| `{name}` | " in text, name


def test_no_session_or_issue_numbers_in_the_code_or_the_docs():
    import re
    texts = [README, *(p.read_text() for p in DOCS.glob("*.md")),
             *(p.read_text() for p in (ROOT / "irkit").rglob("*.py"))]
    for text in texts:
        assert not re.search(r"\b(session|issue) \d+\b", text, re.IGNORECASE)


def _tables():  # scripts/make_doc_tables.py: what generates the tables generates the expectation
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_doc_tables", ROOT / "scripts" / "make_doc_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["configuration.md", "records.md", "actions.md", "trust.md", "runbook.md"])
def test_each_generated_table_is_what_its_source_says(page: str):
    # configuration keys, records, the action catalogue, the kinds of secret removed: run
    # scripts/make_doc_tables.py after changing one
    tables = _tables()
    header, rows = tables.TABLES[page]
    assert tables.table(_doc(page), header) == rows()

