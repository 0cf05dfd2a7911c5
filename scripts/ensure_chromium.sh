#!/usr/bin/env bash
# The console's browser tests drive Debian's chromium through Playwright (no browser
# download). Install it when missing and we may (root + apt); otherwise explain.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "Chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Chromium: installing Debian's chromium package…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    echo "Chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
    exit 0
fi
echo "Chromium is missing: install Debian's chromium package (sudo apt-get install chromium)." >&2
exit 1
