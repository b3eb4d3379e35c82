#!/usr/bin/env bash
# The marginal memory per frame of a training step of the reference video model, reel beside
# PyTorch: the peak resident memory of a process that trains at (B, T, HW) = (8, 8, 112) minus
# that of one at (2, 8, 112), over the 48 frames between them. This cancels each framework's
# fixed cost (libraries, weights, gradients, optimizer state) and leaves what training costs per
# frame of the batch. Each figure comes from a fresh process that runs that one shape:
# bench_train_step (BM_TrainStep and BM_TrainStepRecompute, counter peak_rss_MiB) and
# train_step.py --memory.
#   bench/peers/train_memory.sh [build dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
bench="$build/bench/bench_train_step"
reel_peak() {  # $1: benchmark name, $2: B, $3: T, $4: HW -> peak RSS in MiB
  OMP_WAIT_POLICY=passive "$bench" --benchmark_min_time=0.01 --benchmark_format=json \
    --benchmark_filter="^$1/B:$2/T:$3/HW:$4/" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["peak_rss_MiB"])'
}
torch_peak() {
  "$here/run.sh" train_step.py --memory "$1,$2,$3" --steps 3 | awk '/peak_rss_mib/ {print $4}'
}
declare -A peak
for side in reel reel_recompute torch; do
  for B in 2 8; do
    case $side in
      reel) peak[$side.$B]=$(reel_peak BM_TrainStep "$B" 8 112) ;;
      reel_recompute) peak[$side.$B]=$(reel_peak BM_TrainStepRecompute "$B" 8 112) ;;
      torch) peak[$side.$B]=$(torch_peak "$B" 8 112) ;;
    esac
  done
done
python3 - "${peak[reel.2]}" "${peak[reel.8]}" "${peak[reel_recompute.2]}" \
  "${peak[reel_recompute.8]}" "${peak[torch.2]}" "${peak[torch.8]}" <<'EOF'
import sys
r2, r8, q2, q8, t2, t8 = map(float, sys.argv[1:])
per = lambda a, b: (b - a) / 48
torch = per(t2, t8)
print(f"{'':22} {'peak 2/8/112':>13} {'peak 8/8/112':>13} {'MiB/frame':>10} {'vs torch':>9}")
for name, a, b in (("reel", r2, r8), ("reel --recompute", q2, q8), ("torch", t2, t8)):
    print(f"{name:22} {a:13.0f} {b:13.0f} {per(a, b):10.2f} {per(a, b) / torch:9.2f}")
EOF
