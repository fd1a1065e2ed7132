#!/usr/bin/env bash
# The framework integrations of the Python package (vectro.langchain, vectro.llama_index,
# vectro.ray): langchain-tests' standard vector store suite, our LlamaIndex tests, Ray Data
# on a local 2-CPU cluster, and the examples in examples/python/. A venv of its own
# (target/py-venv-int), so that the core suite (scripts/test_python.sh) keeps running
# without any framework installed; the versions are pinned to ones known to work.
#
#   scripts/test_python_integrations.sh [pytest args...]
#
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/venv.sh
VENV="${VECTRO_PY_INT_VENV:-target/py-venv-int}"
make_venv "$VENV" \
    "maturin>=1.9.4,<2" "numpy>=1.21,<3" "pytest>=8,<10" \
    "langchain-core==1.8.1" "langchain-tests==1.1.9" \
    "llama-index-core==0.14.25" "ray[data]==2.60.0"

# The wheel of the current sources (after scripts/test_python.sh, which builds with the
# same features, cargo has nothing to do and this only packs the Python files again).
rm -rf target/wheels
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -o target/wheels --features test-hooks
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/vectro-*.whl

# Offline, and without Ray's dashboard or usage reporting.
export RAY_USAGE_STATS_ENABLED=0
cd python/tests_frameworks
"../../$VENV/bin/python" -m pytest -p no:cacheprovider -p no:logging -q "$@"
