#!/usr/bin/env bash
# One call on the GPU machine: the GPU tests, the file path on cuda against cpu, and the
# device benchmarks, from a build made on the development machine and carried over
# (scripts/gpu_build.sh). Everything lands in $OUT (or ./out).
# usage (device tool): bash scripts/gpu_run.sh [BUILD_DIR]   with BUILD_DIR carried (and .gl for
# Vulkan, build-py/wheelhouse from `scripts/gpu_python.sh pack` for the Python part);
# QK_RUN_PARTS picks the sections (default all).
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-dev}
[ -f "$B/carry.tar.xz" ] && xz -dc "$B/carry.tar.xz" | tar -xf -
out=${OUT:-out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuBLAS (the benchmarks' GEMM ceilings load it at run time): the image's toolkit, or the wheel
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  $(python3 -c 'import nvidia.cu13, os; print(os.path.join(list(nvidia.cu13.__path__)[0], "lib"))' 2>/dev/null); do
  [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
q=$B/cli/qkern
parts=${QK_RUN_PARTS:-tests,moe,vulkan,vkcache,file,bench,moebench,vkbench,pptg,model,python} # which sections to run
want() { [[ ",$parts," == *",$1,"* ]]; }
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(cat "$B/COMMIT" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  "$q" devices
} 2>&1 | tee "$out/device.txt"

# Vulkan (parts vulkan, vkbench): the loader comes from .gl (carried; device README), the driver
# is the machine's NVIDIA one.
if want vulkan || want vkcache || want vkbench; then
  if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] && export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd && break
  done
fi
if want vulkan; then
  echo "== Vulkan tests (driver: ${VK_DRIVER_FILES:-loader default})"
  "$B/tests/test_vulkan_arith" 2>&1 | tee "$out/vulkan_arith.log" | tail -5
  "$B/tests/test_gpu_equivalence" vulkan:0 >"$out/vulkan_tests.log" 2>&1
  grep -E "identical|DIFFER|passed|validation" "$out/vulkan_tests.log"; grep FAIL "$out/vulkan_tests.log" | head -12
  # each type that differs: its own first failures (the full run's first ones are one type's)
  for t in $(awk '$2 == "DIFFERS" {print $1}' "$out/vulkan_tests.log"); do
    echo "-- $t"; QK_TEST_TYPES=$t "$B/tests/test_gpu_equivalence" vulkan:0 2>&1 | grep FAIL | head -6
  done 2>&1 | tee -a "$out/vulkan_tests.log"
  "$B/tests/test_gpu_moe" vulkan:0 >"$out/vulkan_moe.log" 2>&1
  grep -vE "cases ok" "$out/vulkan_moe.log" | tail -8
fi
if want vkcache; then
  # the pipeline cache on disk (runtime/core/vulkan/vk_pipeline_cache.c): its test, then the same
  # three types' checks twice over a fresh cache folder, the second run starting from the file
  # the first left (the difference is the driver's compile time it saves)
  echo "== Vulkan pipeline cache"
  "$B/tests/test_vulkan_pipeline_cache" 2>&1 | tee "$out/vulkan_pipeline_cache.log" | tail -2
  vkc=$(mktemp -d)
  for run in cold warm; do
    t0=$(date +%s.%N)
    QK_CACHE_DIR=$vkc QK_TEST_TYPES=IQ2_XXS,IQ3_S,Q4_K "$B/tests/test_gpu_equivalence" vulkan:0 >/dev/null 2>&1
    echo "IQ2_XXS,IQ3_S,Q4_K checks, $run pipeline cache: $(python3 -c "import time; print(round(time.time() - $t0, 2))") s wall"
  done 2>&1 | tee "$out/vulkan_pipeline_cache_timing.txt"
  ls -l "$vkc" | tail -n +2 | tee -a "$out/vulkan_pipeline_cache_timing.txt"
  rm -rf "$vkc"
fi
if want vkbench; then
  echo "== Vulkan benchmarks"
  "$B/bench/qkern_bench_vulkan" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" "$(cat "$B/COMMIT")" \
    >"$out/vulkan.jsonl" 2> >(tee "$out/vulkan_bench.txt" >&2)
fi

want tests && echo "== GPU tests" && QK_TEST_LARGE=1 "$B/tests/test_gpu_equivalence" 2>&1 | tee "$out/gpu_tests.log" | tail -40
want tests && [ -x "$B/tests/test_measure_bias" ] && "$B/tests/test_measure_bias" 2>&1 | tee "$out/measure_bias.log" | tail -8
# several devices and the device rows' time split (cuda:0 and vulkan:0 where they open)
want tests && [ -x "$B/tests/test_model_devices" ] && "$B/tests/test_model_devices" "$q" 2>&1 | tee "$out/model_devices.log" |
  grep -E "device time|passed|FAIL" | head -12
want moe && echo "== GPU MoE tests" && QK_TEST_LARGE=1 "$B/tests/test_gpu_moe" 2>&1 | tee "$out/gpu_moe.log" | tail -60
# each form the plan's table picks by type and token count, forced on its path for every type and
# size: 2 and 4 rows a lane group on the dot path, 64- and 128-row 32- and 64-slot tiles and 128-slot
# tiles (where the type allows them) on the tiled one
want moe && for form in "dot QK_MOE_DOT_ROWS=2" "dot QK_MOE_DOT_ROWS=4" "tiled QK_MOE_TILE_M=64 QK_MOE_TILE_N=64" \
  "tiled QK_MOE_TILE_M=128 QK_MOE_TILE_N=64" "tiled QK_MOE_TILE_M=64 QK_MOE_TILE_N=32" \
  "tiled QK_MOE_TILE_M=128 QK_MOE_TILE_N=32" "tiled QK_MOE_TILE_N=128"; do
  echo "== GPU MoE tests, QK_MOE_PATH=$form"
  env QK_MOE_PATH=$form "$B/tests/test_gpu_moe" 2>&1 | tee -a "$out/gpu_moe_forms.log" | grep -E "passed|FAIL" | head -20
done

if want file; then
echo "== file path: cuda against cpu"
work=$(mktemp -d)
"$q" generate --size medium --seed 3 --imatrix "$work/im.gguf" "$work/m.gguf"
for preset in Q8_0 Q4_0 Q4_K_M MXFP4_MOE IQ2_XXS; do
  for dev in cpu cuda:0; do
    t0=$(date +%s.%N)
    "$q" quantize --quiet --device "$dev" --imatrix "$work/im.gguf" "$work/m.gguf" \
      "$work/$preset-${dev%%:*}.gguf" "$preset" 2>&1 | tail -1
    echo "$preset on $dev: $(awk "BEGIN{print $(date +%s.%N) - $t0}") s wall"
  done
  if cmp -s "$work/$preset-cpu.gguf" "$work/$preset-cuda.gguf"; then echo "$preset: cuda file == cpu file"; else
    echo "$preset: FILES DIFFER"; fi
done 2>&1 | tee "$out/file_path.log"
# several devices (issue 20 item 2): the GPU and the CPU as workers of one run, and every CUDA
# device; the same bytes as the one-device file, and each worker's share in --stats
for preset in Q4_K_M IQ2_XXS; do
  for devs in cuda:0,cpu cuda:all; do
    "$q" quantize --quiet --stats --device "$devs" --imatrix "$work/im.gguf" "$work/m.gguf" \
      "$work/$preset-multi.gguf" "$preset" 2>&1 | tail -24
    if cmp -s "$work/$preset-cuda.gguf" "$work/$preset-multi.gguf"; then echo "$preset on $devs: file == cuda:0 file"; else
      echo "$preset on $devs: FILES DIFFER"; fi
  done
done 2>&1 | tee "$out/file_multi.log"
rm -rf "$work"
fi

echo "== benchmarks"
if want bench && [ -x "$B/bench/qkern_bench_cuda" ]; then
  "$B/bench/qkern_bench_cuda" --benchmark_min_time=0.1 --benchmark_out="$out/bench_cuda.json" \
    --benchmark_out_format=json 2>&1 | tee "$out/bench_cuda.txt" | grep -v "^---" | head -80
fi

if want moebench && [ -x "$B/bench/qkern_bench_moe" ]; then
  echo "== MoE kernel benchmarks"
  "$B/bench/qkern_bench_moe" --benchmark_min_time=0.05 ${QK_MOE_FILTER:+--benchmark_filter="$QK_MOE_FILTER"} \
    --benchmark_out="$out/bench_moe.json" --benchmark_out_format=json >"$out/bench_moe.txt" 2>&1
  python3 bench/to_jsonl.py "$out/bench_moe.json" auto "$(cat "$B/COMMIT")" "$out/moe.jsonl" &&
    python3 bench/to_jsonl.py --table "$out/moe.jsonl" | tee "$out/moe_table.md"
  grep -iE "error|copy|gemm|cublas" "$out/bench_moe.txt" | head -20
fi

if want pptg; then
  echo "== qkern bench tg / pp (MoE FFN layers of whole models)"
  C=$(cat "$B/COMMIT")
  types=${QK_PPTG_TYPES:-Q4_K,Q8_0,IQ4_XS,IQ2_XXS,MXFP4}
  for m in ${QK_PPTG_SHAPES:-qwen3.5-35b-a3b qwen3-30b-a3b qwen3.5-122b-a10b qwen3.5-397b-a17b}; do
    for t in tg pp; do
      "$q" bench $t -m "$m" -q "$types" -r 3 --commit "$C" --format json >"$out/$t-$m.json" 2>"$out/$t-$m.err" ||
        tail -3 "$out/$t-$m.err"
    done
  done
  python3 -c 'import json,sys; [print(json.dumps(r)) for f in sys.argv[1:] for r in json.load(open(f))]' \
    "$out"/tg-*.json "$out"/pp-*.json >"$out/moe-cli.jsonl" 2>/dev/null
  python3 - "$out/moe-cli.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r.get("shape"), r.get("test", r.get("op")), r.get("routing", ""), r.get("type"),
          round(r["value"], 1), r.get("unit"), "frac", r.get("fraction"))
PY
fi

if want model; then
  echo "== whole-model kernel time per preset (qkern bench quantize)"
  for shape in qwen3.5-35b-a3b qwen3-30b-a3b qwen3.5-397b-a17b; do
    "$q" bench quantize --shape "$shape" --device cuda:0 \
      --preset Q8_0,Q4_0,Q2_K,Q3_K_M,Q4_K_M,Q5_K_M,Q6_K,MXFP4_MOE,IQ1_S,IQ1_M,IQ2_XXS,IQ2_XS,IQ2_M,IQ3_XXS,IQ3_M,IQ4_XS \
      --format json >"$out/model_$shape.json" 2>"$out/model_$shape.err"
    "$q" bench quantize --shape "$shape" --device cuda:0 --preset Q4_K_M,IQ2_XXS 2>&1 | tail -6
    python3 -c "import json,sys; [print(r['type'], round(r['value'],2), 's') for r in json.load(open(sys.argv[1]))]" \
      "$out/model_$shape.json" || cat "$out/model_$shape.err"
  done 2>&1 | tee "$out/model.log"
fi

if want python && [ -d build-py/wheelhouse ]; then
  echo "== Python package (scripts/gpu_python.sh, wheelhouse carried)"
  OUT="$out/python" bash scripts/gpu_python.sh 2>&1 | tail -40
fi
