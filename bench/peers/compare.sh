#!/usr/bin/env bash
# reel beside PyTorch on the shapes of one benchmark family (conv: bench/bench_conv.cpp and
# conv.py; lstm: bench/bench_lstm.cpp and lstm.py), in one run: reel's benchmark and the peer
# script alternate `passes` times (default 3) and each side keeps its best time per shape, so
# that a slow minute of a shared VM hits both sides alike.
#   bench/peers/compare.sh conv|lstm [build dir] [passes]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
family=$1
build=${2:-$here/../../build}
passes=${3:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pass in $(seq "$passes"); do
  OMP_WAIT_POLICY=passive "$build/bench/bench_$family" --benchmark_min_time=0.2 \
    --benchmark_repetitions=2 --benchmark_format=json > "$tmp/reel$pass.json"
  "$here/run.sh" "$family.py" --repeat 2 > "$tmp/torch$pass.txt"
done
head -1 "$tmp/torch1.txt"
python3 "$here/compare.py" "$tmp"/reel*.json -- "$tmp"/torch*.txt
