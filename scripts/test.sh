#!/usr/bin/env bash
# The test command: installs what is missing, builds reel twice (Release, and the unit tests
# under AddressSanitizer + UBSan) and runs every test with CTest.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$REEL_ROOT/scripts/deps.sh"

# Device code for the oldest and the newest architecture we support (sm_75, sm_90): compiling
# for all five of the default list adds minutes to a CI run, where nvcc takes most of the build,
# and checks nothing more without a GPU. REEL_CUDA_ARCHITECTURES overrides it.
cmake -S "$REEL_ROOT" -B "$REEL_ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_CUDA_ARCHITECTURES=${REEL_CUDA_ARCHITECTURES:-75;90}"
cmake --build "$REEL_ROOT/build" -j "$JOBS"
ctest --test-dir "$REEL_ROOT/build" --output-on-failure -j "$JOBS"

# The sanitizer build compiles at -O1 with line tables only (-g1): a third of the compile time of
# -O2 -g, the same findings, and stack traces still name file and line.
cmake -S "$REEL_ROOT" -B "$REEL_ROOT/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DREEL_ASAN=ON -DREEL_CUDA=OFF -DREEL_BUILD_BENCH=OFF -DREEL_BUILD_APPS=OFF
cmake --build "$REEL_ROOT/build-asan" -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir "$REEL_ROOT/build-asan" --output-on-failure -j "$JOBS" -L "unit|emulated"
