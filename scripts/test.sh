#!/usr/bin/env bash
# Every test: Rust, then the integrations that need something installed or started.
# The README's test command. Installs what it needs from the package registries.
#
#   scripts/test.sh            # everything
#   VECTRO_SKIP_SLURM=1 ...    # leave out the local Slurm cluster test (needs root and apt)
#   VECTRO_SKIP_PYTHON=1 ...   # leave out the Python package's tests (python/tests)
#   VECTRO_SKIP_BROWSER=1 ...  # leave out the headless-Chromium tests (tests/browser)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo test --release"
cargo test --release

echo "== Python: build the wheel (maturin) into a fresh venv, then pytest python/tests"
if [ "${VECTRO_SKIP_PYTHON:-0}" = 1 ]; then
    echo "skipped (VECTRO_SKIP_PYTHON=1)"
else
    scripts/test_python.sh
fi

echo "== Browser: the serve dashboard in headless Chromium (tests/browser)"
if [ "${VECTRO_SKIP_BROWSER:-0}" = 1 ]; then
    echo "skipped (VECTRO_SKIP_BROWSER=1)"
else
    scripts/test_browser.sh
fi

echo "== Slurm: deploy/slurm-array.sh on a local one-node cluster"
if [ "${VECTRO_SKIP_SLURM:-0}" = 1 ]; then
    echo "skipped (VECTRO_SKIP_SLURM=1)"
elif [ "$(id -u)" = 0 ] && timeout 600 scripts/slurm_local.sh up; then
    slurm_status=0
    cargo test --release --test it scaleout_slurm -- --ignored || slurm_status=$?
    scripts/slurm_local.sh down
    [ "$slurm_status" = 0 ] || { echo "the real-Slurm test failed"; exit "$slurm_status"; }
else
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!! SKIPPED: the real-Slurm test (tests/it/scaleout_slurm.rs): no local Slurm cluster  !!"
    echo "!! could be started (needs root and apt access: scripts/slurm_local.sh up).        !!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi
