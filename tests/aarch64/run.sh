#!/usr/bin/env bash
# The NEON path, tested on an x86-64 machine: cross-build the kernels and the C++ parity test
# (tests/cpp/kernel_parity.cpp: every kernel against a double-precision reference, float32 and
# float64, both gate variants, H = 1, 13, 50, 129, batch 1 and batched, forward, backward and
# the batch-1 inference path) with Debian's g++-aarch64-linux-gnu, then run it under qemu-user.
# Ends with the test's own "N passed, M failed" line; exits non-zero on any failure.
#
#   bash tests/aarch64/run.sh            # installs the two packages with apt-get if missing
#   CXX_AARCH64=... QEMU_AARCH64=... bash tests/aarch64/run.sh   # other tools
set -euo pipefail
cd "$(dirname "$0")/../.."

CXX=${CXX_AARCH64:-aarch64-linux-gnu-g++}
QEMU=${QEMU_AARCH64:-qemu-aarch64}
SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
if ! command -v "$CXX" >/dev/null || ! command -v "$QEMU" >/dev/null; then
  echo "installing g++-aarch64-linux-gnu and qemu-user with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq g++-aarch64-linux-gnu qemu-user >/dev/null
fi

BUILD=build/aarch64
mkdir -p "$BUILD"
# The flags CMakeLists.txt gives the extension (Release: -O3), minus what only a Python module
# needs; the baseline unit gets no -m flag, so it is NEON as any AArch64 wheel would be.
FLAGS=(-std=c++17 -O3 -DNDEBUG -fopenmp -Wall -Wextra -Werror -fno-math-errno -Icpp)
SOURCES=(cpp/common.cpp cpp/adam.cpp cpp/dispatch.cpp cpp/inference.cpp cpp/isa_baseline.cpp
         tests/cpp/kernel_parity.cpp)
pids=()
objects=()
for src in "${SOURCES[@]}"; do
  [ -f "$src" ] || continue
  obj="$BUILD/$(basename "$src" .cpp).o"
  extra=()
  # The optimizer step rounds each operation as NumPy does (as in CMakeLists.txt).
  [ "$src" = cpp/adam.cpp ] && extra=(-ffp-contract=off)
  "$CXX" "${FLAGS[@]}" "${extra[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  objects+=("$obj")
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$CXX" -fopenmp -o "$BUILD/kernel_parity" "${objects[@]}"

OMP_NUM_THREADS=${OMP_NUM_THREADS:-3} "$QEMU" -L "$SYSROOT" "$BUILD/kernel_parity"
