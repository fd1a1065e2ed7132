#!/usr/bin/env bash
# Byte-identity check of the compress engine against a reference build.
#
#   scripts/check_identical_engine.sh REF_BINARY [NEW_BINARY] [WORKDIR]
#
# Generates one data set, then writes containers with both binaries (every codec, each
# plain and with --zstd 3, 1 and 2 threads, a frozen --codebook, --shard, stdin/stdout,
# the default chunk size) and `cmp`s each pair; the tools' own output goes to WORKDIR/log. Exits non-zero on any
# difference. NEW_BINARY defaults to target/release/vectro.
set -euo pipefail
ref=${1:?usage: $0 REF_BINARY [NEW_BINARY] [WORKDIR]}
new=${2:-target/release/vectro}
work=${3:-$(mktemp -d)}
mkdir -p "$work/ref" "$work/new"
log=$work/log
: >"$log"
"$ref" generate --rows 3000 --dims 64 --clusters 10 --seed 7 --out "$work/x.npy" --force -q >>"$log" 2>&1
codecs=(int8 int8:rotate=1 int4 int4:rotate=1 binary binary:rotate=1 f16 bf16 pq:m=8 opq:m=8 binary-itq)
fail=0
check() { # name
    if cmp -s "$work/ref/$1" "$work/new/$1"; then
        echo "same  $1"
    else
        echo "DIFF  $1"
        fail=1
    fi
}
run() { # name args...
    local name=$1
    shift
    "$ref" compress --in "$work/x.npy" --out "$work/ref/$name" --force --no-fsync -q "$@" >>"$log" 2>&1
    "$new" compress --in "$work/x.npy" --out "$work/new/$name" --force --no-fsync -q "$@" >>"$log" 2>&1
    check "$name"
}
for c in "${codecs[@]}"; do
    n=${c//[:=]/_}
    for t in 1 2; do
        run "$n.t$t.vectro" --codec "$c" --threads "$t" --chunk-rows 500
        run "$n.t$t.z3.vectro" --codec "$c" --threads "$t" --chunk-rows 500 --zstd 3
    done
done
# Frozen codebooks.
for c in pq:m=8 opq:m=8; do
    n=${c//[:=]/_}
    "$ref" train --in "$work/x.npy" --codec "$c" --out "$work/ref/$n.vcb" --force -q --threads 2 >>"$log" 2>&1
    "$new" train --in "$work/x.npy" --codec "$c" --out "$work/new/$n.vcb" --force -q --threads 2 >>"$log" 2>&1
    check "$n.vcb"
    "$ref" compress --in "$work/x.npy" --out "$work/ref/$n.frozen.vectro" --codebook "$work/ref/$n.vcb" --force --no-fsync -q >>"$log" 2>&1
    "$new" compress --in "$work/x.npy" --out "$work/new/$n.frozen.vectro" --codebook "$work/ref/$n.vcb" --force --no-fsync -q >>"$log" 2>&1
    check "$n.frozen.vectro"
done
# Shards, default chunk size, stdin and stdout.
for k in 0 1 2; do
    run "int8.shard$k.vectro" --codec int8 --chunk-rows 400 --shard "$k/3"
    run "pq.shard$k.z.vectro" --codec pq:m=8 --chunk-rows 400 --shard "$k/3" --zstd 1
done
run "int4.default.vectro" --codec int4
"$ref" compress --in - --out - --codec int8 --chunk-rows 700 -q <"$work/x.npy" >"$work/ref/stdin.vectro" 2>>"$log"
"$new" compress --in - --out - --codec int8 --chunk-rows 700 -q <"$work/x.npy" >"$work/new/stdin.vectro" 2>>"$log"
check stdin.vectro
# Decompress both ways.
"$ref" decompress --in "$work/ref/opq_m_8.t2.z3.vectro" --out "$work/ref/d.npy" --force --no-fsync -q >>"$log" 2>&1
"$new" decompress --in "$work/ref/opq_m_8.t2.z3.vectro" --out "$work/new/d.npy" --force --no-fsync -q >>"$log" 2>&1
check d.npy
if [ "$fail" = 0 ]; then echo "all identical ($work)"; else echo "DIFFERENCES ($work)"; exit 1; fi
