#!/usr/bin/env bash
# PQ/OPQ: vectro against faiss-cpu, side by side, in one run on one machine.
# Usage: scripts/bench_vs_faiss.sh [DATA.npy]   (default: ../shared/data/minilm_wordnet_10k.npy)
# Installs faiss-cpu and numpy into scripts/.venv on first use; builds vectro --release.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
data="${1:-$root/../shared/data/minilm_wordnet_10k.npy}"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import faiss, numpy" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet faiss-cpu numpy
fi
(cd "$root" && cargo build --release --quiet)
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
"$venv/bin/python" "$here/bench_vs_faiss.py" "$data" "$root/target/release/vectro"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
