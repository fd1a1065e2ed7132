#!/usr/bin/env bash
# The browser tests: the report page and the serve dashboard opened in headless Chromium (Debian's `chromium` package,
# installed here with apt when missing), driven by Playwright from PyPI through pytest, with
# every request recorded and any that would leave the machine blocked and reported.
# Installs what it needs into target/browser-venv.
#
#   scripts/test_browser.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

CHROMIUM="${VECTRO_CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$CHROMIUM" ]; then
    apt_install chromium || { echo "no chromium: or set VECTRO_CHROMIUM to one" >&2; exit 1; }
    CHROMIUM=$(command -v chromium)
fi
export VECTRO_CHROMIUM="$CHROMIUM" CHROMIUM="$CHROMIUM"

VENV="${VECTRO_BROWSER_VENV:-target/browser-venv}"
# Playwright drives the system chromium (executable_path); no browser download.
make_venv "$VENV" "playwright>=1.45,<2" "pytest>=8,<10" "pillow>=10"

cargo build --release --quiet --bin vectro
export VECTRO_BIN="$PWD/target/release/vectro"
export VECTRO_SCREENSHOTS="${VECTRO_SCREENSHOTS:-$PWD/target/browser-screenshots}"
"$VENV/bin/python" -m pytest -q tests/browser "$@"
