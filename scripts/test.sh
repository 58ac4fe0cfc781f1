#!/usr/bin/env bash
# The test command: sets up, builds, and runs every test twice — in a release build and in a
# build under AddressSanitizer + UndefinedBehaviorSanitizer — then the CPU tests again under
# ThreadSanitizer, plus the formatting check. Every build is warning-free or the run fails.
# GPU tests skip (saying so) where no GPU is found.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# build DIR CMAKE_ARGS...: configures DIR (quietly) with warnings as errors and builds it. The
# compilers (C, C++, nvcc, glslc) stop at a warning themselves under QK_WERROR; a tool with no
# such switch (spirv-opt, spirv-val, the linker, CMake itself) fails the run here instead: every
# line of the configure and build output that says "warning" is named, and the run stops.
build() {
  local dir=$1
  shift
  mkdir -p "$dir"
  { cmake -S . -B "$dir" -G Ninja -DQK_WERROR=ON "$@" >/dev/null && cmake --build "$dir" -j "$jobs"; } 2>&1 |
    tee "$dir/qk-build-output.log"
  # each such line after the build step that printed it (ninja's "[i/n] ..." line)
  awk '/^\[[0-9]+\/[0-9]+\] / { step = $0 " -> " } tolower($0) ~ /warning/ { print step $0 }' \
    "$dir/qk-build-output.log" >"$dir/qk-build-warnings.log"
  if [ -s "$dir/qk-build-warnings.log" ]; then
    echo "test: the build of $dir printed $(wc -l <"$dir/qk-build-warnings.log") warning line(s) (all in $dir/qk-build-warnings.log):" >&2
    head -n 40 "$dir/qk-build-warnings.log" >&2
    exit 1
  fi
}

# A folder configured with another compiler than clang is started afresh (CMake does not switch
# compilers in place).
clang_folder() {
  if [ -f "$1/CMakeCache.txt" ] && ! grep -q '^CMAKE_C_COMPILER:.*clang' "$1/CMakeCache.txt"; then
    rm -rf "$1"
  fi
}

# stage NAME: its heading, with the time since the start (where CI's minutes go)
stage() { echo "== $1 (at $((SECONDS / 60)) min $((SECONDS % 60)) s)"; }

bash scripts/setup.sh

stage "format check (clang-format)"
# The tracked sources; outside a git checkout (CI's clone-alone copy) every source but the build folders.
{ git ls-files '*.c' '*.h' '*.cu' '*.cuh' '*.cpp' 2>/dev/null ||
  find . -path './build*' -prune -o -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.cpp' \) -print; } |
  xargs -r clang-format --dry-run --Werror

stage "release build"
# One CUDA architecture (sm_90): no GPU runs here, the compile is what is checked, and each
# architecture costs minutes of nvcc on a small machine.
build build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90
stage "release tests"
ctest --test-dir build --output-on-failure -j "$jobs"

stage "Python package (pip install . into build-py/venv, pytest tests/python)"
# scikit-build-core driving this CMake with warnings as errors, CPU only: the release stage
# compiles the CUDA and Vulkan backends already, and no GPU runs here. PyTorch (for the
# operators' registration, fake tensors and torch.compile on the CPU) goes into the venv where
# the disk has room: PyPI's Linux wheels bring ~3 GB of CUDA libraries (5.3 GB installed, about
# 2 minutes). Without it its tests skip, saying so.
[ -x build-py/venv/bin/python ] || python3 -m venv --system-site-packages build-py/venv
if ! build-py/venv/bin/python -c 'import torch' >/dev/null 2>&1; then
  free_gb=$(df -Pk build-py | awk 'NR == 2 { print int($4 / 1048576) }')
  if [ "$free_gb" -ge 16 ]; then
    build-py/venv/bin/python -m pip install -q --no-cache-dir --disable-pip-version-check torch==2.11.0 ||
      echo "test: PyTorch did not install: its tests skip"
  else
    echo "test: ${free_gb} GB free here (PyTorch needs 16 with room to spare): its tests skip"
  fi
fi
build-py/venv/bin/python -m pip install -v --no-build-isolation --no-deps --disable-pip-version-check \
  -C build-dir=build-py/cmake -C cmake.define.QK_WERROR=ON -C cmake.define.QK_CUDA=OFF -C cmake.define.QK_VULKAN=OFF \
  . >build-py/qk-build-output.log 2>&1 || { tail -n 40 build-py/qk-build-output.log >&2; exit 1; }
if grep -i warning build-py/qk-build-output.log >&2; then
  echo "test: the Python package's build printed warnings (build-py/qk-build-output.log)" >&2
  exit 1
fi
build-py/venv/bin/python -m pytest -p no:cacheprovider -q -rs tests/python

stage "sanitizer build (clang, ASan + UBSan)"
# clang, so that the libFuzzer targets build too. assert() is live in the sanitizer builds
# (QK_SANITIZE and QK_TSAN undo RelWithDebInfo's NDEBUG).
clang_folder build-asan
# Without Vulkan here: the CPU Vulkan driver is not instrumented (its own allocations would read
# as leaks); the release stage runs the Vulkan tests on it.
CC=clang CXX=clang++ build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQK_SANITIZE=ON \
  -DQK_BENCH=OFF -DQK_CUDA=OFF -DQK_VULKAN=OFF
stage "sanitizer tests"
# The interop test (minutes of Python decoding) runs in the release stage only; the instrumented
# CLI is exercised here by test_cli_quantize.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE "fuzz|interop"

stage "fuzz (libFuzzer, each target ~10 s on a copy of its seed corpus)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -L fuzz

stage "thread sanitizer build (clang, TSan)"
# The CPU backend and its thread pool: the labels that run them (unit, golden, gguf). The fuzz
# targets are ASan builds (not built here); interop runs in the release stage only.
clang_folder build-tsan
CC=clang CXX=clang++ build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQK_TSAN=ON \
  -DQK_BENCH=OFF -DQK_CUDA=OFF -DQK_VULKAN=OFF
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build-tsan --output-on-failure -j "$jobs" -L "unit|golden|gguf"

echo "== all passed in $((SECONDS / 60)) min $((SECONDS % 60)) s"
