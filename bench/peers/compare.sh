#!/usr/bin/env bash
# reel beside PyTorch on the shapes of one benchmark family (conv: bench/bench_conv.cpp and
# conv.py; lstm: bench/bench_lstm.cpp and lstm.py), in one run. Our shared VMs drift by up to a
# third in speed within minutes, so the two sides take turns closely: for each pass and each
# shape, reel's benchmark of that shape and then the peer's (when the peer script takes
# --shapes, through timing.shape_args; otherwise whole families alternate), and each side keeps
# its best time per shape.
#   bench/peers/compare.sh conv|lstm|train_step|stream [build dir] [passes]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
family=$1
build=${2:-$here/../../build}
passes=${3:-3}
bench="$build/bench/bench_$family"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run_reel() {  # $1: output file, $2: benchmark filter
  OMP_WAIT_POLICY=passive "$bench" --benchmark_min_time=0.2 --benchmark_repetitions=2 \
    --benchmark_format=json --benchmark_filter="$2" > "$1"
}
# The shapes, in the benchmark's order (the peer scripts list them in the same order).
mapfile -t shapes < <("$bench" --benchmark_list_tests | sed -E 's|^BM_[A-Za-z0-9]+/||' | awk '!seen[$0]++')
if grep -q "shape_args" "$here/$family.py"; then  # it takes --shapes (timing.py)
  for pass in $(seq "$passes"); do
    for i in "${!shapes[@]}"; do
      run_reel "$tmp/reel$pass.$i.json" "/${shapes[$i]}\$"
      "$here/run.sh" "$family.py" --repeat 2 --shapes "$i" > "$tmp/torch$pass.$i.txt"
    done
  done
else
  for pass in $(seq "$passes"); do
    run_reel "$tmp/reel$pass.json" "."
    "$here/run.sh" "$family.py" --repeat 2 > "$tmp/torch$pass.txt"
  done
fi
head -1 "$(ls "$tmp"/torch*.txt | head -1)"
python3 "$here/compare.py" "$tmp"/reel*.json -- "$tmp"/torch*.txt
