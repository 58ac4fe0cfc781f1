#!/usr/bin/env bash
# Installs what qkern's build and tests need on a fresh Debian 12 machine.
# Idempotent: when everything is already there it installs nothing and prints nothing.
set -euo pipefail

debs=(cmake ninja-build gcc g++ make pkg-config python3 python3-pip
      libvulkan-dev vulkan-validationlayers glslc mesa-vulkan-drivers spirv-tools
      libbenchmark-dev clang-format clang python3-dev python3-venv)

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

# The interop tests read qkern's files with the independent `gguf` package; the Python package
# (pyproject.toml) builds with scikit-build-core and nanobind, and its tests run under pytest.
py=$(command -v python3)
if ! "$py" -c 'import gguf, numpy, nanobind, scikit_build_core, pytest' >/dev/null 2>&1; then
  pkgs=(gguf==0.19.0 numpy nanobind==3.1.0 scikit-build-core==1.1.2 pytest)
  echo "setup: installing the Python packages ${pkgs[*]}"
  "$py" -m pip install -q --disable-pip-version-check "${pkgs[@]}" \
    || "$py" -m pip install -q --disable-pip-version-check --break-system-packages "${pkgs[@]}"
fi
