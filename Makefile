# The README's commands. Each installs what it needs first (scripts/install.sh is idempotent).
VENV := .venv/bin

.PHONY: install drill test lint

.venv/.installed: pyproject.toml scripts/install.sh
	./scripts/install.sh
	touch $@

install: .venv/.installed

# The first command: a self-contained lock-contention incident, run through all five phases;
# the evidence stays in outputs/DRILL-lock-contention/.
drill: install
	$(VENV)/irkit drill lock-contention --check

lint: install
	$(VENV)/ruff check irkit tests scripts
	$(VENV)/mypy

test: lint
	$(VENV)/python -m pytest


