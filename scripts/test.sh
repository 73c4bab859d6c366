#!/usr/bin/env bash
# Set up (first time) and run the whole test suite. The suite starts its own throwaway
# PostgreSQL server (or uses SECRETS_TEST_DATABASE_URL); this script makes sure the server
# binaries are there.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh test
./scripts/ensure-postgres.sh
./scripts/ensure-chromium.sh
exec .venv/bin/python -m pytest "$@"
