#!/usr/bin/env bash
# Install everything irkit, its drill and its tests need on a clean Debian machine:
# system packages (PostgreSQL 15, Prometheus, Redis, Chromium for chart images and
# the report test), then a virtualenv with irkit installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postgresql-15 prometheus prometheus-alertmanager redis-server chromium)
# kubectl for the tests that paste irkit's printed commands into it against the drill's API emulator:
# the machine's own if it has one, else Debian's.
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
missing=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "irkit needs: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian prometheus package starts a system service; irkit starts its own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus prometheus-alertmanager redis-server 2>/dev/null || true; fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# The evidence-in-S3 tests: the s3 extra and a real S3 server (moto's), added to the resolved environment (see
# pyproject.toml: resolved in one step with the rest, pip backtracks for many minutes).
.venv/bin/python -m pip install -q -e '.[s3]' 'moto[server]>=5.0'
