# Sourced by the scripts: the CUDA compiler on PATH when the toolkit is installed in the usual
# place, and a build folder. No GPU is needed to build the CUDA backend.
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
REEL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc)}
