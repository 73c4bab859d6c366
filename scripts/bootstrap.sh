#!/usr/bin/env bash
# Create .venv and install the project with its development tools, every backend SDK, the
# test servers and the example plugin. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
example=examples/files-backend  # the example third-party plugin, tested as installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$example/pyproject.toml" -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # `all`: every backend's SDK; `test`: the servers the backend tests start (OpenBao, moto, drongo).
  .venv/bin/python -m pip install --quiet -e '.[dev,all,test]' -e "./$example"
  touch "$stamp"
fi
