#!/usr/bin/env bash
# A sharded size target (issue 20 item 3): `quantize --target-bpw B --shard I/N --dry-run
# --state-file S_I` measures part I's rows of the error matrix only; `qkern state-merge S S_1 ..
# S_N` combines them; each part then runs with --state-file S, measures nothing and writes part I
# of the split. The parts are the single run's tensors byte for byte, with the same state file
# and with a single run that measures its own matrix. Refused: a merge of files of other
# candidates or another model, a part twice or one missing; a sharded target run without the
# whole matrix or without a state file. Each part checks its own tensors' data against the state
# file, not the others'.
# Usage: test_cli_target_shard.sh QKERN_BINARY
set -u
qkern=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh"
types=Q4_K,Q6_K,Q8_0,IQ4_XS # a few candidates keep the measuring short
target=(--imatrix "$dir/im.gguf" --target-bpw 5.5 --target-types "$types")
quantize() { "$qkern" quantize "$@"; }
one_line() { [ -n "$1" ] && [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ]; }

check "generate" "$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf" >/dev/null
check "generate another model" "$qkern" generate --size tiny --seed 8 "$dir/other.gguf" >/dev/null

# phase 1: each part's errors into its own file, last part first
for k in 3 2 1; do
  out=$(quantize --dry-run --shard "$k/3" "${target[@]}" --state-file "$dir/s$k.bin" "$dir/m.gguf" "$dir/q.gguf" \
    Q4_K_M 2>"$dir/err")
  check "phase 1, part $k/3: succeeds" test $? -eq 0
  check "phase 1, part $k/3: says the part's errors are in the file" \
    grep -q "^target: part $k's errors are in" <<<"$out"
  check "phase 1, part $k/3: measured" grep -q "part $k of 3: errors of its tensors .* measured into" "$dir/err"
  check "phase 1, part $k/3: state file written" test -s "$dir/s$k.bin"
done
check "phase 1 writes no model" test -z "$(ls "$dir" | grep '^q')"
err=$(quantize --dry-run --shard 1/3 "${target[@]}" --state-file "$dir/s1.bin" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M \
  2>&1 >/dev/null)
check "phase 1 again: nothing measured" grep -q "part 1 of 3: errors of its tensors .* already in" <<<"$err"

# the merge refuses a part missing, a part twice, other candidates and another model
merge_refused() { # merge_refused WHAT PATTERN IN...: exit 1, one line matching PATTERN, no output file
  local what=$1 pattern=$2
  shift 2
  err=$("$qkern" state-merge "$dir/bad.bin" "$@" 2>&1 >/dev/null)
  check "merge refuses $what (exit 1)" test $? -eq 1
  check "merge refuses $what: one line" one_line "$err"
  check "merge refuses $what: says why" grep -q "$pattern" <<<"$err"
  check "merge refuses $what: writes nothing" test ! -e "$dir/bad.bin"
}
merge_refused "a missing part" "leave .* tensors without errors" "$dir/s1.bin" "$dir/s3.bin"
merge_refused "a part twice" "both hold the errors" "$dir/s1.bin" "$dir/s2.bin" "$dir/s2.bin" "$dir/s3.bin"
check "phase 1 with other candidates" quantize --quiet --dry-run --shard 2/3 --imatrix "$dir/im.gguf" --target-bpw 5.5 \
  --target-types Q4_K,Q8_0 --state-file "$dir/types2.bin" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M >/dev/null
merge_refused "other candidates" "hold other candidates" "$dir/s1.bin" "$dir/types2.bin" "$dir/s3.bin"
check "phase 1 of another model" "$qkern" quantize --quiet --dry-run --shard 2/3 --target-bpw 5.5 \
  --target-types "$types" --state-file "$dir/other2.bin" "$dir/other.gguf" "$dir/q.gguf" Q4_K_M >/dev/null
merge_refused "another model" "made for other tensor data" "$dir/s1.bin" "$dir/other2.bin" "$dir/s3.bin"
merge_refused "a file that is not there" "does not exist" "$dir/s1.bin" "$dir/nothing.bin"
out=$("$qkern" state-merge "$dir/s.bin" "$dir/s2.bin" "$dir/s1.bin" "$dir/s3.bin")
check "merge of the three parts (any order)" grep -q "^state-merge: 3 files, the errors of [0-9]* tensors" <<<"$out"

# a sharded target run needs the whole matrix, and a state file
err=$(quantize --shard 1/3 "${target[@]}" --state-file "$dir/s1.bin" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M 2>&1 >/dev/null)
check "phase 2 with one part's file refused (exit 1)" test $? -eq 1
check "phase 2 with one part's file: names the two steps" grep -q "state-merge.*--state-file" <<<"$err"
err=$(quantize --shard 1/3 "${target[@]}" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M 2>&1 >/dev/null)
check "sharded target without --state-file refused (exit 1)" test $? -eq 1
check "sharded target without --state-file: one line naming --shard and state-merge" \
  grep -q -- "--shard.*state-merge" <<<"$err"
err=$(quantize --shard 1/3 --imatrix "$dir/im.gguf" --target-bpw 5.5 --target-types Q4_K,Q8_0 \
  --state-file "$dir/s.bin" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M 2>&1 >/dev/null)
check "merged file with other candidates refused" grep -q "holds other candidates" <<<"$err"
check "refused runs write nothing" test -z "$(ls "$dir" | grep '^q')"

# a dry run of a part plans it: the parts' plans joined are the single run's
plan_rows() { grep -E '^(blk\.|token_embd|output)' <<<"$1"; }
single_plan=$(quantize --dry-run "${target[@]}" --state-file "$dir/s.bin" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M \
  2>/dev/null)
joined=
for k in 1 2 3; do
  part_plan=$(quantize --dry-run --shard "$k/3" "${target[@]}" --state-file "$dir/s.bin" "$dir/m.gguf" "$dir/q.gguf" \
    Q4_K_M 2>/dev/null)
  joined+=$(plan_rows "$part_plan")$'\n'
  last_part_rows=$(plan_rows "$part_plan")
done
check "dry runs: the 3 parts' plans joined are the single plan" test "$joined" = "$(plan_rows "$single_plan")"$'\n'

# phase 2: the parts, last first, against the single runs
for k in 3 2 1; do
  err=$(quantize --shard "$k/3" "${target[@]}" --state-file "$dir/s.bin" "$dir/m.gguf" "$dir/q.gguf" Q4_K_M \
    2>&1 >/dev/null)
  check "phase 2, part $k/3: succeeds" test $? -eq 0
  check "phase 2, part $k/3: measures nothing" grep -q "error matrix read from .*nothing measured" <<<"$err"
done
check "single run with the merged file" quantize --quiet "${target[@]}" --state-file "$dir/s.bin" "$dir/m.gguf" \
  "$dir/one.gguf" Q4_K_M >/dev/null
check "the parts are the single run's tensors" python3 "$here/gguf_shards.py" check "$dir/one.gguf" "$dir/q" 3
check "single run measuring its own matrix" quantize --quiet "${target[@]}" "$dir/m.gguf" "$dir/own.gguf" Q4_K_M \
  >/dev/null
check "the merged matrix gives the bytes of a single run's own" cmp -s "$dir/one.gguf" "$dir/own.gguf"

# Each part checks only its own tensors' data against the state file (the parts together check
# them all): with one bit of a tensor of part 3 changed in its middle (past the 4 KiB at each end
# that the model's key samples), part 1 still runs on the merged file, and part 3 and a single run
# refuse it, naming the tensor.
name=$(awk '/ffn_up_exps/ { n = $1 } END { print n }' <<<"$last_part_rows")
check "part 3 has an expert tensor ($name)" test -n "$name"
check "a copy with one bit of $name changed" python3 "$here/gguf_shards.py" touch "$dir/m.gguf" "$dir/m2.gguf" "$name"
check "part 1 with part 3's tensor changed: runs" quantize --quiet --shard 1/3 "${target[@]}" --state-file "$dir/s.bin" \
  "$dir/m2.gguf" "$dir/r.gguf" Q4_K_M >/dev/null 2>&1
err=$(quantize --shard 3/3 "${target[@]}" --state-file "$dir/s.bin" "$dir/m2.gguf" "$dir/r.gguf" Q4_K_M 2>&1 >/dev/null)
check "part 3 with its tensor changed: refused (exit 1)" test $? -eq 1
check "part 3 with its tensor changed: names it" grep -q "was made for other tensor data.*$name" <<<"$err"
check "part 3 refused: wrote nothing" test ! -e "$dir/r-00003-of-00003.gguf"
err=$(quantize --dry-run "${target[@]}" --state-file "$dir/s.bin" "$dir/m2.gguf" "$dir/r.gguf" Q4_K_M 2>&1 >/dev/null)
check "a single run with the tensor changed: refused naming it" grep -q "was made for other tensor data.*$name" <<<"$err"
finish
