#!/usr/bin/env bash
# What `--codec auto --min-recall X` chooses on a real embedding file, and what
# `vectro eval` of the whole output then says (recall@10 over every row, 1,000 sampled
# queries). Usage: scripts/auto_real.sh [input.npy] [targets...]
# Default input /work/shared/data/minilm_wordnet_10k.npy, targets 0.8 0.9 0.95.
# VECTRO=path/to/vectro uses that binary instead of building one. Each run appends to
# bench/runs/<date>-<host>/auto_real.csv and auto_real.md; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
input=${1:-/work/shared/data/minilm_wordnet_10k.npy}
shift || true
targets=${*:-0.8 0.9 0.95}
. scripts/lib/bench_out.sh
bench_begin auto_real "scripts/auto_real.sh $input $targets"
csv=$(bench_csv auto_real "started,host,input,target,chosen,bytes_per_row,auto_recall,auto_recall_se,eval_recall10,seconds,trained,skipped")
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
v=${VECTRO:-target/release/vectro}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "| target recall@10 | auto chose | B/row | auto's whole-input recall@10 | \`vectro eval\` recall@10 | seconds | trained | not trained |"
echo "|---|---|---|---|---|---|---|---|"
for t in $targets; do
    out="$dir/a.vectro"
    $v compress --codec auto --min-recall "$t" --json --no-fsync --force \
        "$input" "$out" > "$dir/c.json" 2> "$dir/c.err"
    $v eval --json --k 10 --sample-queries 1000 "$input" "$out" > "$dir/e.json"
    python3 - "$input" "$t" "$dir/c.json" "$dir/e.json" "$BENCH_STARTED" "$BENCH_HOST" >> "$csv" <<'PY'
import json, sys
inp, t, c, e, started, host = sys.argv[1:]
c = json.load(open(c)); e = json.load(open(e))
a = c["auto"]
ch = next(x for x in a["candidates"] if x["codec"] == a["chosen"])
r10 = next(r["recall"] for r in e["recall"] if r["k"] == 10)
trained = [x["codec"] for x in a["candidates"] if x.get("trained") and not x.get("skipped")]
skipped = [x["codec"] for x in a["candidates"] if x.get("skipped")]
row = [started, host, inp, t, a["chosen"], f'{ch["bytes_per_row"]:.1f}',
       f'{ch["quality"]:.4f}', f'{ch.get("recall_se") or 0:.4f}', f'{r10:.4f}',
       f'{c.get("seconds", 0):.1f}', " ".join(trained), " ".join(skipped)]
print(",".join(row))
print(f'| {t} | {a["chosen"]} | {ch["bytes_per_row"]:.1f} | {ch["quality"]:.4f} ± {1.645 * (ch.get("recall_se") or 0):.4f} '
      f'| {r10:.4f} | {c.get("seconds", 0):.1f} | {len(trained)} | {", ".join(skipped) or "-"} |', file=sys.stderr)
PY
done 2>&1 | grep '^|' || true
