#!/usr/bin/env bash
# Nsight Compute on the MoE kernels of one benchmark row (the device's ncu, clocks left alone):
# where the time of the vector and the tiled kernel goes. Run after gpu_run.sh has unpacked the
# build (or with the carried build-dev/carry.tar.xz).
# usage: bash scripts/gpu_profile.sh FILTER KERNEL_REGEX [BUILD_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
B=${3:-build-dev}
[ -x "$B/bench/qkern_bench_moe" ] || xz -dc "$B/carry.tar.xz" | tar -xf -
export LD_LIBRARY_PATH="$PWD/$B/lib:/usr/local/cuda/lib64"
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
"$ncu" --clock-control none --kernel-name "regex:$2" --launch-skip 3 --launch-count 1 \
  --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
  --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
  "$B/bench/qkern_bench_moe" --benchmark_filter="$1" --benchmark_min_time=0.01 2>&1 |
  grep -vE "^BM_|^-----|^\s*$" | grep -vE "^==PROF==" | head -150
