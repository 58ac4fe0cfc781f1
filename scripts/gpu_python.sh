#!/usr/bin/env bash
# qkern's Python package on the GPU machine: pytest tests/python with the GPU tests live, and the
# host overhead of a Python MoE call against the C call it wraps (python/bench/moe_host_overhead.*),
# eagerly and inside CUDA graphs. That machine cannot reach PyPI, so what pip needs there is built
# and downloaded here first.
#
# 1. Here (internet, this repository):   bash scripts/gpu_python.sh pack [PYTHON_VERSION]
#    fills build-py/wheelhouse/: qkern's wheel for the GPU machine's Python (3.12 by default, the
#    device image's; an interpreter of that version must exist here, or name one in QK_PY) with
#    CUDA (sm_90) and Vulkan built in; the wheel of gguf==0.19.0 (the tests read files with it);
#    and the build tools' wheels (scikit-build-core, nanobind and their pure-Python needs), for a
#    build from source there when the wheel does not fit its Python.
# 2. There (device tool; carry build-py/wheelhouse, a few MB):   bash scripts/gpu_python.sh
#    installs qkern and gguf with pip --no-index --find-links into /tmp/qkern-site (PYTHONPATH;
#    torch, numpy, pytest, pyyaml, requests and tqdm are the machine's own), runs the tests, builds
#    the C timing program against the installed library and runs the benchmark. Without torch
#    there it says so, and the torch tests and the Python side of the benchmark are skipped.
#    $OUT (or ./out) receives device.txt, pytest.log, junit.xml, overhead.json and overhead.md.
set -uo pipefail
cd "$(dirname "$0")/.."
wh=${QK_WHEELHOUSE:-build-py/wheelhouse}

if [ "${1:-}" = pack ]; then
  set -e
  ver=${2:-3.12}
  py=${QK_PY:-}
  if [ -z "$py" ]; then
    for c in "python$ver" "$HOME"/.pyenv/versions/"$ver"*/bin/python; do
      if "$c" -c "import sys; sys.exit(sys.version[:len('$ver')] != '$ver')" 2>/dev/null; then py=$c && break; fi
    done
  fi
  [ -n "$py" ] || { echo "gpu_python: no Python $ver here; name one in QK_PY" >&2; exit 1; }
  venv=build-py/pack-$ver
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check scikit-build-core==1.1.2 nanobind==3.1.0
  rm -rf "$wh" && mkdir -p "$wh"
  # sm_90 only: the GPU machine's H100/H200, and a third of the compile time of the default three
  "$venv/bin/python" -m pip wheel --no-build-isolation --no-deps --disable-pip-version-check -w "$wh" \
    -C build-dir="build-py/cmake-gpu-$ver" -C cmake.define.QK_CUDA=ON -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 \
    -C cmake.define.QK_VULKAN=ON .
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$wh" \
    gguf==0.19.0 scikit-build-core==1.1.2 nanobind==3.1.0 pathspec packaging
  git rev-parse --short HEAD >"$wh/COMMIT" 2>/dev/null || echo unknown >"$wh/COMMIT"
  ls -l "$wh"
  du -sh "$wh"
  exit 0
fi

out=${OUT:-out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=${QK_PY:-python3}
site=/tmp/qkern-site
has_torch=0
"$py" -c 'import torch' 2>/dev/null && has_torch=1
{
  echo "date: $(date -u +%FT%TZ)"
  echo "wheelhouse commit: $(cat "$wh/COMMIT" 2>/dev/null || echo '?'); tree: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo "python: $("$py" --version 2>&1) ($py)"
  if [ $has_torch = 1 ]; then
    "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())'
  else
    echo "torch: not installed here; the torch tests and the Python side of the benchmark are skipped"
  fi
} 2>&1 | tee "$out/device.txt"

echo "== install (no index: $wh)"
rm -rf "$site"
if ! "$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --target "$site" \
  --find-links "$wh" qkern gguf 2>"$work/pip.err"; then
  # the carried wheel is for another Python: build it here, with the carried build tools (the
  # versions it was made with here, whatever the machine has)
  echo "gpu_python: the carried wheel does not fit $("$py" --version 2>&1) ($(tail -1 "$work/pip.err")); building from source"
  "$py" -m pip install -q --no-index --no-deps --target "$work/tools" --find-links "$wh" \
    scikit-build-core nanobind pathspec packaging || exit 1
  PYTHONPATH="$work/tools${PYTHONPATH:+:$PYTHONPATH}" "$py" -m pip wheel -q --no-index --no-build-isolation --no-deps \
    -w "$work/wheel" -C build-dir="$work/cmake" -C cmake.define.QK_CUDA=ON -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 . \
    >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
  "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$work"/wheel/qkern-*.whl \
    --find-links "$wh" gguf || exit 1
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
"$py" -c 'import qkern; print("qkern", qkern.version(), [d.id for d in qkern.devices()])' | tee -a "$out/device.txt"

echo "== pytest tests/python"
# -rs lists every skip with its reason: on this machine only the gguf types it cannot read should skip
"$py" -m pytest -p no:cacheprovider -rs -q --junitxml="$out/junit.xml" tests/python 2>&1 | tee "$out/pytest.log" | tail -30

echo "== host overhead: C call against the Python call (Q4_K W[256][512][2048], 1 token, 8 used)"
cuda=${CUDA_HOME:-/usr/local/cuda}
# the CUDA runtime to link the timing program with: the toolkit's, else the one torch came with
cudart=$(ls "$cuda"/lib64/libcudart.so* "$cuda"/targets/x86_64-linux/lib/libcudart.so* \
  "$("$py" -c 'import nvidia.cu13, os; print(list(nvidia.cu13.__path__)[0])' 2>/dev/null)"/lib/libcudart.so* \
  2>/dev/null | head -1)
bin=$work/moe_host_overhead
if ! cc -O2 -std=c11 -Wall -Wextra python/bench/moe_host_overhead.c -Iinclude -I"$cuda/include" -L"$site/qkern" \
  -l:libqkern.so.0 "$cudart" -Wl,-rpath,"$site/qkern:$(dirname "$cudart")" -o "$bin" 2>"$work/cc.log"; then
  echo "gpu_python: the C timing program did not build:"
  cat "$work/cc.log"
  bin=""
fi
if [ $has_torch = 1 ]; then
  "$py" python/bench/moe_host_overhead.py ${bin:+--c-binary "$bin"} --json "$out/overhead.json" \
    --markdown "$out/overhead.md" >/dev/null && cat "$out/overhead.md"
elif [ -n "$bin" ]; then
  echo "no torch here: the C side only (the Python call needs CUDA tensors from torch)"
  "$bin" | tee "$out/overhead.json"
fi
