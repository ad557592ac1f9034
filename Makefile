# The README's commands. Each installs what it needs first (scripts/install.sh is idempotent).
VENV := .venv/bin

.PHONY: install drill check test lint bench

.venv/.installed: pyproject.toml scripts/install.sh
	./scripts/install.sh
	touch $@

install: .venv/.installed

# The first command: a self-contained lock-contention incident, run through all five phases;
# the evidence stays in outputs/DRILL-lock-contention/.
drill: install
	$(VENV)/irkit drill lock-contention --check

lint: install
	$(VENV)/ruff check irkit tests scripts bench
	$(VENV)/mypy

# The quick loop (under a minute): lint, types, and the tests that need no server, drill, browser or subprocess.
check: lint
	$(VENV)/python -m pytest -m "not slow"

test: lint
	$(VENV)/python -m pytest

# The budgets of the issues, measured and printed (not asserted): drill, run time against its floor, evidence
# size; then the investigation at scale (5,000 pods, 20,000 events, 500 backends, 24 h of 50 services).
bench: install
	$(VENV)/python bench/budgets.py
	$(VENV)/python bench/scale.py
