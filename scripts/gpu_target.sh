#!/usr/bin/env bash
# Issue 17 on the GPU machine: the size target's error matrix measured for real on a device.
# Generates the medium model with its imatrix, then times `qkern quantize --target-bpw` on the
# device (the first run measures the whole matrix and keeps it in a state file; the second,
# another target, reads it), the same on 16 CPU cores for scale, and the projection of
# `qkern bench quantize --error-matrix` for Qwen3.5-35B-A3B. Writes $OUT/target.md.
# usage: bash scripts/gpu_target.sh [BUILD_DIR] [DEVICE]   (default build-dev cuda:0)
set -uo pipefail
B=${1:-build-dev} dev=${2:-cuda:0}
. "$(dirname "$0")/gpu_prelude.sh"
"$q" generate --size medium --seed 1 --imatrix "$work/im.gguf" "$work/m.gguf" >/dev/null || exit 1
timed() { # timed LABEL cmd...: one table row, the command's last line
  local label=$1 t0 rc; shift
  t0=$EPOCHREALTIME
  "$@" >"$work/log" 2>&1
  rc=$?
  printf '| %s | %s s | %s | %s |\n' "$label" "$(python3 -c "print(f'{$EPOCHREALTIME - $t0:.2f}')")" "$rc" \
    "$(grep -E 'bpw|error' "$work/log" | tail -1 | cut -c1-140)"
}
{
  echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); qkern $(cat "$B/COMMIT"); $(date -u +%F)"
  echo
  echo "medium generated model (482 M parameters, BF16), its imatrix; wall time of the whole process"
  echo
  echo "| run | wall | exit | last line |"
  echo "|---|---:|---:|---|"
  timed "$dev Q4_K_M preset" "$q" quantize --device "$dev" --imatrix "$work/im.gguf" "$work/m.gguf" "$work/p.gguf" Q4_K_M
  timed "$dev --target-bpw 4.5 (measures the matrix)" "$q" quantize --device "$dev" --imatrix "$work/im.gguf" \
    --target-bpw 4.5 --state-file "$work/st-dev.bin" "$work/m.gguf" "$work/t1.gguf" Q4_K_M
  timed "$dev --target-bpw 3.5 (state file)" "$q" quantize --device "$dev" --imatrix "$work/im.gguf" \
    --target-bpw 3.5 --state-file "$work/st-dev.bin" "$work/m.gguf" "$work/t2.gguf" Q4_K_M
  timed "cpu --target-bpw 4.5 (measures the matrix, $(nproc) threads)" "$q" quantize --device cpu --imatrix "$work/im.gguf" \
    --target-bpw 4.5 --state-file "$work/st-cpu.bin" "$work/m.gguf" "$work/t3.gguf" Q4_K_M "$(nproc)"
  if cmp -s "$work/t1.gguf" "$work/t3.gguf"; then echo; echo "the device's and the CPU's 4.5 bpw files: identical"
  else echo; echo "the device's and the CPU's 4.5 bpw files: DIFFER (the matrices' sums differ in their order of additions)"; fi
  echo
  echo '```'
  "$q" bench quantize --shape qwen3.5-35b-a3b --preset Q4_K_M --error-matrix -dev "$dev" 2>&1 | tail -12
  echo '```'
} | tee "$out/target.md"
