#!/usr/bin/env bash
# qkern quantize as a drop-in for llama-quantize: the same argument lists through both tools, on a
# synthetic qwen35moe model (qkern generate) and on a small llama model whose rows fit no 256-block
# (gguf_brief.py odd), comparing exit codes, the files written (names, tensor names, types and
# shapes, metadata) and the fallback count. Without llama-quantize (LLAMA_QUANTIZE unset or not
# executable) only qkern's side runs: exit codes, and that each option has its effect on the output.
# Usage: parity_llama_quantize.sh QKERN_BINARY [LLAMA_QUANTIZE_BINARY]
set -u
qkern=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
llama=${2:-${LLAMA_QUANTIZE:-}}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh"
brief() { python3 "$here/gguf_brief.py" "$@"; }

if [ -n "$llama" ] && [ -x "$llama" ]; then
  llama=$(cd "$(dirname "$llama")" && pwd)/$(basename "$llama")
  echo "llama-quantize: $llama"
else
  echo "llama-quantize not found (set LLAMA_QUANTIZE): the llama side is skipped, qkern's side runs alone"
  llama=
fi

"$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf" >/dev/null || exit 1
brief odd "$dir/odd.gguf" || exit 1
# a split input: qkern's own parts, as llama's gguf-split names them
"$qkern" quantize --quiet --split-max-size 6M "$dir/m.gguf" "$dir/sp.gguf" BF16 >/dev/null || exit 1
parts=$(cd "$dir" && ls sp-*.gguf | wc -l)
printf 'ffn_down_exps=q8_0\n  attn_qkv=q5_1\tattn_gate=iq4_nl\n' >"$dir/tt.txt"
printf 'ffn_down_exps=q8_0 attn_qkv=q9_9\n' >"$dir/tt_bad.txt"

# run TOOL ARGS...: in a fresh folder $dir/TOOL.N holding links to the inputs, so that both tools
# see the same relative names (which the metadata records); sets rc, out (folder), err (stderr),
# and q_err (the stderr of qkern's last run).
n_run=0 n_same=0
run() {
  local tool=$1
  shift
  n_run=$((n_run + 1))
  out="$dir/$tool.$n_run"
  mkdir "$out"
  for f in m.gguf im.gguf odd.gguf tt.txt tt_bad.txt $(cd "$dir" && ls sp-*.gguf); do ln -s "../$f" "$out/$f"; done
  [ -e "$dir/q8.gguf" ] && ln -s ../q8.gguf "$out/q8.gguf"
  if [ "$tool" = q ]; then
    (cd "$out" && "$qkern" quantize "$@" >stdout.txt 2>stderr.txt)
  else
    (cd "$out" && "$llama" "$@" >stdout.txt 2>stderr.txt)
  fi
  rc=$?
  err="$out/stderr.txt"
  if [ "$tool" = q ]; then q_err=$err; fi
}

# What a run wrote: each new .gguf file's name and header, as one text.
written() {
  (cd "$1" && for f in $(find . -maxdepth 1 -name '*.gguf' -type f | sort); do
    echo "file ${f#./}"
    brief dump "$f"
  done)
}

fallbacks() { grep -o '[0-9]* of [0-9]* tensor(s) required fallback' "$1" | head -1; }

# same NAME RC ARGS... [-- PATTERN...]: qkern exits RC, its output matches every PATTERN (a grep -E
# on the written() text; "!PATTERN" must not match); with llama-quantize, it exits the same and
# writes the same files, tensors, types and metadata, and reports the same fallback count.
same() {
  local name=$1 want=$2 args=() pats=() seen=0
  shift 2
  n_same=$((n_same + 1))
  for a in "$@"; do
    if [ $seen = 0 ] && [ "$a" = -- ]; then seen=1; elif [ $seen = 0 ]; then args+=("$a"); else pats+=("$a"); fi
  done
  run q "${args[@]}"
  local q_rc=$rc q_out=$out
  check "$name: qkern exits $want (got $q_rc: $(tail -1 "$q_err"))" test "$q_rc" -eq "$want"
  local q_files
  q_files=$(written "$q_out")
  if [ "$want" -ne 0 ]; then
    check "$name: qkern writes nothing" test -z "$q_files"
    check "$name: qkern says why in one line" test "$(wc -l <"$q_err")" -eq 1
  fi
  for p in "${pats[@]+"${pats[@]}"}"; do
    if [ "${p#!}" != "$p" ]; then
      check "$name: qkern output has no '${p#!}'" bash -c '! grep -qE -- "$1" <<<"$2"' _ "${p#!}" "$q_files"
    else
      check "$name: qkern output has '$p'" grep -qE -- "$p" <<<"$q_files"
    fi
  done
  [ -n "$llama" ] || return 0
  run l "${args[@]}"
  check "$name: llama-quantize exits $q_rc too (got $rc)" test "$rc" -eq "$q_rc"
  local l_files
  l_files=$(written "$out")
  check "$name: same files, tensors, types and metadata" test "$q_files" = "$l_files"
  [ "$q_files" = "$l_files" ] || diff <(echo "$q_files") <(echo "$l_files") | head -20
  check "$name: same fallback count ('$(fallbacks "$q_err")')" test "$(fallbacks "$q_err")" = "$(fallbacks "$err")"
}

# ---- presets, positional forms, THREADS -------------------------------------------------------
same "Q4_K_M + imatrix" 0 --imatrix im.gguf m.gguf o.gguf Q4_K_M 2 -- \
  'kv general.file_type U32 15' 'kv quantize.imatrix.file STR .im.gguf.' 'tensor blk.3.ffn_down_exps.weight 14 '
same "type by id" 0 m.gguf o.gguf 7 -- 'kv general.file_type U32 7' 'tensor blk.0.ffn_up_exps.weight 8 '
same "default output name" 0 m.gguf q5_k_s -- 'file ggml-model-Q5_K_S.gguf' 'kv general.file_type U32 16'
same "THREADS 0: all cores" 0 m.gguf o.gguf Q4_0 0 -- 'tensor blk.0.ffn_up_exps.weight 2 '
same "THREADS -1: all cores" 0 m.gguf o.gguf Q5_0 -1 -- 'kv general.file_type U32 8'
same "Q1_0 preset" 0 m.gguf o.gguf Q1_0 -- 'kv general.file_type U32 40' 'tensor blk.0.ffn_up_exps.weight 41 '
same "Q2_0 preset" 0 m.gguf o.gguf Q2_0 -- 'kv general.file_type U32 41' 'tensor token_embd.weight 12 ' \
  'tensor blk.0.ffn_up_exps.weight 42 '
same "Q1_0 by id" 0 m.gguf o.gguf 40 -- 'kv general.file_type U32 40'
# every preset's mixture rules on the MoE model (with its imatrix, which some rules read)
for t in Q4_1 MXFP4_MOE Q5_1 IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ1_S IQ1_M TQ1_0 TQ2_0 Q2_K Q2_K_S IQ3_XXS IQ3_S IQ3_M \
  Q3_K IQ3_XS Q3_K_S Q3_K_L IQ4_NL IQ4_XS Q4_K Q4_K_S Q5_K Q5_K_M Q6_K Q8_0 F16 BF16 F32; do
  same "$t + imatrix" 0 --imatrix im.gguf m.gguf o.gguf $t
done
same "COPY" 0 m.gguf o.gguf COPY -- 'kv general.file_type U32 32' 'tensor blk.0.ffn_up_exps.weight 30 '

# ---- options ------------------------------------------------------------------------------------
same "--pure" 0 --pure m.gguf o.gguf Q3_K_M -- 'tensor output.weight 11 ' 'tensor blk.0.ffn_down_exps.weight 11 '
same "--output-tensor-type/--token-embedding-type" 0 --output-tensor-type q8_0 --token-embedding-type Q6_K \
  m.gguf o.gguf Q4_K_S -- 'tensor output.weight 8 ' 'tensor token_embd.weight 14 '
same "--leave-output-tensor" 0 --leave-output-tensor m.gguf o.gguf Q5_K_M -- 'tensor output.weight 30 '
same "--tensor-type" 0 --tensor-type ffn_down_exps=q8_0 --tensor-type 'blk\.[02]\.attn_qkv=q5_1' m.gguf o.gguf \
  IQ4_XS -- 'tensor blk.0.ffn_down_exps.weight 8 ' 'tensor blk.2.attn_qkv.weight 7 ' '!tensor blk.1.attn_qkv.weight 7 '
same "--tensor-type-file" 0 --tensor-type-file tt.txt m.gguf o.gguf Q4_K_M -- 'tensor blk.3.ffn_down_exps.weight 8 ' \
  'tensor blk.1.attn_qkv.weight 7 ' 'tensor blk.1.attn_gate.weight 20 '
same "--prune-layers" 0 --imatrix im.gguf --prune-layers 2,1,2 m.gguf o.gguf Q4_K_M -- \
  'kv qwen35moe.block_count U32 2' 'tensor blk.1.attn_q.weight ' '!tensor blk.2.' '!attn_qkv.weight .* blk.1'
same "--override-kv" 0 --override-kv general.name=str:renamed --override-kv qwen35moe.context_length=int:-4096 \
  --override-kv my.scale=float:0.5 --override-kv my.flag=bool:true m.gguf o.gguf Q6_K -- \
  "kv general.name STR 'renamed'" 'kv qwen35moe.context_length U32 4096' 'kv my.scale F32 0.5' 'kv my.flag BOOL True'
same "--exclude-weights" 0 --imatrix im.gguf --exclude-weights ffn_down m.gguf o.gguf Q4_K_M -- \
  'kv quantize.imatrix.entries_count U32 4[0-9]'
same "--include-weights" 0 --imatrix im.gguf --include-weights attn m.gguf o.gguf Q4_K_M
# --keep-split names even a single output part like a split (llama-quantize's llama_split_path)
same "--keep-split (one input file)" 0 --keep-split m.gguf o.gguf Q4_0 -- 'file o-00001-of-00001.gguf' '!split.count'
same "--keep-split (split input)" 0 --keep-split sp-00001-of-0000$parts.gguf o.gguf Q4_0 -- \
  "file o-0000$parts-of-0000$parts.gguf" "kv split.count U16 $parts"
same "split input, one output" 0 sp-00001-of-0000$parts.gguf o.gguf Q4_0 -- 'file o.gguf' '!split.count'
same "--max-buffer-size" 0 --max-buffer-size 1 m.gguf o.gguf Q4_0 -- 'kv general.file_type U32 2'
same "--dry-run" 0 --dry-run --imatrix im.gguf m.gguf o.gguf IQ2_XXS -- '!file'
"$qkern" quantize --quiet "$dir/m.gguf" "$dir/q8.gguf" Q8_0 >/dev/null
same "--allow-requantize" 0 --allow-requantize q8.gguf o.gguf Q4_K_M -- 'tensor blk.0.ffn_up_exps.weight 12 '

# ---- fallback types ---------------------------------------------------------------------------
# and on the dense model whose rows need fallbacks (running attn_v / ffn_down counters)
for t in Q4_K_M Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS IQ3_S Q4_0 Q8_0 Q2_0 TQ2_0 MXFP4_MOE; do
  same "fallbacks: $t" 0 odd.gguf o.gguf $t
done
same "fallbacks: Q1_0 has none (128-blocks)" 1 odd.gguf o.gguf Q1_0
same "dense --prune-layers" 0 --prune-layers 0,3 odd.gguf o.gguf Q4_K_M -- 'kv llama.block_count U32 2' \
  'tensor blk.1.ffn_down.weight'
run q odd.gguf o.gguf Q4_K_M
check "fallback: a line per tensor" test "$(grep -c 'falling back to' "$err")" -eq 29
check "fallback: the count" grep -q '29 of 39 tensor(s) required fallback quantization' "$err"
check "fallback: 80 columns need F16" grep -q 'blk.0.ffn_down.weight .*ncols *80 .*falling back to F16' "$err"
run q --quiet odd.gguf o.gguf Q4_K_M
check "--quiet silences the fallback lines" test ! -s "$err"

# ---- misuse: exit 1 as llama-quantize, one line, nothing written -------------------------------
same "no arguments" 1
same "IN alone" 1 m.gguf
same "unknown TYPE" 1 m.gguf o.gguf Q4_K_X
same "unknown TYPE id" 1 m.gguf o.gguf 39
same "missing input" 1 nothere.gguf o.gguf Q4_0
same "unknown option" 1 --frobnicate m.gguf o.gguf Q4_0
same "option without its value" 1 m.gguf o.gguf Q4_0 --imatrix
same "--tensor-type without =" 1 --tensor-type attn_q m.gguf o.gguf Q4_0
same "--tensor-type bad type" 1 --tensor-type attn_q=q9_9 m.gguf o.gguf Q4_0
same "--tensor-type-file missing" 1 --tensor-type-file nothere.txt m.gguf o.gguf Q4_0
same "--tensor-type-file bad item" 1 --tensor-type-file tt_bad.txt m.gguf o.gguf Q4_0
same "--output-tensor-type bad type" 1 --output-tensor-type q9 m.gguf o.gguf Q4_0
same "--prune-layers not numbers" 1 --prune-layers 1,x m.gguf o.gguf Q4_0
same "--prune-layers negative" 1 --prune-layers -3 m.gguf o.gguf Q4_0
same "--override-kv without =" 1 --override-kv general.name m.gguf o.gguf Q4_0
same "--override-kv bad TYPE" 1 --override-kv general.name=text:x m.gguf o.gguf Q4_0
same "--override-kv bad bool" 1 --override-kv my.flag=bool:yes m.gguf o.gguf Q4_0
same "--include with --exclude" 1 --imatrix im.gguf --include-weights a --exclude-weights b m.gguf o.gguf Q4_0
same "bad THREADS" 1 m.gguf o.gguf Q4_0 many
same "--max-buffer-size 0" 1 --max-buffer-size 0 m.gguf o.gguf Q4_0
same "IQ1_S without imatrix" 1 m.gguf o.gguf IQ1_S
same "output is the input" 1 m.gguf m.gguf Q4_0
same "missing imatrix file" 1 --imatrix nothere.gguf m.gguf o.gguf Q4_0
# qkern's own options (this llama-quantize has none of them: an unknown option exits 1 there),
# each misused
same "--target-bpw not a number" 1 --target-bpw x m.gguf o.gguf Q4_0
same "--state-file without a target" 1 --state-file s.bin m.gguf o.gguf Q4_0
same "--target-size out of reach" 1 --target-size 4 m.gguf o.gguf Q4_0

echo "$n_same argument lists$([ -n "$llama" ] && echo ", each through both tools" || echo ", qkern only")"
finish
