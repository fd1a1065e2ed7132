#!/usr/bin/env bash
# PQ/OPQ: vectro against faiss-cpu, side by side, in one run on one machine.
# Usage: scripts/bench_vs_faiss.sh DATA.npy   (a float .npy of rows x dims, dims divisible by 96)
# Installs faiss-cpu and numpy into scripts/.venv on first use; builds vectro --release
# (VECTRO=path/to/vectro uses that binary instead). Environment: see bench_vs_faiss.py.
# Each run appends one row per method (and seed) to bench/runs/<date>-<host>/bench_vs_faiss.csv
# and what it prints to bench_vs_faiss.md there; see bench/README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
data="${1:?usage: scripts/bench_vs_faiss.sh DATA.npy}"
data="$(realpath "$data")"
cd "$root"
. scripts/lib/bench_out.sh
bench_begin bench_vs_faiss "$(for v in SEEDS ONLY VECTRO_ONLY VECTRO_EXTRA; do [ -n "${!v:-}" ] && printf '%s="%s" ' "$v" "${!v}"; done)scripts/bench_vs_faiss.sh $(basename "$data")"
BENCH_CSV=$(bench_csv bench_vs_faiss "started,host,data,rows,dims,method,seed,bytes,recall10,recall10_all_rows,train_s,encode_s")
export BENCH_CSV BENCH_STARTED BENCH_HOST
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import faiss, numpy" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet faiss-cpu numpy
fi
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
"$venv/bin/python" "$here/bench_vs_faiss.py" "$data" "$(realpath "${VECTRO:-target/release/vectro}")"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
