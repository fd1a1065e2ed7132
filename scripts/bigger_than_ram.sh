#!/usr/bin/env bash
# Streams a generated .npy larger than this machine's RAM through vectro in bounded memory:
# generate (1.25 × MemTotal), compress (durable), verify, evaluate a sample, decompress,
# then delete everything. Prints time, peak RSS and throughput of each step as a markdown
# table. Not part of CI: it needs about 2.6 × MemTotal of free disk and some time.
#
#   scripts/bigger_than_ram.sh                 # in a fresh directory under $TMPDIR or /tmp
#   DIR=/big/scratch FACTOR=1.25 THREADS=2 scripts/bigger_than_ram.sh
#   FACTOR=0.001 VECTRO=path/to/vectro scripts/bigger_than_ram.sh   # a seconds-long smoke run
#
# Each run appends one row per step to bench/runs/<date>-<host>/bigger_than_ram.csv and what
# it prints to bigger_than_ram.md there; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

FACTOR=${FACTOR:-1.25}
THREADS=${THREADS:-2}
DIMS=${DIMS:-384}
if [ -z "${DIR:-}" ]; then
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/vectro-big.XXXXXX")
  trap 'rm -rf "$DIR"' EXIT
else
  mkdir -p "$DIR"
  trap 'rm -f "$DIR"/big.npy "$DIR"/big.vectro "$DIR"/back.npy "$DIR"/.*.tmp "$DIR"/t.*' EXIT
fi
IN=$DIR/big.npy
OUT=$DIR/big.vectro
BACK=$DIR/back.npy

mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
bytes=$(awk -v m="$mem_kib" -v f="$FACTOR" 'BEGIN {printf "%.0f", m * 1024 * f}')
rows=$(( bytes / (DIMS * 4) ))
need_kib=$(awk -v b="$bytes" 'BEGIN {printf "%.0f", b * 1.27 / 1024}')
free_kib=$(df -Pk "$DIR" | awk 'NR == 2 {print $4}')
if [ "$free_kib" -lt "$need_kib" ]; then
  echo "need $((need_kib >> 20)) GiB free in $DIR for input and output, have $((free_kib >> 20)) GiB;" \
       "set DIR to a bigger disk" >&2
  exit 2
fi

. scripts/lib/bench_out.sh
bench_begin bigger_than_ram "FACTOR=$FACTOR THREADS=$THREADS DIMS=$DIMS scripts/bigger_than_ram.sh"
CSV=$(bench_csv bigger_than_ram "started,host,input_bytes,rows,dims,threads,step,wall_s,peak_rss_mib,gb_per_s")
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
V=${VECTRO:-target/release/vectro}
gib() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 2^30}'; }

# step NAME BYTES CMD...: runs CMD under /usr/bin/time -v, prints one table row.
step() {
  local name=$1 nbytes=$2; shift 2
  /usr/bin/time -v -o "$DIR/t.$name" "$@" > "$DIR/t.$name.out"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$DIR/t.$name")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$DIR/t.$name")
  local gbs
  gbs=$(awk -v b="$nbytes" -v t="$wall" 'BEGIN {if (t > 0) printf "%.2f", b / 1e9 / t; else print "-"}')
  echo "| $name | $wall | $rss | $gbs |"
  echo "$BENCH_STARTED,$BENCH_HOST,$bytes,$rows,$DIMS,$THREADS,$name,$wall,$rss,$gbs" >> "$CSV"
}

echo "MemTotal $(gib $((mem_kib * 1024))) GiB; input $(gib "$bytes") GiB ($rows rows × $DIMS dims) in $DIR;" \
     "$THREADS threads; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg) at start."
echo
echo "| step | wall s | peak RSS MiB | GB/s of float32 |"
echo "|---|---|---|---|"
step generate "$bytes" $V generate --rows "$rows" --dims "$DIMS" --out "$IN" --threads "$THREADS" --quiet
step compress "$bytes" $V compress --in "$IN" --out "$OUT" --threads "$THREADS" --quiet
if $V verify --help > /dev/null 2>&1; then
  step verify "$bytes" $V verify "$OUT"
else
  step info "$bytes" $V info "$OUT"
fi
step eval-sample "$bytes" $V eval --orig "$IN" --comp "$OUT" --k 10 --sample-queries 10 --threads "$THREADS" --quiet
rm -f "$IN"   # the decompressed copy below needs the room
step decompress "$bytes" $V decompress --in "$OUT" --out "$BACK" --threads "$THREADS" --no-fsync --quiet
echo
echo "Output $(gib "$(stat -c %s "$OUT")") GiB. eval (10 sampled queries, recall@10):"
cat "$DIR/t.eval-sample.out"
[ "$(stat -c %s "$BACK")" -gt "$(( rows * DIMS * 4 ))" ] || { echo "decompressed size is wrong" >&2; exit 1; }
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
