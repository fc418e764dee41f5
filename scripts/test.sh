#!/usr/bin/env bash
# Create or update .venv, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
# Two workers (pytest-xdist): most test time is single-threaded graph building.
exec python -m pytest -q -n 2 --dist loadfile "$@"
