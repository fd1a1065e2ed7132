#!/usr/bin/env bash
# vectro's training-free widths (`sq:bits=1..8`, int8, int4:rotate=1, binary:rotate=1) beside
# faiss IndexRaBitQ at 1-8 bits, in one run: recall@10 of held-out float queries (not rows of
# the base) against the compressed base rows, exact search, rows scaled to unit length
# (inner product), and encode throughput. See scripts/sq_vs_rabitq.py.
#
#   scripts/sq_vs_rabitq.sh                                   # the shared 10k MiniLM sample
#   NPY=embeddings.npy QUERIES=2000 scripts/sq_vs_rabitq.sh
#   THREADS=1 REPEATS=5 scripts/sq_vs_rabitq.sh
#   SEEDS=0 scripts/sq_vs_rabitq.sh                           # without the 1-bit seed sweep
#   SWEEP_BITS=1,2,4 SEEDS=3 scripts/sq_vs_rabitq.sh           # the seed sweep at 1, 2 and 4 bits
#   ROUNDS=1,2,3 SWEEP_BITS=1,2,3,4,8 SEEDS=3 MAIN=0 scripts/sq_vs_rabitq.sh
#       # the sweep once per rotation round count R (`rounds=R`; int4:rotate=1 at 4 bits and
#       # binary:rotate=1 at 1 bit beside sq), without the main table (MAIN=0)
#   SWEEP_BITS=2 EXTRA=16,32,48,60 SEEDS=3 MAIN=0 scripts/sq_vs_rabitq.sh
#       # the sweep also with `sq:bits=2,centre=1,extra=E`: each centred row rotated with E
#       # zero coordinates (the padded layout's factor word and E more codes)
#
# faiss-cpu and numpy are installed into target/faiss-venv on first use (the version used is
# printed); VECTRO=path/to/vectro uses that binary instead of building one. Each run appends
# its rows to bench/runs/<date>-<host>/sq_vs_rabitq.csv and what it prints to
# sq_vs_rabitq.md there; see bench/README.md.
set -euo pipefail
NPY=$(realpath "${NPY:-/work/shared/data/minilm_wordnet_10k.npy}")
cd "$(dirname "$0")/.."
. scripts/lib/bench_out.sh
bench_begin sq_vs_rabitq "$(for v in QUERIES REPEATS THREADS SEEDS SWEEP_BITS ROUNDS EXTRA MAIN; do [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done)NPY=$(basename "$NPY") scripts/sq_vs_rabitq.sh"
CSV=$(bench_csv sq_vs_rabitq "started,host,data,base_rows,dims,queries,who,codec,bits_per_dim,bytes_per_row,recall_at_10,encode_seconds,encode_mb_s")
export BENCH_STARTED BENCH_HOST
. scripts/lib/venv.sh
VENV=$(faiss_venv)
if [ -n "${THREADS:-}" ] && [ "$THREADS" != 0 ]; then
    export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
fi
if [ -z "${VECTRO:-}" ]; then nice cargo build --release --quiet; fi
"$VENV/bin/python" scripts/sq_vs_rabitq.py --npy "$NPY" --vectro "${VECTRO:-target/release/vectro}" \
    --csv "$CSV" --queries "${QUERIES:-1000}" --repeats "${REPEATS:-3}" --seeds "${SEEDS:-5}" --threads "${THREADS:-0}" \
    --sweep-bits "${SWEEP_BITS:-1}" --rounds "${ROUNDS:-}" --main "${MAIN:-1}" --extra "${EXTRA:-}"
