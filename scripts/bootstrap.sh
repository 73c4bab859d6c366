#!/usr/bin/env bash
# Create .venv and install the project into it. Idempotent.
#   bootstrap.sh run   what running the service needs (the embedded default: SQLite + local
#                      backend; add cloud SDKs with SECRETS_EXTRAS=vault,aws,azure,gcp or all)
#   bootstrap.sh test  everything the test suite needs: every backend SDK, the test servers
#                      (OpenBao, moto, drongo), the linters, the example plugin and the
#                      Python client (clients/python)
set -euo pipefail
cd "$(dirname "$0")/.."
level=${1:-test}
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
example=examples/files-backend  # the example third-party plugin, tested as installed
case "$level" in
  run)
    extras=${SECRETS_EXTRAS:-}
    target=".${extras:+[$extras]}"
    stamp=.venv/.installed-run${extras:+-$extras}
    newer=(pyproject.toml)
    packages=(-e "$target")
    ;;
  test)
    stamp=.venv/.installed-test
    newer=(pyproject.toml "$example/pyproject.toml" clients/python/pyproject.toml)
    packages=(-e '.[dev,all,test]' -e "./$example" -e ./clients/python)
    ;;
  *)
    echo "usage: $0 run|test" >&2
    exit 2
    ;;
esac
fresh=1
[ -f "$stamp" ] || fresh=0
for file in "${newer[@]}"; do
  [ "$fresh" = 1 ] && [ "$file" -nt "$stamp" ] && fresh=0
done
if [ "$fresh" = 0 ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "${packages[@]}"
  touch "$stamp"
  # A test install covers what running needs.
  [ "$level" = test ] && touch .venv/.installed-run
fi
exit 0
