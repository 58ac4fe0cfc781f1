#!/usr/bin/env bash
# The test command: sets up, builds, and runs every test twice — in a release build and in a
# build under AddressSanitizer + UndefinedBehaviorSanitizer — plus the formatting check.
# GPU tests skip (saying so) where no GPU is found.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/setup.sh

echo "== format check (clang-format)"
# The tracked sources; outside a git checkout (CI's clone-alone copy) every source but the build folders.
{ git ls-files '*.c' '*.h' '*.cu' '*.cuh' '*.cpp' 2>/dev/null ||
  find . -path './build*' -prune -o -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.cpp' \) -print; } |
  xargs -r clang-format --dry-run --Werror

echo "== release build"
# One CUDA architecture (sm_90): no GPU runs here, the compile is what is checked, and each
# architecture costs minutes of nvcc on a small machine.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== sanitizer build (clang, ASan + UBSan)"
# clang, so that the libFuzzer targets build too; a folder configured with another compiler
# is started afresh (CMake does not switch compilers in place).
if [ -f build-asan/CMakeCache.txt ] && ! grep -q '^CMAKE_C_COMPILER:.*clang' build-asan/CMakeCache.txt; then
  rm -rf build-asan
fi
# Without Vulkan here: the CPU Vulkan driver is not instrumented (its own allocations would read
# as leaks); the release stage runs the Vulkan tests on it.
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQK_SANITIZE=ON \
  -DQK_BENCH=OFF -DQK_CUDA=OFF -DQK_VULKAN=OFF >/dev/null
cmake --build build-asan -j "$jobs"
# The interop test (minutes of Python decoding) runs in the release stage only; the instrumented
# CLI is exercised here by test_cli_quantize.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE "fuzz|interop"

echo "== fuzz (libFuzzer, each target ~10 s on a copy of its seed corpus)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -L fuzz
