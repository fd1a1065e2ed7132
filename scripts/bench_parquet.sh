#!/usr/bin/env bash
# Compressing from Parquet, against its peer in the same run:
#   vectro compress --codec int8 --threads 2 of a snappy Parquet file (a list<float> column)
#   vs  pyarrow.parquet.read_table of the same file alone (2 threads, timed in Python after
#   the imports): goal ratio <= 1.5;
#   and peak RSS of compress for a SMALL and a LARGE Parquet input (goal: they differ by
#   less than 64 MiB).
#
#   scripts/bench_parquet.sh [ROWS] [DIMS] [SMALL_ROWS] [LARGE_ROWS]
#       (default 1000000 x 384 for the speed ratio: 1.5 GB of float32; 700000 and 2800000
#        rows of 384 for the memory pair: about 1 GB and 4 GB)
#
# Uses the Python venv of scripts/test_python.sh (target/py-venv) for pyarrow; writes the
# files with pyarrow (row groups of 65536 rows, snappy). Outputs are written without fsync,
# from a warm page cache; wall times are the best of REPS (default 3) runs.
# VECTRO=path/to/vectro uses that binary instead of building one; WORK=dir puts the
# temporary files there (they take about 7 GB at the defaults).
# Each run appends to bench/runs/<date>-<host>/bench_parquet.csv and bench_parquet.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000} DIMS=${2:-384} SMALL=${3:-700000} LARGE=${4:-2800000}
. scripts/lib/bench_out.sh
bench_begin bench_parquet "REPS=${REPS:-3} scripts/bench_parquet.sh $ROWS $DIMS $SMALL $LARGE"
CSV=$(bench_csv bench_parquet "started,host,rows,dims,reps,what,value,baseline,baseline_value,ratio")
PY=${VECTRO_PY_VENV:-target/py-venv}/bin/python
if ! "$PY" -c 'import pyarrow' 2>/dev/null; then
    echo "needs pyarrow in $PY: run scripts/test_python.sh once (it builds the venv)" >&2
    exit 1
fi
if [ -z "${VECTRO:-}" ]; then cargo build --release --quiet --bin vectro; fi
V=$(realpath "${VECTRO:-target/release/vectro}")
W=$(mktemp -d "${WORK:-${TMPDIR:-/tmp}}/bench_parquet.XXXXXX")
trap 'rm -rf "$W"' EXIT

# ROWS x DIMS of random unit rows as a snappy Parquet file of one list<float> column,
# written 65536 rows at a time (never the whole table in memory).
write() { # PATH ROWS
    "$PY" - "$1" "$2" "$DIMS" <<'EOF'
import sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
path, rows, dims = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
schema = pa.schema([("embedding", pa.list_(pa.float32()))])
with pq.ParquetWriter(path, schema, compression="snappy") as w:
    for start in range(0, rows, 65536):
        n = min(65536, rows - start)
        x = rng.standard_normal((n, dims), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        offsets = pa.array(np.arange(0, (n + 1) * dims, dims, dtype=np.int32))
        col = pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1)))
        w.write_table(pa.table({"embedding": col}, schema=schema), row_group_size=65536)
EOF
}

best() { # best of REPS wall times of the shell command $1
    local b=999999 s e
    for _ in $(seq "${REPS:-3}"); do
        rm -f "$W/out.vectro"
        s=$(date +%s.%N); sh -c "$1" >/dev/null; e=$(date +%s.%N)
        b=$(echo "$b $s $e" | awk '{t = $3 - $2; print (t < $1 ? t : $1)}')
    done
    echo "$b"
}
peak_kib() { # peak RSS (KiB) of the shell command $1
    rm -f "$W/out.vectro"
    /usr/bin/time -f '%M' -o "$W/rss" sh -c "$1" >/dev/null
    tail -1 "$W/rss"
}
C="--no-fsync --quiet --threads 2 --codec int8"

write "$W/x.parquet" "$ROWS"
cat "$W/x.parquet" >/dev/null
# Timed inside Python, after the imports: read_table alone, not the interpreter's start.
t_read=$("$PY" - "$W/x.parquet" "${REPS:-3}" <<'EOF'
import sys, time
import pyarrow as pa, pyarrow.parquet as pq
pa.set_cpu_count(2)
best = 1e9
for _ in range(int(sys.argv[2])):
    s = time.perf_counter()
    t = pq.read_table(sys.argv[1], use_threads=True)
    best = min(best, time.perf_counter() - s)
    del t
print(best)
EOF
)
t_comp=$(best "$V compress --in $W/x.parquet --out $W/out.vectro $C")
mb=$(($(stat -c %s "$W/x.parquet") / 1000000))
rm -f "$W/x.parquet"

write "$W/small.parquet" "$SMALL"
write "$W/large.parquet" "$LARGE"
cat "$W/small.parquet" "$W/large.parquet" >/dev/null
rss_small=$(peak_kib "$V compress --in $W/small.parquet --out $W/out.vectro $C")
rss_large=$(peak_kib "$V compress --in $W/large.parquet --out $W/out.vectro $C")
smb=$(($(stat -c %s "$W/small.parquet") / 1000000))
lmb=$(($(stat -c %s "$W/large.parquet") / 1000000))

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); wall seconds, best of ${REPS:-3}"
awk -v r="$t_read" -v c="$t_comp" -v mb="$mb" -v rows="$ROWS" -v dims="$DIMS" 'BEGIN {
    printf "compress int8 of a %d MB Parquet (%d x %d float32, snappy)  %7.3f s  (pyarrow read_table alone %7.3f s)  ratio %.2f\n", mb, rows, dims, c, r, c / r
}'
awk -v s="$rss_small" -v l="$rss_large" -v smb="$smb" -v lmb="$lmb" 'BEGIN {
    printf "peak RSS of compress: %d MB input %.1f MiB, %d MB input %.1f MiB: difference %.1f MiB\n", smb, s / 1024, lmb, l / 1024, (l - s) / 1024
}'
row() { echo "$BENCH_STARTED,$BENCH_HOST,$ROWS,$DIMS,${REPS:-3},$1,$2,$3,$4,$(awk -v a="$2" -v b="$4" 'BEGIN {printf "%.3f", a / b}')" >> "$CSV"; }
row compress_int8_parquet_s "$t_comp" pyarrow_read_table_s "$t_read"
row peak_rss_kib_large_${LARGE} "$rss_large" peak_rss_kib_small_${SMALL} "$rss_small"
