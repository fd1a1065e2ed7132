#!/usr/bin/env bash
# The aarch64 stage: cross-compiles the SIMD kernels' tests for aarch64-unknown-linux-gnu
# and runs them under qemu-user, so every NEON kernel is checked against its scalar
# reference (the `simd` agreement tests). By default it builds `src/simd` alone, as the
# small crate ci/simd-aarch64 (a minute or two from cold); `--full` cross-builds the whole
# library's unit tests instead and runs the simd and codec ones (codec round trips on
# aarch64; the first build takes long: Arrow, Parquet and tokio for another target).
# Correctness only: an emulated CPU says nothing about speed.
#
# Installs what it needs: Debian's qemu-user, gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross with apt when missing (as root, scripts/lib/venv.sh's apt_install),
# and the Rust target with rustup.
# Builds into target/aarch64 so the host build in target/ is left alone.
#
#   scripts/test_aarch64.sh                 # every simd test (ci/simd-aarch64)
#   scripts/test_aarch64.sh --full          # the library's simd and codec unit tests
#   scripts/test_aarch64.sh --full FILTER...  # other unit-test filters (libtest's)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu

missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || missing+=(libc6-dev-arm64-cross)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"
# The C in the dependencies (zstd) is built by the cc crate, whose default compiler for
# this target is the same aarch64-linux-gnu-gcc.
# qemu's "max" CPU has every extension it emulates, dotprod among them, and the idot test
# then insists that the `sdot` path was detected (the baseline path is tested either way).
export QEMU_CPU=max VECTRO_EXPECT_DOTPROD=1
# The detected level, not a cap inherited from the caller's environment.
unset VECTRO_SIMD

if [ "${1:-}" != --full ]; then
    cargo test --release --target "$TARGET" --target-dir target/aarch64 \
        --manifest-path ci/simd-aarch64/Cargo.toml
    exit
fi
shift
if [ "$#" = 0 ]; then
    set -- simd codec
fi
cargo test --release --target "$TARGET" --target-dir target/aarch64 --lib -- "$@"
