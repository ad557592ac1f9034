"""The layout shows the architecture: each room imports only from the floors below it, inside functions too, and
no module imports itself back round a circle (README: Layout)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "irkit"
FLOOR = {"errors": 0, "config": 0, "limits": 0, "escaping": 0, "redaction": 0, "playbook": 0, "sources": 1,
         "rules": 1, "evidence": 2, "display": 2, "actions": 2, "comms": 2, "phases": 3, "runner": 4, "serve": 4,
         "jupyter": 4,
         "drill": 5, "lab": 5,
         # The command line is the top floor: `irkit drill` and `irkit serve` are commands of it (it imports each
         # room inside the function that needs it, so `irkit verify` does not pay for papermill or the lab).
         "cli": 6}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "irkit" else None


def _imports(path: Path, *, type_checking: bool = False) -> list[str]:
    """irkit modules imported anywhere in the file: at module level and inside functions and classes alike
    (``TYPE_CHECKING`` blocks only with ``type_checking``: annotations, not a run's imports)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(sub) for sub in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("irkit"):
            found += [f"{node.module}.{alias.name}" if node.module == "irkit" else node.module for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("irkit")]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_room_imports_only_from_the_floors_below_it_inside_functions_too(path: Path):
    room = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    assert room in FLOOR, f"{room} has no floor: add it to the README's layout and to FLOOR"
    for imported in _imports(path):
        other = _room(imported)
        if other is None or other == room:
            continue
        assert FLOOR[other] <= FLOOR[room], f"{room} (floor {FLOOR[room]}) imports {imported} (floor {FLOOR[other]})"
        assert not (room == "rules" and other != "rules" and FLOOR[other] > 0), f"rules must stay pure: {imported}"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_itself_back_round_a_circle():
    """Imports of every kind, annotations included: a circle through type imports is one design knot too."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m if m in modules else m.rsplit(".", 1)[0] for m in _imports(path, type_checking=True)}
             & set(modules) - {name} for name, path in modules.items()}
    # A package's __init__ re-exporting its own modules is its surface, not a circle: leave those arrows out.
    graph = {name: {m for m in targets if not m.startswith(name + ".")} for name, targets in graph.items()}
    try:
        TopologicalSorter(graph).prepare()  # the standard library finds a circle if there is one
    except CycleError as exc:
        pytest.fail("an import circle: " + " -> ".join(exc.args[1]))


def test_the_rules_load_no_client():
    code = ("import sys, irkit.rules.diagnosis, irkit.rules.plan, irkit.rules.severity, irkit.rules.locks;"
            "print(sorted(m for m in ('psycopg', 'kubernetes', 'papermill', 'requests', 'prometheus_api_client')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# The names of a run directory's files; evidence/rundir.py spells them, no other module does.
RUN_FILES = ("run.json", "summary.json", "report.html", "postmortem.md", "timeline.json", "lock-history.json",
             "drill.json", "manifest.json", "phase-{", "postmortem-")


def test_a_run_directorys_file_names_are_spelled_in_one_module():
    spelled = []
    for path in MODULES:
        if path == PACKAGE / "evidence" / "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            texts = [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []
            for text in texts:
                if any(re.match(rf"^(.*/)?{re.escape(name)}", text) and len(text) < 40 for name in RUN_FILES):
                    spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {text!r}")
    assert spelled == []
