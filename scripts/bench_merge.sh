#!/usr/bin/env bash
# Merge speed against `cat` copying the same shard files to one new file, in one run.
#
#   scripts/bench_merge.sh [ROWS] [DIMS]     (default 400000 x 384: 614 MB of float32)
#
# Both write a new file without fsync, from a warm page cache; outputs are deleted between
# runs (an O_TRUNC over an old file stalls on its dirty pages). Prints seconds and MB/s of
# output for each, best of 3, and the ratio merge / cat.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-400000} DIMS=${2:-384}
cargo build --release --quiet
V=target/release/vectro
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$V generate --rows "$ROWS" --dims "$DIMS" --out "$W/in.npy" --quiet >/dev/null
for k in 0 1 2 3; do
    $V compress --in "$W/in.npy" --out "$W/parts/part-{shard}.vectro" --shard "$k/4" --no-fsync --quiet >/dev/null
done
$V compress --in "$W/in.npy" --out "$W/single.vectro" --no-fsync --quiet >/dev/null
bytes=$(cat "$W"/parts/*.vectro | wc -c)
best() { # best of 3 wall times of "$@", output removed before each run
    local b=999999
    for _ in 1 2 3; do
        rm -f "$W/out"
        cat "$W"/parts/*.vectro >/dev/null # warm
        local s e
        s=$(date +%s.%N); "$@"; e=$(date +%s.%N)
        b=$(echo "$b $s $e" | awk '{t = $3 - $2; print (t < $1 ? t : $1)}')
    done
    echo "$b"
}
t_cat=$(best sh -c "cat $W/parts/*.vectro > $W/out")
t_merge=$(best "$V" merge "$W/parts" --out "$W/out" --no-fsync --quiet)
cmp -s "$W/out" "$W/single.vectro" && same=yes || same=NO
awk -v b="$bytes" -v c="$t_cat" -v m="$t_merge" -v s="$same" 'BEGIN {
    printf "shards: %.0f MB in 4 files\n", b / 1e6
    printf "cat   : %.3f s  %6.0f MB/s\n", c, b / 1e6 / c
    printf "merge : %.3f s  %6.0f MB/s  (identical to single run: %s)\n", m, b / 1e6 / m, s
    printf "merge / cat time: %.2f\n", m / c
}'
