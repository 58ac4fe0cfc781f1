#!/usr/bin/env bash
# Peak host memory (resident set, from the kernel's rusage of the child) of `qkern quantize` on
# the generated models, on the CPU backend and on CUDA, into $OUT/memory.md. Run on the GPU
# machine with a build from scripts/gpu_build.sh (its carry.tar.xz unpacked here).
# usage: bash scripts/gpu_memory.sh [BUILD_DIR] [SIZES]   (default build-dev, "small medium")
set -uo pipefail
B=${1:-build-dev}
sizes=${2:-small medium}
. "$(dirname "$0")/gpu_prelude.sh"
# one child per measurement, so that RUSAGE_CHILDREN's maximum is that child's
peak() {
  python3 -c 'import resource, subprocess, sys, time
t = time.time()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{kb / 1024:.0f} MiB | {time.time() - t:.1f} s | exit {r.returncode} {r.stderr.strip()[-120:]}")' "$@"
}
{
  echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); qkern $(cat "$B/COMMIT"); $(date -u +%F)"
  echo
  echo "| model | file | device | peak resident | wall | |"
  echo "|---|---:|---|---:|---:|---|"
  for s in $sizes; do
    "$q" generate --size "$s" --seed 1 "$work/$s.gguf" >/dev/null || exit 1
    mb=$(($(stat -c %s "$work/$s.gguf") / 1048576))
    for d in cpu cuda:0; do
      echo "| $s | $mb MiB | $d | $(peak "$q" quantize --quiet --device "$d" "$work/$s.gguf" "$work/out.gguf" Q4_K_M) |"
      rm -f "$work/out.gguf"
    done
  done
} | tee "$out/memory.md"
