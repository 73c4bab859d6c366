#!/usr/bin/env bash
# Make sure Debian's chromium exists for the browser tests (tests/browser, driven by Playwright
# with its executable_path: Playwright's own browser download cannot be reached), installing
# the package when we can, or stopping with a clear message. Never a silent skip.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium not found: installing Debian's chromium package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "The browser tests need Chromium: install Debian's 'chromium' package" \
     "(a 'chromium' on PATH), or deselect them with -m 'not browser'." >&2
exit 1
