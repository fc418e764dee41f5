#!/usr/bin/env bash
# Create or update .venv, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
exec python -m pytest -q "$@"
