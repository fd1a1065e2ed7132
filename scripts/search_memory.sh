#!/usr/bin/env bash
# Peak memory of `vectro search` as the queries' candidates grow: a generated base
# (--rows N, 384 dims) in a tiered binary:rotate=1 + int8 file, --queries generated
# queries, the Hamming scan and the float query against the sign bits, each rescoring
# every depth of --depths, 2 threads. Prints, per search, the max RSS (/usr/bin/time -v:
# the file's mapped pages count in it) and the peak anonymous RSS (RssAnon, sampled every
# 10 ms), and seconds.
# Usage: scripts/search_memory.sh [--rows N] [--queries N] [--depths A,B,..] [--memory MIB]
#   VECTRO=PATH runs another build (one without --memory: pass --memory "").
#   --memory 4096 leaves room for every query in one pass (1,000 queries at depth 10,000).
# Appends to bench/runs/<date>-<host>/search_memory.{csv,md}; the base is cached in
# target/search_memory/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
rows=200000 queries=1000 depths=100,10000 memory=256
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows=$2; shift 2 ;;
        --queries) queries=$2; shift 2 ;;
        --depths) depths=$2; shift 2 ;;
        --memory) memory=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
. scripts/lib/bench_out.sh
bench_begin search_memory "scripts/search_memory.sh --rows $rows --queries $queries --depths $depths --memory '$memory'"
csv=$(bench_csv search_memory "started,host,rows,queries,depth,scan,memory_mib,max_rss_mib,anon_mib,seconds")
if [ -z "${VECTRO:-}" ]; then
    cargo build --release --quiet --bin vectro
    VECTRO=target/release/vectro
fi
cache=target/search_memory
mkdir -p "$cache"
base="$cache/base$rows.vectro" q="$cache/q$queries.npy"
if [ ! -e "$base" ]; then
    "$VECTRO" generate --quiet --dims 384 --rows "$rows" --seed 1 --out "$cache/base.npy"
    "$VECTRO" compress --quiet --codec binary:rotate=1 --rescore int8 "$cache/base.npy" "$base"
    rm "$cache/base.npy"
fi
[ -e "$q" ] || "$VECTRO" generate --quiet --dims 384 --rows "$queries" --seed 2 --out "$q"
echo "machine: $(bench_machine); $rows rows, $queries queries, budget ${memory:-none} MiB"
echo "binary: $VECTRO ($("$VECTRO" --version))"
printf '%-8s %-8s %12s %10s %8s\n' depth scan max_rss_MiB anon_MiB seconds
for depth in ${depths//,/ }; do
    for scan in hamming float; do
        args=(search "$base" --queries "$q" -k 10 --rescore "$depth" --threads 2 --format npy
              --out "$cache/hits" --force --quiet)
        [ "$scan" = hamming ] && args+=(--hamming)
        [ -n "$memory" ] && args+=(--memory "$memory")
        read -r rss anon secs < <(python3 "$(dirname "$0")/lib/peak_memory.py" "$VECTRO" "${args[@]}")
        printf '%-8s %-8s %12s %10s %8s\n' "$depth" "$scan" "$rss" "$anon" "$secs"
        echo "$BENCH_STARTED,$BENCH_HOST,$rows,$queries,$depth,$scan,${memory:-none},$rss,$anon,$secs" >> "$csv"
    done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
