#!/usr/bin/env bash
# The browser test: `vectro report`'s page opened in Debian's headless Chromium, driven by
# Playwright from PyPI (its own browser download is not used), with every request checked.
# Installs chromium with apt-get when missing (as root), and a venv with pytest, playwright
# and Pillow in target/browser-venv. Screenshots land in target/browser-screenshots.
#
#   scripts/test_browser.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium is not installed: apt-get install chromium (Debian), or set CHROMIUM" >&2
        exit 1
    fi
fi

PY="${PYTHON:-python3}"
VENV="${VECTRO_BROWSER_VENV:-target/browser-venv}"
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "pytest>=8,<10" "playwright>=1.45,<2" "pillow>=10"

cargo build --release --quiet --bin vectro

VECTRO_BIN="$PWD/target/release/vectro" CHROMIUM="${CHROMIUM:-$(command -v chromium)}" \
    "$VENV/bin/python" -m pytest -p no:cacheprovider -q tests/browser "$@"
