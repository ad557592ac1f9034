"""Rewrite the generated tables of docs/ from their source in irkit, and irkit.example.toml (run after adding a
configuration key, a record or an action; commit the result). tests/test_docs.py checks each page holds exactly
these tables, and tests/test_config.py the example file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs"


def configuration() -> str:
    from irkit import config

    def shown(default: object) -> str:
        return ", ".join(map(str, default)) if isinstance(default, tuple) else str(default)
    return "".join(f"| `{name}` ([{section}]) | `IRKIT_{name.upper()}` | `{shown(default)}` | {doc} |\n"
                   for section, name, doc, default in config.keys())


def records() -> str:
    from irkit.evidence.records import KEYS
    return "".join(f"| `{k.name}` | {k.phase} | {k.doc} |\n" for k in KEYS.values())


def actions() -> str:
    from irkit.playbook import ACTIONS
    return "".join(f"| `{a.name}` | {a.system} | {a.through} | {a.undo} |\n" for a in ACTIONS.values())


def redaction() -> str:
    from irkit.redaction import DOCUMENTED
    return "".join(f"| `[redacted: {p.name}]` | {p.example} |\n" for p in DOCUMENTED)


def kinds() -> str:
    from irkit.rules.kinds import KINDS
    return "".join(f"| `{kind.value}` | {'cause' if info.cause else 'symptom'} | {info.doc} |\n"
                   for kind, info in sorted(KINDS.items(), key=lambda item: item[1].order))


# page -> (the table's header, ending in its |---| line; the rows below it, up to the blank line)
TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "configuration.md": ("| key (`irkit.toml` section) | environment variable | default | meaning |\n|---|---|---|---|\n",
                         configuration),
    "records.md": ("| record | phase | holds |\n|---|---|---|\n", records),
    "actions.md": ("| action | system | through | undo |\n|---|---|---|---|\n", actions),
    "trust.md": ("| removed as | what it recognises |\n|---|---|\n", redaction),
    "runbook.md": ("| kind | cause or symptom | what it is |\n|---|---|---|\n", kinds),
}


def table(text: str, header: str) -> str:
    """The rows of the table under ``header`` in ``text``, each line ending in a newline."""
    return text.split(header, 1)[1].split("\n\n", 1)[0] + "\n"


def rewrite(page: str) -> None:
    header, rows = TABLES[page]
    path = DOCS / page
    text = path.read_text()
    before, rest = text.split(header, 1)
    after = rest.split("\n\n", 1)[1] if "\n\n" in rest else ""
    path.write_text(before + header + rows() + ("\n" + after if after else ""))


if __name__ == "__main__":
    from irkit import config
    for name in TABLES:
        rewrite(name)
    (DOCS.parent / "irkit.example.toml").write_text(config.starter_toml())
