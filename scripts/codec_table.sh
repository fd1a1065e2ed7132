#!/usr/bin/env bash
# The README's codec table, measured the way users meet it: queries that are NOT rows of the
# base. The data set is split (seeded) into a base and held-out queries; each codec compresses
# the base only (pq/opq/binary-itq train on the base only), and `vectro eval --queries` scores
# recall@10 of the held-out queries against the compressed base (exact search over the
# decoded rows, and over the codes by ADC for pq/opq), before and after re-ranking the top
# 100 with the original floats.
#
#   scripts/codec_table.sh embeddings.npy            # 1,000 held-out queries, metric cos
#   QUERIES=2000 METRIC=ip scripts/codec_table.sh embeddings.npy
#   CODECS="int8 int4:rotate=1" scripts/codec_table.sh embeddings.npy
#
# numpy is installed into target/bench-venv on first use; VECTRO=path/to/vectro uses that
# binary instead of building one. Each run appends its rows to
# bench/runs/<date>-<host>/codec_table.csv and what it prints to codec_table.md there.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/codec_table.sh DATA.npy" >&2; exit 2; }
NPY=$(realpath "$1")
cd "$(dirname "$0")/.."
. scripts/lib/bench_out.sh
bench_begin codec_table "$(for v in QUERIES METRIC CODECS SEED; do [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done)scripts/codec_table.sh $(basename "$NPY")"
CSV=$(bench_csv codec_table "started,host,data,base_rows,queries,dims,metric,codec,code_bytes_per_vector,codebook_bytes,file_bytes,ratio,cos_mean,recall_at_10,rescored_at_10,search")
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import numpy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet numpy
fi
if [ -z "${VECTRO:-}" ]; then nice cargo build --release --quiet; fi
V=$(realpath "${VECTRO:-target/release/vectro}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
Q=${QUERIES:-1000}
METRIC=${METRIC:-cos}
"$VENV/bin/python" - "$NPY" "$WORK" "$Q" "${SEED:-7}" <<'PY'
import sys, numpy as np
src, work, q, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x = np.load(src, mmap_mode="r")
perm = np.random.default_rng(seed).permutation(len(x))
np.save(f"{work}/base.npy", np.ascontiguousarray(x[np.sort(perm[q:])], dtype=np.float32))
np.save(f"{work}/queries.npy", np.ascontiguousarray(x[np.sort(perm[:q])], dtype=np.float32))
PY
CODECS=${CODECS:-"f16 bf16 int8 int8:rotate=1 int4 int4:rotate=1 binary binary:rotate=1 binary-itq pq:m=48 opq:m=48 opq:m=96"}
DIMS=$("$VENV/bin/python" -c "import numpy as np; print(np.load('$WORK/base.npy', mmap_mode='r').shape[1])")
BASE_ROWS=$("$VENV/bin/python" -c "import numpy as np; print(np.load('$WORK/base.npy', mmap_mode='r').shape[0])")
echo "base: $BASE_ROWS rows x $DIMS dims of $(basename "$NPY"); $Q held-out queries (seed ${SEED:-7}); metric $METRIC; recall@10, rescored from the top 100"
echo
echo "| codec | bytes/vector | codebook | vs float32 (whole file) | mean cosine | recall@10 | rescored | search |"
echo "|---|---|---|---|---|---|---|---|"
for c in $CODECS; do
    "$V" compress -q "$WORK/base.npy" "$WORK/c.vectro" --codec "$c" --force >/dev/null 2>&1
    "$V" eval --json "$WORK/base.npy" "$WORK/c.vectro" --queries "$WORK/queries.npy" \
        --k 10 --metric "$METRIC" > "$WORK/e.json"
    "$V" info --quick --json "$WORK/c.vectro" > "$WORK/i.json"
    "$VENV/bin/python" - "$WORK/e.json" "$WORK/i.json" "$c" "$BASE_ROWS" "$DIMS" "$CSV" "$BENCH_STARTED" "$BENCH_HOST" "$(basename "$NPY")" "$Q" "$METRIC" <<'PY'
import json, os, sys
e = json.load(open(sys.argv[1]))
info = json.load(open(sys.argv[2]))
codec, rows, dims, csv = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
started, host, data, q, metric = sys.argv[7:12]
size = info["input_bytes"]  # info names the file it reads `input`
bpv = info["payload_bytes"] / rows
book = info["codec_params_bytes"]
ratio = rows * dims * 4 / size
rec = next(r for r in e["recall"] if r["k"] == 10)
cos = e.get("cosine_mean", e.get("cos_mean"))
search = e.get("search", "")
booktxt = f"{book / 1024:.0f} KiB" if book > 1024 else "none"
print(f"| `{codec}` | {bpv:.1f} | {booktxt} | {ratio:.1f}x | {cos:.6f} | {rec['recall']:.4f} | {rec['rescored']:.4f} | {search} |")
with open(csv, "a") as f:
    f.write(f"{started},{host},{data},{rows},{q},{dims},{metric},{codec},{bpv:.2f},{book},{size},{ratio:.3f},{cos:.6f},{rec['recall']:.4f},{rec['rescored']:.4f},{search}\n")
PY
done
echo
echo "bytes/vector: the codes of one row; a trained codec also stores its codebook once per file."
echo "vs float32: the whole file (header, codebook, index) against rows x dims x 4 bytes."
