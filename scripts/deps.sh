#!/usr/bin/env bash
# Installs the Debian packages reel needs that are not installed yet (checked first, so a
# machine that has them all runs no apt-get). Usage: scripts/deps.sh [extra packages...]
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config doctest-dev libbenchmark-dev libopenblas-dev
          libcli11-dev libtomlplusplus-dev libboost-context-dev nlohmann-json3-dev libopencv-dev libstb-dev ffmpeg
          clang-format openmpi-bin libopenmpi-dev
          "$@")
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "reel: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  "${sudo_cmd[@]}" apt-get update
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
