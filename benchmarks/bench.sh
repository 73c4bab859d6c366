#!/usr/bin/env bash
# The benchmark in one command: set up (first time), make sure PostgreSQL's server binaries and
# wrk are there (Debian's packages, installed when missing and running as root), then run
# `python -m benchmarks` with the arguments given (`--quick` for a smoke run, `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
if [ -z "${SECRETS_BENCH_DATABASE_URL:-}" ]; then
  SECRETS_TEST_DATABASE_URL= ./scripts/ensure-postgres.sh
fi
exec .venv/bin/python -m benchmarks "$@"
