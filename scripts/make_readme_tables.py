"""Rewrite the README's records table from irkit/evidence/records.py (run after adding a record; commit the result).

tests/test_docs.py checks the README holds exactly these rows.
"""

from __future__ import annotations

from pathlib import Path

from irkit.evidence.records import KEYS

README = Path(__file__).parent.parent / "README.md"
START, END = "| record | phase | holds |", "`irkit verify` checks the run against its manifest"


def records_table() -> str:
    return "".join([f"{START}\n|---|---|---|\n", *(f"| `{k.name}` | {k.phase} | {k.doc} |\n" for k in KEYS.values())])


if __name__ == "__main__":
    text = README.read_text()
    before, rest = text.split(START, 1)
    README.write_text(before + records_table() + "\n" + END + rest.split(END, 1)[1])
