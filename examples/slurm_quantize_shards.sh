#!/usr/bin/env bash
# Quantize one model on several machines at once with a Slurm job array: task k writes part k+1 of
# llama.cpp's split GGUF (qkern quantize --shard I/N). Each task plans the whole model, as a single
# run would, and quantizes only its own contiguous share of the output bytes; the tasks never talk
# to each other. When all have finished, OUT-00001-of-0000N.gguf ... OUT-0000N-of-0000N.gguf hold
# the single run's tensors byte for byte: llama.cpp loads them as they are (give it part 1), and
# llama-gguf-split --merge joins them into one file.
#
#   sbatch --array=0-7 examples/slurm_quantize_shards.sh     # N = 8 parts: the array's size
#
# Settings: the environment (sbatch --export=ALL,MODEL=...,TYPE=...) or the defaults below.
# MODEL, IMATRIX and OUT must be on storage every node sees; IMATRIX= (empty) quantizes without one.
# A task that fails leaves no part behind: resubmit just its index (sbatch --array=3 ...).
#SBATCH --job-name=qkern-shards
#SBATCH --array=0-7
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --gpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=qkern-shard-%a.log
set -euo pipefail

QKERN=${QKERN:-qkern}
MODEL=${MODEL:-/shared/models/Qwen3.5-397B-A17B-BF16-00001-of-00017.gguf}
IMATRIX=${IMATRIX-/shared/models/Qwen3.5-397B-A17B-imatrix.gguf}
OUT=${OUT:-/shared/models/Qwen3.5-397B-A17B-Q4_K_M.gguf}
TYPE=${TYPE:-Q4_K_M}
# the array's size, unless given: every task must use the same N
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:?run as a Slurm array task (sbatch --array=0-7 ...) or set SHARDS}}
TASK=${SLURM_ARRAY_TASK_ID:?run as a Slurm array task (sbatch --array=0-7 ...) or set SLURM_ARRAY_TASK_ID}
INDEX=$((TASK - ${SLURM_ARRAY_TASK_MIN:-0})) # 0-based, whatever the array's first index

opts=()
[ -n "$IMATRIX" ] && opts+=(--imatrix "$IMATRIX")
echo "qkern-shards: part $((INDEX + 1)) of $SHARDS on $(hostname)"
exec "$QKERN" quantize --shard "$((INDEX + 1))/$SHARDS" ${opts[@]+"${opts[@]}"} "$MODEL" "$OUT" "$TYPE"
