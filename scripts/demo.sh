#!/usr/bin/env bash
# Create or update .venv, install the project, then run the main job on the embedded
# synthetic dataset: synthesise -> convert -> train -> evaluate -> export -> predict.
# Extra arguments go to `xray-seg demo` (e.g. --out runs/demo2 --set epochs=2).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
exec xray-seg demo "$@"
