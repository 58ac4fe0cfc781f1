#!/usr/bin/env bash
# Builds here what scripts/gpu_run.sh runs on the GPU machine: sm_90 only, CUDA linked
# statically (the driver is found at run time), Google Benchmark's shared library copied
# beside the binaries, all of it packed into build-dev/carry.tar.xz: carry that one file to the
# device (scripts/gpu_run.sh unpacks it).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-dev}
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DQK_BENCH=ON \
  -DQK_VULKAN=ON >/dev/null
cmake --build "$B" --target qkern test_gpu_equivalence test_gpu_moe test_measure_bias test_model_devices qkern_bench_cuda qkern_bench_moe \
  test_vulkan_arith test_vulkan_pipeline_cache qkern_bench_vulkan
mkdir -p "$B/lib"
cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so.1debian "$B/lib/"
git rev-parse --short HEAD >"$B/COMMIT"
# One compressed file to carry (the binaries share most of their bytes: the kernels)
tar -cf - "$B/cli/qkern" "$B/tests/test_gpu_equivalence" "$B/tests/test_gpu_moe" "$B/tests/test_measure_bias" "$B/tests/test_model_devices" "$B/bench/qkern_bench_cuda" \
  "$B/bench/qkern_bench_moe" "$B/tests/test_vulkan_arith" "$B/tests/test_vulkan_pipeline_cache" "$B/bench/qkern_bench_vulkan" "$B/lib" "$B/COMMIT" | xz -T2 --lzma2=preset=6,dict=128MiB >"$B/carry.tar.xz"
du -sh "$B/cli/qkern" "$B/tests/test_gpu_equivalence" "$B/tests/test_gpu_moe" "$B/bench/qkern_bench_cuda" "$B/bench/qkern_bench_moe" "$B/lib"
