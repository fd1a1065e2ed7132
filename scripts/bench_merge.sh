#!/usr/bin/env bash
# Scale-out costs, each against its baseline in the same run:
#   merge of 4 shards   vs  `cat` of the same shard files into one new file;
#   compress --in -     vs  compress of the file (mmap);
#   4 shards, one after the other  vs  one process over the whole input.
#
#   scripts/bench_merge.sh [ROWS] [DIMS]     (default 400000 x 384: 614 MB of float32)
#
# Outputs are written without fsync, from a warm page cache, and deleted between runs (an
# O_TRUNC over an old file stalls on its dirty pages). Best of REPS (default 5) wall times.
# VECTRO=path/to/vectro uses that binary instead of building one.
# Each run appends to bench/runs/<date>-<host>/bench_merge.csv (one row per comparison) and
# bench_merge.md (what it prints); see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-400000} DIMS=${2:-384}
. scripts/lib/bench_out.sh
bench_begin bench_merge "REPS=${REPS:-5} scripts/bench_merge.sh $ROWS $DIMS"
CSV=$(bench_csv bench_merge "started,host,rows,dims,reps,what,seconds,baseline,baseline_seconds,ratio,identical")
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
V=$(realpath "${VECTRO:-target/release/vectro}")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$V generate --rows "$ROWS" --dims "$DIMS" --out "$W/in.npy" --quiet >/dev/null
for k in 0 1 2 3; do
    $V compress --in "$W/in.npy" --out "$W/parts/part-{shard}.vectro" --shard "$k/4" --no-fsync --quiet >/dev/null
done
$V compress --in "$W/in.npy" --out "$W/single.vectro" --no-fsync --quiet >/dev/null

best() { # best of REPS wall times of the shell command $1; $W/out and $W/p2 removed first
    local b=999999 s e
    for _ in $(seq "${REPS:-5}"); do
        rm -rf "$W/out" "$W/p2"
        cat "$W/in.npy" "$W"/parts/*.vectro >/dev/null # warm the page cache
        s=$(date +%s.%N); sh -c "$1" >/dev/null; e=$(date +%s.%N)
        b=$(echo "$b $s $e" | awk '{t = $3 - $2; print (t < $1 ? t : $1)}')
    done
    echo "$b"
}
C="--no-fsync --quiet"
t_cat=$(best "cat $W/parts/*.vectro > $W/out")
t_merge=$(best "$V merge $W/parts --out $W/out $C")
cmp -s "$W/out" "$W/single.vectro" && same=yes || same=NO
t_file=$(best "$V compress --in $W/in.npy --out $W/out $C")
t_stdin=$(best "cat $W/in.npy | $V compress --in - --out $W/out $C")
t_shards=$(best "for k in 0 1 2 3; do $V compress --in $W/in.npy --out $W/p2/p-{shard}.vectro --shard \$k/4 $C; done")
in_mb=$(($(stat -c %s "$W/in.npy") / 1000000))
sh_mb=$(($(cat "$W"/parts/*.vectro | wc -c) / 1000000))
echo "input $in_mb MB ($ROWS x $DIMS float32), 4 shards $sh_mb MB; $(nproc) cores; wall seconds, best of ${REPS:-5}"
awk -v c="$t_cat" -v m="$t_merge" -v f="$t_file" -v i="$t_stdin" -v s="$t_shards" -v mb="$sh_mb" -v same="$same" 'BEGIN {
    printf "merge 4 shards       %7.3f s  (cat of the shards %7.3f s)  ratio %.2f  %.0f MB/s  identical to single run: %s\n", m, c, m / c, mb / m, same
    printf "compress --in -      %7.3f s  (compress the file %7.3f s)  ratio %.2f\n", i, f, i / f
    printf "4 shards in sequence %7.3f s  (one process       %7.3f s)  ratio %.2f\n", s, f, s / f
}'
row() { echo "$BENCH_STARTED,$BENCH_HOST,$ROWS,$DIMS,${REPS:-5},$1,$2,$3,$4,$(awk -v a="$2" -v b="$4" 'BEGIN {printf "%.3f", a / b}'),$5" >> "$CSV"; }
row merge_4_shards "$t_merge" cat_of_shards "$t_cat" "$same"
row compress_stdin "$t_stdin" compress_file "$t_file" ""
row shards_in_sequence "$t_shards" one_process "$t_file" ""
