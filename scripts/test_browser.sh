#!/usr/bin/env bash
# The browser tests: the report page and the serve dashboard opened in headless Chromium (Debian's `chromium` package,
# installed here with apt when missing), driven by Playwright from PyPI through pytest, with
# every request recorded and any that would leave the machine blocked and reported.
# Installs what it needs into target/browser-venv.
#
#   scripts/test_browser.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${VECTRO_CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$CHROMIUM" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        CHROMIUM=$(command -v chromium)
    else
        echo "no chromium: install Debian's chromium package (apt-get install chromium) or set VECTRO_CHROMIUM" >&2
        exit 1
    fi
fi
export VECTRO_CHROMIUM="$CHROMIUM" CHROMIUM="$CHROMIUM"

PY="${PYTHON:-python3}"
VENV="${VECTRO_BROWSER_VENV:-target/browser-venv}"
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$VENV"
            "$PY" -m venv "$VENV"
        else
            echo "cannot create a venv with $PY: install python3-venv (Debian/Ubuntu)" >&2
            exit 1
        fi
    fi
fi
# Playwright drives the system chromium (executable_path); no browser download.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "playwright>=1.45,<2" "pytest>=8,<10" "pillow>=10"

cargo build --release --quiet --bin vectro
export VECTRO_BIN="$PWD/target/release/vectro"
export VECTRO_SCREENSHOTS="${VECTRO_SCREENSHOTS:-$PWD/target/browser-screenshots}"
"$VENV/bin/python" -m pytest -q tests/browser "$@"
