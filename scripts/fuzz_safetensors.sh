#!/usr/bin/env bash
# Fuzzes the safetensors reader with libFuzzer under AddressSanitizer + UBSan.
#
#   scripts/fuzz_safetensors.sh [SECONDS=300] [extra libFuzzer flags...]
#   build-fuzz/fuzz_safetensors some/crash-file              # then replay one input
#
# Builds build-fuzz/fuzz_safetensors with clang (its own folder and ninja file; the CMake build
# never needs clang): the reader and the target are instrumented for coverage, core/ and the CPU
# kernels are compiled with the sanitizers only. Seeds come from tests/fuzz/corpus_safetensors
# (read only); what the fuzzer learns goes to build-fuzz/corpus, crashes to build-fuzz/artifacts.
# A 4 KiB input may not allocate 64 MiB (-malloc_limit_mb), so an allocation that the file's size
# does not justify is a finding. Keep crashers: add them to tests/fuzz/make_corpus.py.
set -euo pipefail
source "$(dirname "$0")/env.sh"
SECONDS_TO_RUN=${1:-300}
shift || true
OUT=$REEL_ROOT/build-fuzz

if ! command -v clang++ >/dev/null 2>&1 || ! command -v ninja >/dev/null 2>&1; then
  SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
  $SUDO apt-get update && $SUDO apt-get install -y clang libomp-dev ninja-build nlohmann-json3-dev
fi
clang++ --version | head -1

# The include root, as CMake lays it out: <reel/core/...>, <reel/kernels/...>.
mkdir -p "$OUT/include/reel" "$OUT/corpus" "$OUT/artifacts"
for dir in core kernels; do ln -sfn "$REEL_ROOT/$dir" "$OUT/include/reel/$dir"; done

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CXXFLAGS="-std=c++17 -O1 -g -fno-omit-frame-pointer -fopenmp $SAN -I$OUT/include"
{
  echo "cxxflags = $CXXFLAGS"
  echo "rule cxx"
  echo "  command = clang++ -MMD -MF \$out.d \$cxxflags \$extra -c \$in -o \$out"
  echo "  depfile = \$out.d"
  echo "  deps = gcc"
  echo "rule link"
  echo "  command = clang++ -fsanitize=fuzzer $SAN -fopenmp \$in -o \$out"
  objs=""
  for src in "$REEL_ROOT"/core/*.cpp "$REEL_ROOT"/kernels/cpu/*.cpp \
    "$REEL_ROOT"/kernels/cuda/runtime_stub.cpp "$REEL_ROOT"/tests/fuzz/fuzz_safetensors.cpp; do
    name=${src#"$REEL_ROOT"/}
    obj=obj/${name//\//_}.o
    echo "build $obj: cxx $src"
    case $name in
      core/serialize.cpp | tests/fuzz/*) echo "  extra = -fsanitize=fuzzer-no-link" ;;
      *_avx512.cpp) echo "  extra = -mavx512f -mavx512vl -mavx2 -mfma" ;;
      *_avx2.cpp) echo "  extra = -mavx2 -mfma" ;;
    esac
    objs="$objs $obj"
  done
  echo "build fuzz_safetensors: link$objs"
} >"$OUT/build.ninja"
ninja -C "$OUT" -j "${JOBS:-2}" fuzz_safetensors

cd "$OUT"
OMP_NUM_THREADS=1 ./fuzz_safetensors -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=64 -print_final_stats=1 \
  -dict="$REEL_ROOT/tests/fuzz/safetensors.dict" -artifact_prefix="$OUT/artifacts/" \
  "$@" "$OUT/corpus" "$REEL_ROOT/tests/fuzz/corpus_safetensors"
