#!/usr/bin/env bash
# Runs one of the PyTorch peer scripts beside this file at PyTorch's best on our VMs: torch from
# PyPI in a virtual environment this script makes once (REEL_TORCH_VENV, default
# ~/.cache/reel-torch-venv), jemalloc preloaded with its decay off, and a passive OpenMP wait.
#   bench/peers/run.sh lstm.py [--threads 2 ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${REEL_TORCH_VENV:-$HOME/.cache/reel-torch-venv}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  echo "peers: making $venv with torch and torchvision from PyPI (about 5 GB, once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision numpy
fi
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [[ ! -e $jemalloc ]]; then
  "$here/../../scripts/deps.sh" libjemalloc2
fi
script=$1
shift
LD_PRELOAD=$jemalloc MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 OMP_WAIT_POLICY=passive \
  exec "$venv/bin/python" "$here/$script" "$@"
