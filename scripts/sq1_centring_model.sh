#!/usr/bin/env bash
# scripts/sq1_centring_model.py with its output kept in bench/runs/<date>-<host>/
# sq1_centring_model.md; numpy from target/faiss-venv (built on first use).
#
#   scripts/sq1_centring_model.sh                      # the 10k MiniLM sample, seeds 1-5
#   SEEDS=10 NUMPY_SIGNS=1 scripts/sq1_centring_model.sh
#   NPY=outlier768.npy SEEDS=3 scripts/sq1_centring_model.sh
set -euo pipefail
NPY=$(realpath "${NPY:-/work/shared/data/minilm_wordnet_10k.npy}")
cd "$(dirname "$0")/.."
. scripts/lib/bench_out.sh
bench_begin sq1_centring_model "$(for v in SEEDS NUMPY_SIGNS; do [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done)NPY=$(basename "$NPY") scripts/sq1_centring_model.sh"
. scripts/lib/venv.sh
VENV=$(faiss_venv)
"$VENV/bin/python" scripts/sq1_centring_model.py --npy "$NPY" --seeds "${SEEDS:-5}" \
    ${NUMPY_SIGNS:+--numpy-signs}
