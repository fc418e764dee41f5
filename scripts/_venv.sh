# Sourced by demo.sh and test.sh: create or update .venv so that it matches
# requirements.txt and setup.cfg. Idempotent: a second run installs nothing
# unless one of those files changed (their digest is stamped inside .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  echo "[venv] creating $VENV with $("$PY" --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.xray-seg-installed"
WANT="$(cat "$ROOT/requirements.txt" "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[venv] installing requirements (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT"
  # The PyTorch backend checks (tests/backends) run where the CPU wheel is on local disk;
  # PyPI's default torch wheel pulls in gigabytes of CUDA libraries, so it is not fetched.
  TORCH_WHEEL="$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)"
  if [ -n "$TORCH_WHEEL" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH_WHEEL"
  fi
  echo "$WANT" > "$STAMP"
else
  echo "[venv] up to date"
fi
export PATH="$VENV/bin:$PATH"
# Quiet TensorFlow's C++ start-up chatter; real errors still show.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
