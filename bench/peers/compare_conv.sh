#!/usr/bin/env bash
# reel's convolution beside PyTorch's on the shapes of bench/bench_conv.cpp, in one run: reel's
# benchmark and the peer script alternate `passes` times (default 3) and each side keeps its best
# time per shape, so that a slow minute of a shared VM hits both sides alike.
#   bench/peers/compare_conv.sh [build dir] [passes]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
passes=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pass in $(seq "$passes"); do
  OMP_WAIT_POLICY=passive "$build/bench/bench_conv" --benchmark_min_time=0.2 \
    --benchmark_repetitions=2 --benchmark_format=json > "$tmp/reel$pass.json"
  "$here/run.sh" conv.py --repeat 2 > "$tmp/torch$pass.txt"
done
head -1 "$tmp/torch1.txt"
python3 "$here/compare.py" "$tmp"/reel*.json -- "$tmp"/torch*.txt
