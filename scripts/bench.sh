#!/usr/bin/env bash
# End-to-end throughput of vectro against the machine's own limits, in one run.
#
#   scripts/bench.sh                 # 4 GiB input, 5 runs of each, 2 threads
#   GIB=8 RUNS=5 THREADS=2 DIR=/big/scratch scripts/bench.sh
#   RSS_SIZES="1 4 16" scripts/bench.sh   # also peak RSS of compress per input size
#   CODECS="int4 binary f16 bf16" scripts/bench.sh   # also each codec's compress time / int8's
#   CODECS="int4 int4:rotate=1" CODECS_ONLY=1 scripts/bench.sh   # only that comparison
#   GIB=0.01 RUNS=1 VECTRO=path/to/vectro scripts/bench.sh    # a seconds-long smoke run, no build
#
# Each run appends its raw timings to bench/runs/<date>-<host>/bench.csv and what it prints
# to bench.md there (scripts/lib/bench_out.sh; BENCH_DIR overrides the directory).
#
# Baselines, each timed in the same run as what it is compared with:
#   cat FILE > /dev/null             the sequential read of the input (warm cache)
#   dd if=/dev/zero conv=fsync       writing the output's bytes durably
#   cp OUT-sized file                writing a decompressed output's bytes (not durable)
#   numpy                            the int8 reference semantics, chunked, in a local venv
# Outputs are deleted between runs (overwriting a file still being written back stalls),
# every writer (vectro's and the baselines) runs once untimed right before its timed run,
# so each writes into memory freed a moment before, and the input is read once before
# timing so the page cache is warm.
# Prints markdown tables: median wall seconds, input GB/s, ratio to the baseline, and CPU
# seconds (user+sys), which stay meaningful when the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench_out.sh

GIB=${GIB:-4}
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
DIMS=${DIMS:-384}
RSS_SIZES=${RSS_SIZES:-}
CODECS=${CODECS:-}
CODECS_ONLY=${CODECS_ONLY:-}
VENV=${VENV:-target/bench-venv}
if [ -z "${DIR:-}" ]; then
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/vectro-bench.XXXXXX")
  trap 'rm -rf "$DIR"' EXIT
else
  mkdir -p "$DIR"
  trap 'rm -f "$DIR"/in.npy "$DIR"/out.* "$DIR"/copy.* "$DIR"/rss.npy "$DIR"/t.* "$DIR"/numpy_int8.py' EXIT
fi

bench_begin bench "GIB=$GIB RUNS=$RUNS THREADS=$THREADS DIMS=$DIMS${CODECS:+ CODECS=\"$CODECS\"}${CODECS_ONLY:+ CODECS_ONLY=1}${RSS_SIZES:+ RSS_SIZES=\"$RSS_SIZES\"} scripts/bench.sh"
CSV=$(bench_csv bench "started,host,input_gib,dims,threads,measure,run,wall_s,cpu_s,peak_rss_mib")
# Raw rows: one per timed run (measure = the timing's name: codec_int8, codec_int4_rotate_1,
# compress_nofsync, compress_durable, cat, dd_fsync, decompress, cp, numpy), then one per
# peak-RSS measurement (rss_compress, rss_decompress).
csv_row() { echo "$BENCH_STARTED,$BENCH_HOST,$1,$DIMS,$THREADS,$2,$3,$4,$5,$6" >> "$CSV"; }

if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet; fi
V=${VECTRO:-target/release/vectro}
IN=$DIR/in.npy

rows_for() { python3 -c "print(int($1 * 2**30) // ($DIMS * 4))" 2>/dev/null || echo $(( $1 * 1073741824 / (DIMS * 4) )); }

echo "generating ${GIB} GiB ($DIMS dims) in $DIR ..." >&2
$V generate --rows "$(rows_for "$GIB")" --dims "$DIMS" --out "$IN" --quiet --force
IN_BYTES=$(stat -c %s "$IN")

# timed NAME CMD...: runs CMD, appends "wall cpu" to $DIR/t.NAME. The wall time is read
# in nanoseconds (time's %e has 10 ms steps, 5% of a 0.2 s run); CPU from time's %U + %S.
timed() {
  local name=$1 t0 t1; shift
  t0=$(date +%s%N)
  /usr/bin/time -f "%U %S" -o "$DIR/t.last" "$@" > /dev/null
  t1=$(date +%s%N)
  awk -v w="$(( t1 - t0 ))" '{printf "%.4f %.3f\n", w / 1e9, $1 + $2}' "$DIR/t.last" >> "$DIR/t.$name"
}
# warm_timed NAME OUT CMD...: runs CMD once untimed, deletes OUT, then times CMD (OUT kept).
warm_timed() {
  local name=$1 out=$2; shift 2
  "$@" > /dev/null
  rm -f "$out"
  sync   # no dirty backlog from the warm-up to throttle the timed run
  timed "$name" "$@"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
wall() { cut -d' ' -f1 < "$DIR/t.$1" | median; }
# Runs over 1.5x the fastest of their kind: on this VM, writes into memory the host has
# taken back stall (see docs/performance.md), and a median moves once most runs do.
slow() { cut -d' ' -f1 < "$DIR/t.$1" | sort -n | awk 'NR == 1 {m = $1} $1 > 1.5 * m {n++} END {printf "%d of %d", n, NR}'; }
cpu() { cut -d' ' -f2 < "$DIR/t.$1" | median; }

# The numpy reference, chunked and preallocated like vectro, in its own venv.
NUMPY=""
if [ -z "$CODECS_ONLY" ] && command -v python3 > /dev/null; then
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet numpy || true
  fi
  if "$VENV/bin/python" -c "import numpy" 2> /dev/null; then
    NUMPY="$VENV/bin/python"
    cat > "$DIR/numpy_int8.py" <<'PY'
import sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
v = np.load(src, mmap_mode="r")
rows, dims = v.shape
step = max(1, (4 << 20) // (dims * 4))
with open(dst, "wb") as f:
    for a in range(0, rows, step):
        x = np.asarray(v[a:a + step], dtype=np.float32)
        m = np.abs(x).max(axis=1)
        s = (m / np.float32(127)).astype(np.float32)
        s[m == 0] = np.float32(1.0)
        q = np.rint(x / s[:, None]).astype(np.int8)
        f.write(q.tobytes()); f.write(s.tobytes())
PY
  fi
fi

rm -f "$DIR"/t.*
cat "$IN" > /dev/null
# A codec spec as a file-name part: int4:rotate=1 -> int4_rotate_1.
tag() { echo "$1" | tr ':=,' '___'; }
for _ in $(seq "$RUNS"); do
  cat "$IN" > /dev/null   # keep the cache warm: this VM drains it after ~60 s idle
  # Each codec right after int8, so the pair sees the same machine load.
  # Each timed run follows an untimed run of the same codec whose output was just deleted,
  # so both codecs of a pair write into as much recently freed memory as they need (on
  # this VM pages the host has taken back cost ~1 s a GiB; f16 timed after int8 alone
  # measured 0.15 s or 1.1 s depending on that).
  for c in $CODECS; do
    for k in int8 "$c"; do
      $V compress --in "$IN" --out "$DIR/out.vectro" --codec "$k" --threads "$THREADS" --no-fsync --quiet --force > /dev/null
      rm -f "$DIR/out.vectro"
      timed "codec_$(tag "$k")" $V compress --in "$IN" --out "$DIR/out.vectro" --codec "$k" --threads "$THREADS" --no-fsync --quiet
      rm -f "$DIR/out.vectro"
    done
  done
  [ -n "$CODECS_ONLY" ] && continue
  timed cat cat "$IN"
  rm -f "$DIR/out.vectro" "$DIR/out.npy" "$DIR/copy.npy" "$DIR/copy.out"
  # Every writer below runs once untimed, its output deleted, then timed: on this VM,
  # memory left idle for ~10 s is taken back by the host and costs ~2 s a GiB to touch
  # again (a 4 GiB dd: 9.8 s on such pages, 1.0 s on pages freed a moment before), so a
  # writer timed first after an idle spell would pay for it and the next would not.
  warm_timed compress_nofsync "$DIR/out.vectro" $V compress --in "$IN" --out "$DIR/out.vectro" --threads "$THREADS" --no-fsync --quiet
  OUT_BYTES=$(stat -c %s "$DIR/out.vectro")
  rm -f "$DIR/out.vectro"
  warm_timed compress_durable "$DIR/out.vectro" $V compress --in "$IN" --out "$DIR/out.vectro" --threads "$THREADS" --quiet
  warm_timed dd_fsync "$DIR/copy.out" dd if=/dev/zero of="$DIR/copy.out" bs=1M count=$(( (OUT_BYTES + 1048575) / 1048576 )) conv=fsync status=none
  rm -f "$DIR/copy.out"
  warm_timed decompress "$DIR/out.npy" $V decompress --in "$DIR/out.vectro" --out "$DIR/out.npy" --threads "$THREADS" --no-fsync --quiet
  rm -f "$DIR/out.npy"
  warm_timed cp "$DIR/copy.npy" cp "$IN" "$DIR/copy.npy"
  rm -f "$DIR/copy.npy"
  if [ -n "$NUMPY" ]; then
    timed numpy "$NUMPY" "$DIR/numpy_int8.py" "$IN" "$DIR/out.numpy"
    rm -f "$DIR/out.numpy"
  fi
  rm -f "$DIR/out.vectro"
done

for f in "$DIR"/t.*; do
  name=${f##*/t.}
  [ "$name" = last ] && continue
  n=0
  while read -r w c; do n=$((n + 1)); csv_row "$GIB" "$name" "$n" "$w" "$c" ""; done < "$f"
done

gbs() { awk -v b="$IN_BYTES" -v t="$1" 'BEGIN {printf "%.2f", b / 1e9 / t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
row() { # NAME BASELINE GOAL
  local w c bw bc
  w=$(wall "$1"); c=$(cpu "$1"); bw=$(wall "$2"); bc=$(cpu "$2")
  echo "| $1 | $w | $(gbs "$w") | $2 | $bw | **$(ratio "$w" "$bw")** | $3 | $c / $bc = $(ratio "$c" "$bc") |"
}
if [ -n "$CODECS" ]; then
  echo
  echo "Compress with --no-fsync, $THREADS threads, each codec against int8 (timed alternately, medians of $RUNS pairs; int8's median over all pairs); load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| codec | wall s | input GB/s | int8 wall s | ratio to int8 | goal | CPU s (user+sys), ratio | runs > 1.5x the fastest (codec; int8) |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in $CODECS; do
    t=codec_$(tag "$c")
    echo "| $c | $(wall "$t") | $(gbs "$(wall "$t")") | $(wall codec_int8) | **$(ratio "$(wall "$t")" "$(wall codec_int8)")** | ≤ 1.5 | $(cpu "$t") / $(cpu codec_int8) = $(ratio "$(cpu "$t")" "$(cpu codec_int8)") | $(slow "$t"); $(slow codec_int8) |"
  done
fi
[ -n "$CODECS_ONLY" ] && exit 0

echo
echo "Input: $(awk -v b="$IN_BYTES" 'BEGIN {printf "%.2f GiB", b / 2^30}'), $DIMS dims, output $(awk -v b="${OUT_BYTES:-0}" 'BEGIN {printf "%.2f GiB", b / 2^30}'); $THREADS threads; medians of $RUNS runs; load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores."
echo
echo "| what | wall s | input GB/s | baseline | baseline s | ratio | goal | CPU s (user+sys), ratio |"
echo "|---|---|---|---|---|---|---|---|"
row compress_nofsync cat "≤ 1.5"
row compress_durable dd_fsync "≤ 1.3"
row decompress cp "≤ 1.5"
[ -n "$NUMPY" ] && row compress_nofsync numpy "faster"
echo "| cat | $(wall cat) | $(gbs "$(wall cat)") | | | | | $(cpu cat) |"

if [ -n "$RSS_SIZES" ]; then
  echo
  echo "| input GiB | compress peak RSS MiB | decompress peak RSS MiB |"
  echo "|---|---|---|"
  rm -f "$IN"
  for g in $RSS_SIZES; do
    R=$DIR/rss.npy
    $V generate --rows "$(rows_for "$g")" --dims "$DIMS" --out "$R" --quiet --force
    c=$($V compress --in "$R" --out "$DIR/out.vectro" --threads "$THREADS" --no-fsync --json --force \
      | python3 -c "import json,sys; print(json.load(sys.stdin)['peak_rss_bytes'] >> 20)")
    rm -f "$R"
    d=$($V decompress --in "$DIR/out.vectro" --out "$DIR/out.npy" --threads "$THREADS" --no-fsync --json --force \
      | python3 -c "import json,sys; print(json.load(sys.stdin)['peak_rss_bytes'] >> 20)")
    rm -f "$DIR/out.vectro" "$DIR/out.npy"
    echo "| $g | $c | $d |"
    csv_row "$g" rss_compress 1 "" "" "$c"
    csv_row "$g" rss_decompress 1 "" "" "$d"
  done
fi
