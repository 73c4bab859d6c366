#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl) exist for the tests, installing Debian's
# package when we can, or stopping with a clear message. Never a silent skip.
set -euo pipefail
if [ -n "${SECRETS_TEST_DATABASE_URL:-}" ]; then
  exit 0
fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "PostgreSQL server binaries not found: installing Debian's postgresql package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  exit 0
fi
echo "The tests need a PostgreSQL server: install Debian's 'postgresql' package" \
     "(initdb and pg_ctl under /usr/lib/postgresql/*/bin) or set SECRETS_TEST_DATABASE_URL." >&2
exit 1
