#!/usr/bin/env bash
# vectro's learned additive codes (`rq:m=16`, `rq:m=32`) beside faiss's residual and LSQ
# quantizers (RQ16x8, RQ32x8, LSQ16x8, LSQ32x8) and vectro's own opq:m=16/32, in one run:
# recall@10 of held-out float queries (not rows of the base) against the compressed base rows,
# exact search, rows scaled to unit length (inner product), and train + encode seconds of each.
# See scripts/additive_vs_faiss.py.
#
#   scripts/additive_vs_faiss.sh                              # the shared 10k MiniLM sample
#   NPY=embeddings.npy QUERIES=2000 scripts/additive_vs_faiss.sh
#   THREADS=2 LSQ32=0 scripts/additive_vs_faiss.sh            # skip faiss LSQ32x8
#   VCODECS='rq:m=16,beam=16;opq:m=16' FAISS=RQ16x8 scripts/additive_vs_faiss.sh
#
# faiss-cpu and numpy are installed into target/faiss-venv on first use (the version used is
# printed); VECTRO=path/to/vectro uses that binary instead of building one. Each run appends
# its rows to bench/runs/<date>-<host>/additive_vs_faiss.csv and what it prints to
# additive_vs_faiss.md there; see bench/README.md.
set -euo pipefail
NPY=$(realpath "${NPY:-/work/shared/data/minilm_wordnet_10k.npy}")
cd "$(dirname "$0")/.."
. scripts/lib/bench_out.sh
bench_begin additive_vs_faiss "$(for v in QUERIES THREADS LSQ32 VCODECS; do [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done)NPY=$(basename "$NPY") scripts/additive_vs_faiss.sh"
CSV=$(bench_csv additive_vs_faiss "started,host,data,base_rows,dims,queries,who,codec,code_bytes,bytes_per_row,recall_at_10,train_encode_seconds")
export BENCH_STARTED BENCH_HOST
. scripts/lib/venv.sh
VENV=$(faiss_venv)
if [ -n "${THREADS:-}" ] && [ "$THREADS" != 0 ]; then
    export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
fi
if [ -z "${VECTRO:-}" ]; then nice cargo build --release --quiet; fi
"$VENV/bin/python" scripts/additive_vs_faiss.py --npy "$NPY" --vectro "${VECTRO:-target/release/vectro}" \
    --csv "$CSV" --queries "${QUERIES:-1000}" --threads "${THREADS:-0}" --lsq32 "${LSQ32:-1}" \
    ${VCODECS:+--vcodecs "$VCODECS"} ${FAISS:+--faiss "$FAISS"}
