#!/usr/bin/env bash
# Encode throughput of the training-free widths against int8's, in one run: sq:bits=1..8,
# int4:rotate=1 and binary:rotate=1, each beside int8 (issue 24's goal: within 2x of int8).
#
#   scripts/bench_encode.sh                      # the 10k MiniLM sample tiled 40x (614 MB)
#   TILE=40 RUNS=7 THREADS=1 WALL_THREADS=2 scripts/bench_encode.sh
#   CODECS="sq:bits=4 int4:rotate=1" scripts/bench_encode.sh
#   NPY=other.npy VECTRO=path/to/vectro scripts/bench_encode.sh
#
# Two numbers per codec, both as a ratio to int8 (codec / int8: 1 is int8's speed, 2 is half):
#   compress   `vectro compress --no-fsync` of the tiled input (in the page cache) to a file,
#              end to end as a user runs it; CPU seconds (user + sys, from getrusage) of
#              each run, the codec's run right after an int8 run, ratio = the median over runs
#              of each pair's ratio. CPU time, not wall time: the machine may be shared and
#              wall times then move several-fold between runs. Printed with the spread
#              (lowest and highest pair ratio) beside the median.
#   wall       the same pairs at --threads $WALL_THREADS (2, compress's default; 0 skips
#              them), wall-clock seconds: what a user waits for. On a shared machine the
#              spread says how far to trust it.
#   encoder    the codec's encode alone on rows in memory (`vectro bench --threads 1`, the
#              median of RUNS timed passes over the 10k sample), in MB/s of input; wall time
#              of a single thread, so a loaded machine stretches both codecs alike.
# "Encode throughput" in the goal is the compress column (what a user sees); the encoder
# column is the stricter ratio, with everything but the encoder taken away.
#
# Each run appends its raw timings to bench/runs/<date>-<host>/bench_encode.csv and what it
# prints to bench_encode.md there (scripts/lib/bench_out.sh).
set -euo pipefail
NPY=$(realpath "${NPY:-/work/shared/data/minilm_wordnet_10k.npy}")
cd "$(dirname "$0")/.."
. scripts/lib/bench_out.sh
. scripts/lib/venv.sh

TILE=${TILE:-40}
RUNS=${RUNS:-7}
THREADS=${THREADS:-1}
WALL_THREADS=${WALL_THREADS:-2}
CODECS=${CODECS:-sq:bits=1 sq:bits=2 sq:bits=3 sq:bits=4 sq:bits=5 sq:bits=6 sq:bits=7 sq:bits=8 int4:rotate=1 binary:rotate=1}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/vectro-bench-encode.XXXXXX")
trap 'rm -rf "$DIR"' EXIT

bench_begin bench_encode "${VECTRO:+VECTRO=$VECTRO }TILE=$TILE RUNS=$RUNS THREADS=$THREADS WALL_THREADS=$WALL_THREADS NPY=$(basename "$NPY")${CODECS:+ CODECS=\"$CODECS\"} scripts/bench_encode.sh"
CSV=$(bench_csv bench_encode "started,host,input,input_bytes,threads,measure,codec,run,wall_s,cpu_s,mb_s")
csv_row() { echo "$BENCH_STARTED,$BENCH_HOST,$(basename "$NPY")x$TILE,$IN_BYTES,${T:-$THREADS},$1,$2,$3,$4,$5,$6" >> "$CSV"; }

if [ -z "${VECTRO:-}" ]; then nice cargo build --release --quiet; fi
V=${VECTRO:-target/release/vectro}
# numpy from the bench venv (PyPI), not the machine's python3.
PY=$(faiss_venv)/bin/python
IN=$DIR/in.npy
"$PY" - "$NPY" "$IN" "$TILE" <<'PY'
import sys
import numpy as np
x = np.load(sys.argv[1]).astype(np.float32)
np.save(sys.argv[2], np.tile(x, (int(sys.argv[3]), 1)))
PY
IN_BYTES=$(stat -c %s "$IN")

# One timed compress: "wall cpu" on stdout, both in seconds: wall from the monotonic clock,
# CPU = user + sys of the child from getrusage (microseconds; time's %U/%S have 10 ms steps,
# half of int8's whole run here).
compress() { # CODEC [THREADS]
  rm -f "$DIR/out.vectro"
  "$PY" - "$V" compress --in "$IN" --out "$DIR/out.vectro" --codec "$1" --threads "${2:-$THREADS}" \
    --no-fsync --quiet <<'PY'
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
w = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{w:.4f} {r.ru_utime + r.ru_stime:.4f}")
PY
  rm -f "$DIR/out.vectro"
}
tag() { echo "$1" | tr ':=,' '___'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

cat "$IN" > /dev/null
for run in $(seq "$RUNS"); do
  cat "$IN" > /dev/null
  for c in $CODECS; do
    read -r iw ic < <(compress int8)
    read -r cw cc < <(compress "$c")
    csv_row compress int8 "$run" "$iw" "$ic" ""
    csv_row compress "$c" "$run" "$cw" "$cc" ""
    echo "$iw $ic $cw $cc" >> "$DIR/p.$(tag "$c")"
    if [ "$WALL_THREADS" -gt 0 ]; then
      read -r iw ic < <(compress int8 "$WALL_THREADS")
      read -r cw cc < <(compress "$c" "$WALL_THREADS")
      T=$WALL_THREADS csv_row compress-wall int8 "$run" "$iw" "$ic" ""
      T=$WALL_THREADS csv_row compress-wall "$c" "$run" "$cw" "$cc" ""
      echo "$iw $ic $cw $cc" >> "$DIR/w.$(tag "$c")"
    fi
  done
done

# The encoder alone: one `vectro bench` over every codec (int8 first), RUNS timed passes each.
"$V" bench "$NPY" --threads 1 --runs "$((RUNS < 3 ? 3 : RUNS))" --codecs int8 $CODECS --json 2> /dev/null > "$DIR/bench.json" || true
"$PY" - "$DIR/bench.json" > "$DIR/enc" <<'PY' || true
import json, sys
for c in json.load(open(sys.argv[1]))["codecs"]:
    print(c["codec"], c["compress_mb_s"])
PY
enc() { awk -v c="$1" '$1 == c {printf "%.0f", $2}' "$DIR/enc"; }
while read -r c m; do csv_row encoder "$c" median "" "" "$m"; done < "$DIR/enc"

MB=$(awk -v b="$IN_BYTES" 'BEGIN {printf "%.0f", b / 1e6}')
WALL_NOTE=""; if [ "$WALL_THREADS" -gt 0 ]; then WALL_NOTE=", then a pair at --threads $WALL_THREADS timed by the wall clock"; fi
spread() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f–%.2f", lo, hi}'; }
echo "Input: $(basename "$NPY") tiled ${TILE}x, $MB MB in the page cache; compress --no-fsync, $RUNS runs of each codec, each right after an int8 run: CPU time at --threads $THREADS${WALL_NOTE:-}; encoder alone: vectro bench --threads 1 on the untiled rows. Ratios: median over the pairs (lowest–highest). Load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores."
echo
echo "| codec | compress CPU s | int8 CPU s | **CPU ratio to int8** | CPU ratio spread | wall ratio, --threads $WALL_THREADS (spread) | compress MB/s (CPU) | encoder MB/s | int8 encoder MB/s | **encoder ratio** |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in $CODECS; do
  p=$DIR/p.$(tag "$c")
  cc=$(cut -d' ' -f4 < "$p" | median); ic=$(cut -d' ' -f2 < "$p" | median)
  cw=$(cut -d' ' -f3 < "$p" | median); iw=$(cut -d' ' -f1 < "$p" | median)
  r=$(awk '{print $4 / $2}' "$p" | median); rs=$(awk '{print $4 / $2}' "$p" | spread)
  w=$DIR/w.$(tag "$c"); wr="-"
  if [ -s "$w" ]; then wr="$(awk '{print $3 / $1}' "$w" | median | xargs printf '%.2f') ($(awk '{print $3 / $1}' "$w" | spread))"; fi
  e=$(enc "$c"); ei=$(enc int8)
  er=$(awk -v a="$ei" -v b="$e" 'BEGIN {if (b > 0) printf "%.1f", a / b; else print "-"}')
  echo "| $c | $cc | $ic | **$(printf '%.2f' "$r")** | $rs | $wr | $(awk -v m="$MB" -v t="$cc" 'BEGIN {printf "%.0f", m / t}') | ${e:--} | ${ei:--} | **$er** |"
done
