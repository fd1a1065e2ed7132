#!/usr/bin/env bash
# The Python package's tests: build the wheel with maturin into a venv made from the
# machine's python3 (>= 3.9), install it, run pytest on python/tests. Installs what it
# needs from PyPI into target/py-venv; nothing is assumed on the machine but python3
# (with its venv module) and cargo.
#
#   scripts/test_python.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/venv.sh
VENV="${VECTRO_PY_VENV:-target/py-venv}"
make_venv "$VENV" \
    "maturin>=1.9.4,<2" "numpy>=1.21,<3" "pytest>=8,<10" "hypothesis>=6.100,<7" \
    "pyarrow>=14" "safetensors>=0.4" "pillow>=10"

# The CLI the tests compare against (cargo test --release built it already when run from
# scripts/test.sh; this is a no-op then).
cargo build --release --quiet --bin vectro

rm -rf target/wheels
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -o target/wheels --features test-hooks
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/vectro-*.whl

# From python/tests (not python/), so that `import vectro` finds the installed wheel and
# not the source directory.
cd python/tests
VECTRO_BIN="$PWD/../../target/release/vectro" "../../$VENV/bin/python" -m pytest -p no:cacheprovider -q "$@"
