"""The layout shows the architecture: each room imports only from the floors below it (README: Layout)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "irkit"
FLOOR = {"errors": 0, "config": 0, "limits": 0, "escaping": 0, "redaction": 0, "sources": 1, "rules": 1, "evidence": 2, "display": 2,
         "actions": 2, "comms": 2, "phases": 3, "runner": 4, "cli": 4, "serve": 4, "drill": 5, "lab": 5}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "irkit" else None


def _module_level_imports(path: Path) -> list[str]:
    """irkit modules imported at import time (not inside functions, not under TYPE_CHECKING)."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else ():
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("irkit"):
                found += [f"{sub.module}.{alias.name}" if sub.module == "irkit" else sub.module for alias in sub.names]
            elif isinstance(sub, ast.Import):
                found += [alias.name for alias in sub.names if alias.name.startswith("irkit")]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_room_imports_only_from_the_floors_below_it(path: Path):
    room = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    assert room in FLOOR, f"{room} has no floor: add it to the README's layout and to FLOOR"
    for imported in _module_level_imports(path):
        other = _room(imported)
        if other is None or other == room:
            continue
        assert FLOOR[other] <= FLOOR[room], f"{room} (floor {FLOOR[room]}) imports {imported} (floor {FLOOR[other]})"
        assert not (room == "rules" and other != "rules" and FLOOR[other] > 0), f"rules must stay pure: {imported}"


def test_the_rules_load_no_client():
    code = ("import sys, irkit.rules.diagnosis, irkit.rules.plan, irkit.rules.severity, irkit.rules.locks;"
            "print(sorted(m for m in ('psycopg', 'kubernetes', 'papermill', 'requests', 'prometheus_api_client')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
