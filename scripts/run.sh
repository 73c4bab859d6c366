#!/usr/bin/env bash
# Set up (first time) and start the service on the embedded default: SQLite + local encrypted
# backend in ./.secrets-data, a development root token printed at start.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh run
exec .venv/bin/secretctl serve "$@"
