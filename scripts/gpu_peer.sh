#!/usr/bin/env bash
# One call on the GPU machine: qkern's MoE matmul beside its peers on the same card, into one
# JSONL (bench/results fields): qkern_bench_moe (backend "cuda"), ggml's MUL_MAT_ID timed by
# bench/peer/bench-mmid-cold (backend "ggml-cuda", peer_commit: the llama.cpp it was built from)
# and torch's bf16 grouped GEMM (backend "torch-bf16"), with the same shape, type and tokens
# strings; then the side-by-side table (bench/peer/compare.py). Optionally the GPU tests first.
#
# usage: bash scripts/gpu_peer.sh BUILD GGML
#   BUILD  a folder with carry.tar.xz from scripts/gpu_build.sh (unpacked here)
#   GGML   a folder with ggml-carry.tar.xz (bench/peer/pack_ggml.sh, built ahead on any machine
#          with the CUDA toolkit), or with bench-mmid-cold already in it, or a llama.cpp source
#          tree (its ggml/ is built here: a few minutes on 16 cores)
#   env:   OUT (results folder), QK_PEER_TYPES (comma list of type names; default every type),
#          QK_PEER_TOKENS (largest token count, default 2048), QK_PEER_TESTS=1 (run the CUDA GPU
#          tests first), QK_PEER_MODELS=1 (then `qkern bench tg` and `pp` on Qwen3.5-35B-A3B and
#          397B-A17B, Q4_K and IQ2_XXS, appended to the JSONL), QK_PEER_COMMIT (the peer's commit
#          when GGML has no PEER_COMMIT file), QK_PEER_PATHS (comma list of QK_MOE_PATH values,
#          e.g. dot,tiled,dot@16,dot:8,dot#4 (@N: N lanes a row on the dot path, :W its warps a CTA,
#          #R its rows a lane group: QK_MOE_DOT_LANES, _WARPS, _ROWS in moe_plan.cu; tiled%M: M (64 or
#          128) weight rows a 32- or 64-slot tile, QK_MOE_TILE_M; tiled^N: N slots a tile, QK_MOE_TILE_N;
#          the dot paths at QK_PEER_SWEEP_TOKENS, default 1|8|32|128|512): qkern's MoE benchmark
#          again with each path forced, into sweep.jsonl and the table sweep.md, for tuning
#          moe_plan.cu's thresholds),
#          QK_PEER_PROFILE ("FILTER=KERNEL_REGEX;..." : Nsight Compute on one kernel of each
#          benchmark row, scripts/gpu_profile.sh, into ncu-N.txt)
set -uo pipefail
cd "$(dirname "$0")/.."
build=$1 ggml=$2
out=${OUT:-out}
mkdir -p "$out"
libs="$build/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib"
[ -f "$build/carry.tar.xz" ] && xz -dc "$build/carry.tar.xz" | tar -xf -
device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
commit=$(cat "$build/COMMIT")
results="$out/moe-peer.jsonl"
: >"$results"
# at most a few files come back from the device: the JSONL, the table, the test log and one log of the rest
log="$out/peer.log" work=$(mktemp -d)
types=${QK_PEER_TYPES:-all} max=${QK_PEER_TOKENS:-2048}
{
  echo "date: $(date -u +%FT%TZ)  qkern: $commit"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
} | tee "$log"

if [ "${QK_PEER_TESTS:-0}" = 1 ]; then
  echo "== GPU tests"
  {
    LD_LIBRARY_PATH=$libs timeout 300 "$build/tests/test_gpu_equivalence" cuda:0
    LD_LIBRARY_PATH=$libs timeout 300 "$build/tests/test_gpu_moe" cuda:0
  } >"$out/cuda_tests.log" 2>&1
  echo "exit: $?" >>"$out/cuda_tests.log"
  grep -E "cases|FAIL|passed|exit:|precision" "$out/cuda_tests.log" | head -80
fi

echo "== ggml"
if [ -f "$ggml/ggml-carry.tar.xz" ]; then xz -dc "$ggml/ggml-carry.tar.xz" | tar -C "$ggml" -xf -; fi
if [ ! -x "$ggml/bench-mmid-cold" ]; then
  bash bench/peer/build_ggml_cuda.sh "$ggml" "$work/ggml-build" >>"$log" 2>&1 || {
    tail -20 "$log"
    exit 1
  }
  ggml="$work/ggml-build"
fi
peer_commit=${QK_PEER_COMMIT:-$(cat "$ggml/PEER_COMMIT" 2>/dev/null || echo unknown)}
ggml_libs=$(find "$ggml" -name 'libggml*.so*' -printf '%h\n' | sort -u | tr '\n' ':')
LD_LIBRARY_PATH="$ggml_libs$libs" BENCH_JSONL="$results" BENCH_PEER_COMMIT="$peer_commit" BENCH_DEVICE="$device" \
  "$ggml/bench-mmid-cold" CUDA0 "qwen3.5-35b-a3b" "$types" "$max" >"$work/ggml.txt" 2>&1
cat "$work/ggml.txt" >>"$log"
tail -3 "$work/ggml.txt"

echo "== qkern"
filter="BM_moe/matmul_"
if [ "$types" != all ]; then
  # `qkern types` prints a table: | NAME | id | ...
  ids=$(LD_LIBRARY_PATH=$libs "$build/cli/qkern" types | python3 -c '
import sys
want = {t.strip().upper() for t in sys.argv[1].split(",")}
cells = [[c.strip() for c in l.split("|")[1:3]] for l in sys.stdin if l.startswith("|")]
print("|".join(i for n, i in cells if n.upper() in want and i.isdigit()))' "$types")
  filter="BM_moe/matmul_.*/type:($ids)/"
fi
LD_LIBRARY_PATH=$libs "$build/bench/qkern_bench_moe" --benchmark_filter="$filter" --benchmark_min_time=0.05 \
  --benchmark_out="$work/qkern-moe.json" --benchmark_out_format=json >>"$log" 2>&1
# to_jsonl.py writes its output file anew: into its own file, then appended beside the peers' rows
python3 bench/to_jsonl.py "$work/qkern-moe.json" "$device" "$commit" "$work/qkern.jsonl" >/dev/null &&
  cat "$work/qkern.jsonl" >>"$results"
python3 - "$work/qkern-moe.json" "$results" "$max" <<'PY'
# drop qkern's rows above the largest token count asked for, so that both sides cover the same cells
import json, sys
max_tokens = int(sys.argv[3])
rows = [json.loads(l) for l in open(sys.argv[2])]
with open(sys.argv[2], "w") as f:
    for r in rows:
        if r.get("backend") != "cuda" or (r.get("tokens") or 0) <= max_tokens:
            f.write(json.dumps(r) + "\n")
PY

if [ -n "${QK_PEER_PATHS:-}" ]; then
  echo "== qkern per path"
  : >"$out/sweep.jsonl"
  for path in ${QK_PEER_PATHS//,/ }; do
    # PATH@N: the dot path with N lanes a row (QK_MOE_DOT_LANES); PATH:W with W warps a CTA (QK_MOE_DOT_WARPS);
    # PATH#R with R rows a lane group (QK_MOE_DOT_ROWS); tiled%M with M rows a 32- or 64-slot tile (QK_MOE_TILE_M);
    # tiled^N with N slots a tile (QK_MOE_TILE_N)
    lanes="" warps="" rows="" tile_m="" tile_n="" entry=$path
    case $path in *^*) tile_n=${path#*^} path=${path%%^*} ;; esac
    case $path in *%*) tile_m=${path#*%} path=${path%%%*} ;; esac
    case $path in *#*) rows=${path#*#} path=${path%%#*} ;; esac
    case $path in *:*) warps=${path#*:} path=${path%%:*} ;; esac
    [ "${path#*@}" = "$path" ] || lanes=${path#*@}
    # the dot path at 2048 tokens reads every expert dozens of times: left out
    sfilter=$filter
    [ "${path#dot}" = "$path" ] || sfilter="$filter.*tokens:(${QK_PEER_SWEEP_TOKENS:-1|8|32|128|512})/"
    QK_MOE_PATH=${path%@*} QK_MOE_DOT_LANES=$lanes QK_MOE_DOT_WARPS=$warps QK_MOE_DOT_ROWS=$rows QK_MOE_TILE_M=$tile_m QK_MOE_TILE_N=$tile_n LD_LIBRARY_PATH=$libs "$build/bench/qkern_bench_moe" --benchmark_filter="$sfilter" \
      --benchmark_min_time=0.05 --benchmark_out="$work/sweep.json" --benchmark_out_format=json >>"$log" 2>&1
    python3 bench/to_jsonl.py "$work/sweep.json" "$device" "$commit" "$work/sweep1.jsonl" >/dev/null &&
      python3 -c 'import json, sys
with open(sys.argv[2], "a") as f:
    for l in open(sys.argv[1]):
        r = json.loads(l); r["path"] = sys.argv[3]; f.write(json.dumps(r) + "\n")' "$work/sweep1.jsonl" "$out/sweep.jsonl" "$entry"
  done
  python3 bench/peer/compare.py --paths "$out/sweep.jsonl" "$results" >"$out/sweep.md" && tail -5 "$out/sweep.md"
fi

echo "== torch"
tokens=$(python3 -c "import sys; print(','.join(t for t in '1,8,32,128,512,2048'.split(',') if int(t) <= int(sys.argv[1])))" "$max")
python3 bench/peer/torch_grouped_mm.py --jsonl "$results" --device-name "$device" --tokens "$tokens" >"$work/torch.txt" 2>&1
cat "$work/torch.txt" >>"$log"
tail -3 "$work/torch.txt"

if [ "${QK_PEER_MODELS:-0}" = 1 ]; then
  echo "== whole models (qkern bench)"
  for model in qwen3.5-35b-a3b qwen3.5-397b-a17b; do
    for what in tg pp; do
      LD_LIBRARY_PATH=$libs timeout 150 "$build/cli/qkern" bench "$what" -m "$model" -q Q4_K,IQ2_XXS --routing uniform \
        --device cuda:0 -r 3 --commit "$commit" --format json >"$work/model.json" 2>>"$log" &&
        python3 -c 'import json, sys
rows = json.load(open(sys.argv[1]))  # qkern bench --format json: a list of records
with open(sys.argv[2], "a") as f:
    for r in rows: f.write(json.dumps(r) + "\n")
    print("\n".join(json.dumps(r)[:300] for r in rows))' "$work/model.json" "$results"
    done
  done
fi

if [ -n "${QK_PEER_PROFILE:-}" ]; then
  echo "== Nsight Compute"
  n=0
  IFS=';' read -ra profiles <<<"$QK_PEER_PROFILE"
  for p in "${profiles[@]}"; do
    n=$((n + 1))
    { echo "# $p"; timeout 120 bash scripts/gpu_profile.sh "${p%%=*}" "${p#*=}" "$build"; } >"$out/ncu-$n.txt" 2>&1
    grep -E "Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per" "$out/ncu-$n.txt" | head -8
  done
fi

python3 bench/peer/compare.py "$results" | tee "$out/compare.md" | tail -40
