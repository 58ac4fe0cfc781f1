#!/usr/bin/env bash
# Builds here what scripts/gpu_run.sh runs on the GPU machine: sm_90 only, CUDA linked
# statically (the driver is found at run time), Google Benchmark's shared library copied
# beside the binaries. Carry build-dev/cli/qkern, build-dev/tests/test_gpu_equivalence,
# build-dev/bench/qkern_bench_cuda, build-dev/lib and build-dev/COMMIT to the device.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-dev}
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DQK_BENCH=ON >/dev/null
cmake --build "$B" --target qkern test_gpu_equivalence qkern_bench_cuda
mkdir -p "$B/lib"
cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so.1debian "$B/lib/"
git rev-parse --short HEAD >"$B/COMMIT"
du -sh "$B/cli/qkern" "$B/tests/test_gpu_equivalence" "$B/bench/qkern_bench_cuda" "$B/lib"
