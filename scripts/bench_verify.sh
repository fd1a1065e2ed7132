#!/usr/bin/env bash
# verify's throughput as a ratio of `cat FILE > /dev/null` on the same file, warm cache,
# and its peak memory against the file size. Usage: scripts/bench_verify.sh [rows] [dims]
# VECTRO=path/to/vectro uses that binary instead of building one. Each run appends to
# bench/runs/<date>-<host>/bench_verify.csv and bench_verify.md; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-400000}
dims=${2:-384}
. scripts/lib/bench_out.sh
bench_begin bench_verify "scripts/bench_verify.sh $rows $dims"
csv=$(bench_csv bench_verify "started,host,rows,dims,container_bytes,cat_s,verify_s,verify_vs_cat,verify_peak_rss_kib")
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
v=${VECTRO:-target/release/vectro}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$v generate --rows "$rows" --dims "$dims" --out "$dir/x.npy" --quiet
$v compress --in "$dir/x.npy" --out "$dir/x.vectro" --quiet --no-fsync > /dev/null
rm "$dir/x.npy"
f="$dir/x.vectro"
bytes=$(stat -c %s "$f")
best() { # best of 5 wall-clock seconds of "$@"
    local b=999
    for _ in 1 2 3 4 5; do
        local s e
        s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N)
        b=$(python3 -c "print(min($b, $e - $s))")
    done
    echo "$b"
}
cat "$f" > /dev/null # warm the page cache
t_cat=$(best cat "$f")
t_ver=$(best "$v" verify "$f")
rss=$(/usr/bin/time -f %M "$v" verify "$f" 2>&1 >/dev/null | tail -1)
echo "$BENCH_STARTED,$BENCH_HOST,$rows,$dims,$bytes,$t_cat,$t_ver,$(python3 -c "print(f'{$t_cat / $t_ver:.3f}')"),$rss" >> "$csv"
python3 - "$bytes" "$t_cat" "$t_ver" "$rss" <<'PY'
import sys
b, tc, tv, rss = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"container {b/1e6:.0f} MB")
print(f"cat    {b/tc/1e9:6.2f} GB/s")
print(f"verify {b/tv/1e9:6.2f} GB/s  ({tc/tv:.2f}x cat)")
print(f"verify peak RSS {rss/1024:.1f} MiB for a {b/2**20:.0f} MiB file")
PY
