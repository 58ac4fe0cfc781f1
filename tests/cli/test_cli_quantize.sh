#!/usr/bin/env bash
# The qkern command line end to end: generate a model, quantize it (llama-quantize's
# interface), inspect it, and check that bad input, a failure and Ctrl-C leave no file behind
# and that an output naming the input or the imatrix, by any name, is refused.
# Usage: test_cli_quantize.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"
no_output_left() { # no OUT nor OUT.tmp.* in the folder
  [ ! -e "$1" ] && ! ls "$1".tmp.* >/dev/null 2>&1
}

check "generate" "$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf"
check "quantize --help" "$qkern" quantize --help >/dev/null

# the llama-quantize form: options, IN OUT TYPE THREADS
check "Q4_K_M" "$qkern" quantize --imatrix "$dir/im.gguf" --report "$dir/r.json" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M 2
check "output exists" test -s "$dir/q.gguf"
check "report is JSON with every tensor" python3 -c "
import json,sys; r=json.load(open('$dir/r.json')); t=r['tensors']
assert r['file_type']==15 and len(t)>10, r
assert all(x['weighted_rmse'] is not None for x in t if x['src_type']!=x['type'])"
info=$("$qkern" info "$dir/q.gguf")
check "info lists Q4_K tensors" grep -q "Q4_K" <<<"$info"
check "info shows a total" grep -q "^  total" <<<"$info"
check "info shows metadata" grep -q "general.file_type" <<<"$info"

# the same with the type given by its llama_ftype number and the default output name
check "ftype number" "$qkern" quantize --quiet "$dir/m.gguf" 7
check "default output name" test -s "$dir/ggml-model-Q8_0.gguf"

# dry run: a plan, no file
plan=$("$qkern" quantize --dry-run --imatrix "$dir/im.gguf" "$dir/m.gguf" "$dir/dry.gguf" IQ2_XXS)
check "dry run writes nothing" no_output_left "$dir/dry.gguf"
check "dry run prints the plan" grep -q "ffn_down_exps" <<<"$plan"
check "dry run prints bpw" grep -q "bpw" <<<"$plan"

# --tensor-type takes llama.cpp's regexes, \d included, case-insensitive
plan=$("$qkern" quantize --dry-run --tensor-type 'BLK\.\d\.ffn_down_exps=q8_0' "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M)
check "--tensor-type with \\d" test "$(grep -c 'ffn_down_exps.*Q8_0.*override' <<<"$plan")" -eq 4

# usage errors: exit 1, as llama-quantize's (tests/cli/parity_llama_quantize.sh checks each case)
"$qkern" quantize "$dir/m.gguf" "$dir/x.gguf" NOT_A_TYPE 2>/dev/null
check "unknown type exits 1" test $? -eq 1
"$qkern" quantize --tensor-type 'attn=Q9_Z' "$dir/m.gguf" "$dir/x.gguf" Q4_K_M 2>/dev/null
check "unknown --tensor-type type exits 1" test $? -eq 1
check "usage errors: no output" no_output_left "$dir/x.gguf"

# bad input: truncated model, one line on stderr, exit 1, nothing written
head -c 100000 "$dir/m.gguf" >"$dir/trunc.gguf"
err=$("$qkern" quantize "$dir/trunc.gguf" "$dir/t.gguf" Q4_K_M 2>&1 >/dev/null)
rc=$?
check "truncated input exits 1" test $rc -eq 1
check "truncated input: one line" test "$(printf '%s\n' "$err" | wc -l)" -eq 1
check "truncated input: no output" no_output_left "$dir/t.gguf"

# needs an imatrix: clear error, nothing written
err=$("$qkern" quantize "$dir/m.gguf" "$dir/t.gguf" IQ1_S 2>&1 >/dev/null)
check "IQ1_S without imatrix fails" test $? -eq 1
check "IQ1_S error names imatrix" grep -q "imatrix" <<<"$err"
check "IQ1_S: no output" no_output_left "$dir/t.gguf"

# the output is the input model or the imatrix by another name (relative names, run in the
# folder): exit 1, one line saying so, both files byte for byte as they were, and no file (no
# temporary) added to the folder
mkdir "$dir/sub"
ln -s m.gguf "$dir/link.gguf"
ln "$dir/m.gguf" "$dir/hard.gguf"
sums=$(cd "$dir" && sha256sum m.gguf im.gguf)
qkern_abs=$(cd "$(dirname "$qkern")" && pwd)/$(basename "$qkern")
one_line() { [ -n "$1" ] && [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ]; }
refused() { # refused "what" OUT "is the input model": quantizing m.gguf to OUT is refused
  local what=$1 out=$2 says=$3 listing err rc
  listing=$(ls -A "$dir")
  err=$(cd "$dir" && "$qkern_abs" quantize --quiet --imatrix im.gguf m.gguf "$out" Q4_K_M 2>&1 >/dev/null)
  rc=$?
  check "$what: exits 1 (got $rc)" test $rc -eq 1
  check "$what: one line on stderr" one_line "$err"
  check "$what: says '$says'" grep -q "'$out' $says .*(same file); choose another output name" <<<"$err"
  check "$what: model and imatrix unchanged" test "$(cd "$dir" && sha256sum m.gguf im.gguf)" = "$sums"
  check "$what: no file added" test "$(ls -A "$dir")" = "$listing"
}
refused "same path" m.gguf "is the input model"
refused "./dir/../IN" ./sub/../m.gguf "is the input model"
refused "symlink to IN" link.gguf "is the input model"
refused "hard link to IN" hard.gguf "is the input model"
refused "output is the imatrix" im.gguf "is the imatrix file"
check "the symlink is still a symlink" test -L "$dir/link.gguf"

# Ctrl-C in the middle: exit 130, nothing left (a slow type on one thread)
"$qkern" generate --size small --seed 8 --imatrix "$dir/im2.gguf" "$dir/m2.gguf" >/dev/null
"$qkern" quantize --quiet --imatrix "$dir/im2.gguf" "$dir/m2.gguf" "$dir/int.gguf" IQ2_XXS 1 &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
rc=$?
check "SIGINT exits 130 (got $rc)" test $rc -eq 130
check "SIGINT: no output, no temporary" no_output_left "$dir/int.gguf"

finish
