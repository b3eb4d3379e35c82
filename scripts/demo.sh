#!/usr/bin/env bash
# The main job: installs what is missing, builds reel, fetches the real handwritten digits
# (OpenCV's digits.png, with the rest of the test media) and runs `reel demo` (arguments are
# passed on, e.g. scripts/demo.sh --out /tmp/demo --epochs 8).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$REEL_ROOT/scripts/deps.sh"
cmake -S "$REEL_ROOT" -B "$REEL_ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$REEL_ROOT/build" -j "$JOBS" --target reel_cli
"$REEL_ROOT/scripts/fetch_test_media.sh" >/dev/null
"$REEL_ROOT/build/apps/reel" demo "$@"
