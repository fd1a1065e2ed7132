#!/usr/bin/env bash
# `vectro report` against `vectro eval` on the same original and container: the report
# makes eval's pass plus its figures, so its time should stay within 2x eval's. Synthetic
# data from `vectro generate` (rows x dims, default 1,000,000 x 384, 1.5 GB of float32),
# int8 container; eval then report, then again, the faster of each kept (the runs
# alternate so that a load change hits both).
#   scripts/bench_report.sh [rows] [dims] [codec]
# VECTRO=path/to/vectro uses that binary instead of building one. Each run appends to
# bench/runs/<date>-<host>/bench_report.csv and bench_report.md; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
dims=${2:-384}
codec=${3:-int8}
. scripts/lib/bench_out.sh
bench_begin bench_report "scripts/bench_report.sh $rows $dims $codec"
csv=$(bench_csv bench_report "started,host,rows,dims,codec,eval_s,report_s,report_vs_eval,eval_peak_rss_kib,report_peak_rss_kib,html_bytes")
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
v=${VECTRO:-target/release/vectro}
dir=$(mktemp -d "${TMPDIR:-/tmp}/vectro-bench-report.XXXXXX")
trap 'rm -rf "$dir"' EXIT
$v generate --rows "$rows" --dims "$dims" --out "$dir/x.npy" --quiet
$v compress --in "$dir/x.npy" --out "$dir/x.vectro" --codec "$codec" --quiet --no-fsync > /dev/null
timed() { # prints "seconds peak_kib" of "$@"
    local s e rss
    s=$(date +%s.%N)
    rss=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)
    e=$(date +%s.%N)
    echo "$(python3 -c "print(f'{$e - $s:.3f}')") $rss"
}
best_e=999999 best_r=999999 rss_e=0 rss_r=0
for _ in 1 2; do
    read -r t m < <(timed "$v" eval --quiet --k 10 --orig "$dir/x.npy" --comp "$dir/x.vectro")
    best_e=$(python3 -c "print(min($best_e, $t))"); rss_e=$m
    read -r t m < <(timed "$v" report --quiet --force --k 10 --orig "$dir/x.npy" "$dir/x.vectro" --out "$dir/r.html")
    best_r=$(python3 -c "print(min($best_r, $t))"); rss_r=$m
done
html=$(stat -c %s "$dir/r.html")
ratio=$(python3 -c "print(f'{$best_r / $best_e:.3f}')")
echo "$BENCH_STARTED,$BENCH_HOST,$rows,$dims,$codec,$best_e,$best_r,$ratio,$rss_e,$rss_r,$html" >> "$csv"
echo "synthetic data (vectro generate): $rows x $dims, $codec container"
echo "eval   ${best_e} s  peak RSS $((rss_e / 1024)) MiB"
echo "report ${best_r} s  peak RSS $((rss_r / 1024)) MiB  (${ratio}x eval; page $((html / 1024)) KiB)"
