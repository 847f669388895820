#!/usr/bin/env bash
# Everything drillctl and its tests need on a fresh machine: a venv with the package and its
# dev tools, and the pinned toxiproxy-server. Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.drillctl-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing drillctl and its dev dependencies into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
bash scripts/install-system-packages.sh
bash scripts/install-toxiproxy.sh
