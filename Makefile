# The README's commands. Each installs what it needs first (scripts/install.sh is idempotent).
VENV := .venv/bin

.PHONY: install test lint

.venv/.installed: pyproject.toml scripts/install.sh
	./scripts/install.sh
	touch $@

install: .venv/.installed

lint: install
	$(VENV)/ruff check irkit tests scripts
	$(VENV)/mypy

test: lint
	$(VENV)/python -m pytest


