#!/usr/bin/env bash
# What drillctl needs on a fresh machine, in two sets (usage: setup.sh [demo|test], default test):
#   demo: a venv with drillctl, libfaketime and the pinned toxiproxy-server: what `make demo` needs;
#   test: the same venv with the dev tools (pytest, ruff, mypy, hypothesis, ...) and the Debian
#         packages the tests use. The tests' own fixtures build the rest (Helm, a Pushgateway, the
#         Kubernetes control plane) the first time they need it.
# Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:-test}
# The dev install includes the plain one, so a venv set up for the tests serves the demo too.
dev_stamp=.venv/.drillctl-installed-dev
case "$profile" in
  demo) extras="" stamp=.venv/.drillctl-installed ;;
  test) extras="[dev]" stamp=$dev_stamp ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$python" -m venv .venv
fi
up_to_date() { [ -f "$1" ] && ! [ pyproject.toml -nt "$1" ]; }
if ! up_to_date "$stamp" && ! up_to_date "$dev_stamp"; then
  echo "setup: installing drillctl${extras:+ and its dev dependencies} into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".$extras"
  touch "$stamp"
fi
bash scripts/install-system-packages.sh "$profile"
bash scripts/install-toxiproxy.sh
