#!/usr/bin/env bash
# Times `vectro eval` against faiss IndexFlatIP (and a plain numpy blocked matmul) on the
# same data in the same run, and checks eval's numbers against an independent numpy scorer.
#
#   scripts/eval_vs_faiss.sh                      # 100k x 384 generated, 1000 queries
#   ROWS=20000 DIMS=128 QUERIES=500 scripts/eval_vs_faiss.sh
#   NPY=embeddings.npy scripts/eval_vs_faiss.sh    # your own data
#   THREADS=1 scripts/eval_vs_faiss.sh            # one thread for eval and faiss
#
# faiss-cpu and numpy are installed into target/faiss-venv on first use; VECTRO=path/to/vectro
# uses that binary instead of building one. Each run appends its raw timings and metrics to
# bench/runs/<date>-<host>/eval_vs_faiss.csv and what it prints to eval_vs_faiss.md there;
# see bench/README.md.
set -euo pipefail
[ -n "${NPY:-}" ] && NPY=$(realpath "$NPY")
cd "$(dirname "$0")/.."
. scripts/lib/bench_out.sh
bench_begin eval_vs_faiss "$(for v in ROWS DIMS QUERIES REPEATS THREADS; do [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done)${NPY:+NPY=$(basename "$NPY") }scripts/eval_vs_faiss.sh"
CSV=$(bench_csv eval_vs_faiss "started,host,data,rows,dims,queries,threads,kind,name,run,value,reference")
export BENCH_STARTED BENCH_HOST
. scripts/lib/venv.sh
VENV=$(faiss_venv)
if [ -n "${THREADS:-}" ] && [ "$THREADS" != 0 ]; then
    # numpy's BLAS and faiss's OpenMP get the same thread count as eval.
    export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
fi
if [ -z "${VECTRO:-}" ]; then nice cargo build --release --quiet; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" scripts/eval_vs_faiss.py --vectro "${VECTRO:-target/release/vectro}" --work "$WORK" --csv "$CSV" \
    --rows "${ROWS:-100000}" --dims "${DIMS:-384}" --queries "${QUERIES:-1000}" \
    --repeats "${REPEATS:-3}" --threads "${THREADS:-0}" ${NPY:+--npy "$NPY"}
