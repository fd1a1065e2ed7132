#!/usr/bin/env bash
# vectro search against faiss (IndexBinaryFlat + numpy int8 rescoring; IndexPQ;
# IndexPQFastScan), and a tiered binary:rotate=1+int8 file beside the two-container
# recipe, on the
# same rows and held-out queries, in one run; see scripts/bench_search.py.
# Usage: scripts/bench_search.sh [DATA.npy] [--generated-rows N] [--repeats N] [--only rq|pq4]
#        [--rows N]  (binary + int8 only, or with --only pq4 the pq4 fast-scan only, on N
#        rows synthesised from the real ones)
# Builds the Python package into target/py-venv (scripts/test_python.sh) and installs
# faiss-cpu there on first use. Appends to bench/runs/<date>-<host>/bench_search.{csv,md}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
. scripts/lib/bench_out.sh
bench_begin bench_search "scripts/bench_search.sh $*"
venv=target/py-venv
# The wheel is rebuilt when the sources changed since it was built (else it would measure
# old kernels).
stamp="$venv/.bench-wheel-stamp"
if ! "$venv/bin/python" -c "import vectro; vectro.Container.search" 2>/dev/null \
    || [ ! -e "$stamp" ] || [ -n "$(find src python/src -newer "$stamp" -print -quit)" ]; then
    scripts/test_python.sh -k nothing_at_all >/dev/null || true
    touch "$stamp"
fi
if ! "$venv/bin/python" -c "import faiss" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check faiss-cpu
fi
cargo build --release --quiet --bin vectro
export BENCH_STARTED BENCH_HOST
echo "machine: $(bench_machine) at start"
"$venv/bin/python" scripts/bench_search.py --csv "$(bench_csv bench_search "started,host,data,rows,dims,queries,method,recall10,qps,seconds,bytes_per_row,note")" "$@"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
