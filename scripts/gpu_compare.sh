#!/usr/bin/env bash
# One call on the GPU machine that checks a change: the GPU tests of the new build, and the
# device benchmarks of the new build and of a baseline build side by side, in the same run on
# the same card (each benchmark alternates: baseline, new, baseline, new). Both builds are made
# here by scripts/gpu_build.sh and carried (BUILD/carry.tar.xz); the baseline one is unpacked
# into a folder of its own. At most eight files land in $OUT (the device tool's limit).
# usage: bash scripts/gpu_compare.sh NEW_BUILD BASE_BUILD   (e.g. build-dev build-base)
#   QK_COMPARE_MOE   the MoE benchmark filter (default: a few types, 1 to 512 tokens)
#   QK_COMPARE_TYPES types for the Vulkan tests on the card's own driver (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
new=$1 base_tar=$2/carry.tar.xz
out=${OUT:-out}
mkdir -p "$out"
xz -dc "$new/carry.tar.xz" | tar -xf -
basedir=$(mktemp -d)
(cd "$basedir" && xz -dc "$OLDPWD/$base_tar" | tar -xf -)
base="$basedir/$(tar -tJf "$base_tar" | head -1 | cut -d/ -f1)"
libs() { echo "$1/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib"; }
{
  echo "date: $(date -u +%FT%TZ)"
  echo "new: $(cat "$new/COMMIT")  baseline: $(cat "$base/COMMIT")"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
} >"$out/device.txt" 2>&1
cat "$out/device.txt"

echo "== GPU tests (new build)"
{
  LD_LIBRARY_PATH=$(libs "$new") "$new/tests/test_gpu_equivalence" cuda:0
  LD_LIBRARY_PATH=$(libs "$new") "$new/tests/test_gpu_moe" cuda:0
} >"$out/cuda_tests.log" 2>&1
grep -E "identical|DIFFER|passed|FAIL" "$out/cuda_tests.log" | head -60

echo "== Vulkan tests on the card's driver (new build)"
if ! ldconfig -p | grep -q libvulkan && [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd && break
done
{
  QK_TEST_TYPES=${QK_COMPARE_TYPES:-} LD_LIBRARY_PATH=$(libs "$new") "$new/tests/test_gpu_equivalence" vulkan:0
  QK_TEST_TYPES=${QK_COMPARE_TYPES:-} LD_LIBRARY_PATH=$(libs "$new") "$new/tests/test_gpu_moe" vulkan:0
} >"$out/vulkan_tests.log" 2>&1
grep -E "identical|DIFFER|passed|cases" "$out/vulkan_tests.log" | head -70

# one table: per benchmark, the baseline's and the new build's best of the rounds
table() {
  python3 - "$basedir" >"$out/compare.md" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(d, "*.json"))):
    kind, tag, _ = os.path.basename(f)[:-5].split("-")
    for b in json.load(open(f)).get("benchmarks", []):
        t = b.get("us", b.get("real_time"))
        key = (kind, b["name"], b.get("label", ""))
        cur = rows.setdefault(key, {})
        cur[tag] = min(cur.get(tag, t), t)
print("| benchmark | label | baseline us | new us | new/baseline |")
print("|---|---|---:|---:|---:|")
for (kind, name, label), v in sorted(rows.items()):
    b, n = v.get("base"), v.get("new")
    ratio = "%.3f" % (n / b) if b and n else "-"
    print("| %s | %s | %s | %s | %s |" % (name, label, "%.2f" % b if b else "-", "%.2f" % n if n else "-", ratio))
PY
}
rounds=${QK_COMPARE_ROUNDS:-2}

echo "== quantize/dequantize benchmarks, baseline then new, $rounds rounds"
for round in $(seq "$rounds"); do
  for b in "$base" "$new"; do
    tag=$([ "$b" = "$base" ] && echo base || echo new)
    LD_LIBRARY_PATH=$(libs "$b") "$b/bench/qkern_bench_cuda" --benchmark_min_time=0.02 \
      --benchmark_out="$basedir/codec-$tag-$round.json" --benchmark_out_format=json >/dev/null 2>&1
  done
done
table
echo "== MoE benchmarks, baseline then new, $rounds rounds"
filter=${QK_COMPARE_MOE:-'BM_moe/matmul_gate_up/type:(8|12|23|39|40|41|42)/tokens:(1|32|512)/'}
for round in $(seq "$rounds"); do
  for b in "$base" "$new"; do
    tag=$([ "$b" = "$base" ] && echo base || echo new)
    LD_LIBRARY_PATH=$(libs "$b") "$b/bench/qkern_bench_moe" --benchmark_min_time=0.05 --benchmark_filter="$filter" \
      --benchmark_out="$basedir/moe-$tag-$round.json" --benchmark_out_format=json >/dev/null 2>&1
  done
done
table
tar -cJf "$out/raw.tar.xz" -C "$basedir" $(cd "$basedir" && ls *.json)
grep -c "|" "$out/compare.md"
