#!/usr/bin/env bash
# Installs what qkern's build and tests need on a fresh Debian 12 machine.
# Idempotent: when everything is already there it installs nothing and prints nothing.
set -euo pipefail

debs=(cmake ninja-build gcc g++ make pkg-config python3 python3-pip
      libvulkan-dev vulkan-validationlayers glslc mesa-vulkan-drivers spirv-tools
      libbenchmark-dev clang-format clang)

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The interop tests read qkern's files with the independent `gguf` package.
py=$(command -v python3)
if ! "$py" -c 'import gguf, numpy' >/dev/null 2>&1; then
  echo "setup: installing the Python packages gguf and numpy"
  "$py" -m pip install -q --disable-pip-version-check gguf==0.19.0 numpy \
    || "$py" -m pip install -q --disable-pip-version-check --break-system-packages gguf==0.19.0 numpy
fi
