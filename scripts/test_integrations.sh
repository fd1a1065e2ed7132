#!/usr/bin/env bash
# The loaders into vector databases (python/vectro/integrations), against the engines
# themselves: a Milvus standalone server (scripts/milvus_local.sh up, stopped on exit),
# Qdrant's engine in-process (qdrant-edge-py) and LanceDB embedded. Installs the extras
# declared in python/pyproject.toml (milvus, milvus-server, qdrant, lancedb) into the
# venv scripts/test_python.sh made, which must have run first (it builds the wheel).
#
#   scripts/test_integrations.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VECTRO_PY_VENV:-target/py-venv}"
PYBIN="$PWD/$VENV/bin/python"
case "$VENV" in /*) PYBIN="$VENV/bin/python" ;; esac
if ! (cd / && "$PYBIN" -c 'import vectro') 2>/dev/null; then
    echo "no vectro wheel in $VENV: run scripts/test_python.sh first" >&2
    exit 1
fi

# The extras, as pyproject.toml declares them (so that the declaration is what is tested).
mapfile -t reqs < <("$PYBIN" - <<'EOF'
import tomllib
extras = tomllib.load(open("python/pyproject.toml", "rb"))["project"]["optional-dependencies"]
for name in ("milvus", "milvus-server", "qdrant", "lancedb"):
    print("\n".join(extras[name]))
EOF
)
"$PYBIN" -m pip install -q --disable-pip-version-check "${reqs[@]}"

trap "'$PWD/scripts/milvus_local.sh' down" EXIT
scripts/milvus_local.sh up
export VECTRO_MILVUS_URI="http://127.0.0.1:$(cat "${VECTRO_MILVUS_DIR:-target/milvus-local}/port")"

cd python/tests_databases
VECTRO_BIN="$PWD/../../target/release/vectro" VECTRO_EXAMPLES="$PWD/../../examples/integrations" \
    "$PYBIN" -m pytest -p no:cacheprovider -q "$@"
