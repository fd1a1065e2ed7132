#!/usr/bin/env bash
# Times `vectro eval` against faiss IndexFlatIP (and a plain numpy blocked matmul) on the
# same data in the same run, and checks eval's numbers against an independent numpy scorer.
#
#   scripts/eval_vs_faiss.sh                      # 100k x 384 generated, 1000 queries
#   ROWS=20000 DIMS=128 QUERIES=500 scripts/eval_vs_faiss.sh
#   NPY=../shared/data/minilm_wordnet_10k.npy scripts/eval_vs_faiss.sh
#   THREADS=1 scripts/eval_vs_faiss.sh            # one thread for eval and faiss
#
# faiss-cpu and numpy are installed into target/faiss-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/faiss-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import faiss, numpy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet faiss-cpu numpy
fi
if [ -n "${THREADS:-}" ] && [ "$THREADS" != 0 ]; then
    # numpy's BLAS and faiss's OpenMP get the same thread count as eval.
    export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
fi
nice cargo build --release --quiet
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
exec "$VENV/bin/python" scripts/eval_vs_faiss.py --vectro target/release/vectro --work "$WORK" \
    --rows "${ROWS:-100000}" --dims "${DIMS:-384}" --queries "${QUERIES:-1000}" \
    --repeats "${REPEATS:-3}" --threads "${THREADS:-0}" ${NPY:+--npy "$NPY"}
