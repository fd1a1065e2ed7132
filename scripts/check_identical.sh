#!/usr/bin/env bash
# Checks that two vectro binaries write byte-identical files: the generated dataset, a
# container for every codec and option family (with and without --zstd, on 1 and 2
# threads, in several chunks), a frozen codebook from `train` and containers encoded with
# it, and the decompressed .npy of each container.
#
#   scripts/check_identical.sh OLD_VECTRO NEW_VECTRO [ROWS] [DIMS]
#
# e.g. scripts/check_identical.sh /path/to/vectro-before target/release/vectro
# Exits 0 when every pair matches, 1 on the first difference (naming the file).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 OLD_VECTRO NEW_VECTRO [ROWS] [DIMS]" >&2
    exit 2
fi
A=$(realpath "$1")
B=$(realpath "$2")
ROWS=${3:-3000}
DIMS=${4:-96}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/a" "$W/b"

same() {
    if ! cmp -s "$W/a/$1" "$W/b/$1"; then
        echo "DIFFERENT: $1" >&2
        cmp "$W/a/$1" "$W/b/$1" >&2 || true
        exit 1
    fi
    n=$((n + 1))
}
n=0

# Both binaries run the same command in their own directory: $X is the binary, $D the directory.
both() {
    for side in a b; do
        if [ $side = a ]; then X=$A; else X=$B; fi
        D=$W/$side
        if ! (cd "$D" && "$X" "$@" --quiet --force >/dev/null 2>"$W/log"); then
            echo "FAILED ($X): $*" >&2
            cat "$W/log" >&2
            exit 1
        fi
    done
}

both generate --rows "$ROWS" --dims "$DIMS" --clusters 20 --seed 7 --out x.npy
same x.npy
# Odd rows, so the last chunk is short.
both generate --rows 1001 --dims 40 --clusters 5 --seed 3 --out y.npy
same y.npy
# Containers record the input's mtime: give both copies the same one.
touch -d @1600000000 "$W"/a/*.npy "$W"/b/*.npy

codecs="int8 int8:rotate=1 int4 int4:rotate=1 binary binary:rotate=1 f16 bf16 pq:m=8 opq:m=8 binary-itq"
for codec in $codecs; do
    tag=${codec//[:=,]/_}
    for zstd in none 3; do
        for threads in 1 2; do
            out="$tag.z$zstd.t$threads.vectro"
            z=()
            [ "$zstd" = none ] || z=(--zstd "$zstd")
            both compress --in x.npy --out "$out" --codec "$codec" "${z[@]}" \
                --threads "$threads" --chunk-rows 700 --no-fsync
            same "$out"
        done
    done
    both decompress --in "$tag.z3.t2.vectro" --out "$tag.npy"
    same "$tag.npy"
done
for codec in int8 int4:rotate=1 binary f16; do
    tag=${codec//[:=,]/_}
    both compress --in y.npy --out "y.$tag.vectro" --codec "$codec" --chunk-rows 128 --no-fsync
    same "y.$tag.vectro"
done

for codec in pq:m=8 opq:m=8; do
    tag=${codec//[:=,]/_}
    both train --in x.npy --codec "$codec" --out "$tag.vcb" --train-rows 2000
    same "$tag.vcb"
    for threads in 1 2; do
        both compress --in x.npy --out "$tag.frozen.t$threads.vectro" --codebook "$tag.vcb" \
            --zstd 3 --threads "$threads" --chunk-rows 700 --no-fsync
        same "$tag.frozen.t$threads.vectro"
    done
done

both compress --in x.npy --out auto.vectro --codec auto --min-cosine 0.95 --sample 500 --no-fsync
same auto.vectro

echo "identical: $n files ($ROWS x $DIMS), $A vs $B"
