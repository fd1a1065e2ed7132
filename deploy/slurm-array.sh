#!/usr/bin/env bash
# Compress a dataset on a Slurm cluster: one job-array task per shard, then a merge job
# that starts only when every task succeeded (afterok).
#
#   deploy/slurm-array.sh IN OUT [SHARDS]
#
#   IN      a .npy, a directory of .npy files, or a quoted glob ('dump/part-*.npy'), on a
#           file system every node sees. Files are read as one matrix in natural order.
#   OUT     the merged container to write, e.g. /shared/embeddings.vectro. The shards go to
#           OUT.parts/part-K.vectro, the task logs beside them.
#   SHARDS  number of array tasks (default 4). More shards than chunks is refused.
#
# Environment: VECTRO (the binary, default `vectro` on PATH), CODEC (default int8),
# CHUNK_ROWS (rows per chunk; default about 4 MiB of input; must not change between tasks),
# SBATCH_EXTRA (more sbatch flags, e.g. "--partition=cpu --time=4:00:00"), WAIT=1 to block
# until the merge job ends (its exit code becomes this script's).
#
# A failed task can be resubmitted alone (sbatch --array=K deploy/slurm-array.sh --task IN
# OUT); tasks whose shard is already complete and verified exit 0 at once, so resubmitting
# the whole array is safe too. Then submit the merge again (--merge OUT).
#
# The per-task resources below are defaults; sbatch flags on the command line win.
#SBATCH --job-name=vectro
#SBATCH --cpus-per-task=1
#SBATCH --ntasks=1
set -euo pipefail

VECTRO=${VECTRO:-vectro}
CODEC=${CODEC:-int8}

case "${1:-}" in
--task)
    # One array task: SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT pick the shard.
    IN=$2 OUT=$3
    tuning=()
    [ -n "${CHUNK_ROWS:-}" ] && tuning+=(--chunk-rows "$CHUNK_ROWS")
    exec "$VECTRO" compress --in "$IN" --out "$OUT.parts/part-{shard}.vectro" --codec "$CODEC" "${tuning[@]}" --shard auto --threads "${SLURM_CPUS_PER_TASK:-0}" --quiet
    ;;
--merge)
    # Joins the shards without re-encoding; every chunk's checksum is checked on the way.
    OUT=$2
    "$VECTRO" merge "$OUT.parts" --out "$OUT" --quiet
    exec "$VECTRO" info "$OUT"
    ;;
-h | --help | "")
    sed -n '2,/^set -euo/p' "$0" | sed '$d'
    exit 2
    ;;
esac

IN=$1 OUT=$2 SHARDS=${3:-4}
mkdir -p "$OUT.parts"
# shellcheck disable=SC2086 # SBATCH_EXTRA is a list of flags
array=$(sbatch --parsable ${SBATCH_EXTRA:-} --array="0-$((SHARDS - 1))" \
    --output="$OUT.parts/slurm-%A_%a.log" "$0" --task "$IN" "$OUT")
array=${array%%;*}
echo "submitted compress array $array ($SHARDS tasks)"
wait_flag=()
[ "${WAIT:-0}" = 1 ] && wait_flag=(--wait)
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_EXTRA:-} "${wait_flag[@]}" --dependency="afterok:$array" \
    --kill-on-invalid-dep=yes --job-name=vectro-merge \
    --output="$OUT.parts/slurm-merge-%j.log" "$0" --merge "$OUT")
echo "submitted merge ${merge%%;*} (after $array succeeds)"
if [ "${WAIT:-0}" = 1 ] && [ ! -s "$OUT" ]; then
    echo "the merge did not write $OUT: see the logs in $OUT.parts/" >&2
    exit 1
fi
