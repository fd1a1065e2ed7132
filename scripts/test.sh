#!/usr/bin/env bash
# Every test: Rust, then the integrations that need something installed or started.
# The README's test command. Installs what it needs from the package registries.
#
#   scripts/test.sh            # everything
#   VECTRO_SKIP_SLURM=1 ...    # leave out the local Slurm cluster test (needs root and apt)
#   VECTRO_SKIP_PYTHON=1 ...   # leave out the Python package's tests (python/tests)
#   VECTRO_SKIP_PYTHON_INTEGRATIONS=1 ...  # leave out python/tests_frameworks (LangChain, LlamaIndex, Ray)
#   VECTRO_SKIP_DBS=1 ...      # leave out the loaders into Milvus, Qdrant, LanceDB
#   VECTRO_SKIP_BROWSER=1 ...  # leave out the browser test (headless Chromium; needs apt)
#   VECTRO_SKIP_AARCH64=1 ...  # leave out the SIMD kernels' tests on aarch64 under qemu-user (needs apt)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo test --release"
cargo test --release

echo "== aarch64: the SIMD kernels' tests (ci/simd-aarch64) cross-compiled and run under qemu-user (NEON)"
if [ "${VECTRO_SKIP_AARCH64:-0}" = 1 ]; then
    echo "skipped (VECTRO_SKIP_AARCH64=1)"
else
    scripts/test_aarch64.sh
fi

echo "== Python: build the wheel (maturin) into a fresh venv, then pytest python/tests"
if [ "${VECTRO_SKIP_PYTHON:-0}" = 1 ]; then
    echo "skipped (VECTRO_SKIP_PYTHON=1)"
else
    scripts/test_python.sh
fi

echo "== Python integrations: LangChain (langchain-tests' suite), LlamaIndex, Ray Data"
if [ "${VECTRO_SKIP_PYTHON:-0}" = 1 ] || [ "${VECTRO_SKIP_PYTHON_INTEGRATIONS:-0}" = 1 ]; then
    echo "skipped (VECTRO_SKIP_PYTHON=1 or VECTRO_SKIP_PYTHON_INTEGRATIONS=1)"
else
    scripts/test_python_integrations.sh
fi

echo "== Vector databases: the loaders into Milvus (a local server), Qdrant Edge and LanceDB"
if [ "${VECTRO_SKIP_PYTHON:-0}" = 1 ] || [ "${VECTRO_SKIP_DBS:-0}" = 1 ]; then
    echo "skipped (VECTRO_SKIP_PYTHON=1 or VECTRO_SKIP_DBS=1)"
else
    scripts/test_integrations.sh
fi

echo "== Browser: the report page and the serve dashboard in headless Chromium (tests/browser)"
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
