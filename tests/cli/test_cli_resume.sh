#!/usr/bin/env bash
# `qkern quantize --resume` (issue 20 item 4): a run killed with SIGKILL at a random moment (before,
# during or after some tensors), started again with the same arguments and --resume, continues
# from its journal and writes the very bytes of an uninterrupted run, leaving no temporary and no
# journal; so does a run killed twice in a row, and a split output. A journal of another run
# (other preset, a touched imatrix) is ignored and the file written from the start; a damaged byte
# in a finished tensor of the temporary is found and that tensor written again; a second writer
# still fails at once; a resuming run stopped by SIGTERM keeps its temporary and journal; and
# without --resume a left temporary and journal are replaced as before.
# Usage: test_cli_resume.sh QKERN_BINARY   (QK_TEST_SEED=N repeats the random moments)
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"
seed=${QK_TEST_SEED:-$(date +%s)}
RANDOM=$seed
echo "seed $seed (QK_TEST_SEED=$seed repeats the random moments)"

o=$dir/o.gguf tmp=$dir/o.gguf.tmp.qkern jnl=$dir/o.gguf.tmp.qkern.journal
nothing_left() { ! ls "$dir"/*.tmp.qkern* >/dev/null 2>&1; }
records() { [ -e "$jnl" ] && echo $((($(stat -c %s "$jnl") - 32) / 32)) || echo none; }
wait_records() { # wait_records N PID: until the journal holds N records or PID has ended
  for _ in $(seq 3000); do
    [ -e "$jnl" ] && [ "$(records)" -ge "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
ms() { echo $(($(date +%s%N) / 1000000)); }

"$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf" >/dev/null
q=(quantize --imatrix "$dir/im.gguf" "$dir/m.gguf")
t0=$(ms)
"$qkern" "${q[@]}" --quiet "$dir/ref.gguf" Q4_K_M 1 >/dev/null
span=$(($(ms) - t0 + 50)) # the kills' moments: 0 to a bit past an uninterrupted run
"$qkern" "${q[@]}" --quiet "$dir/ref5.gguf" Q5_K_M 1 >/dev/null
check "reference outputs" test -s "$dir/ref.gguf" -a -s "$dir/ref5.gguf"
echo "an uninterrupted run takes about ${span} ms"

start() { # start TYPE [ARGS...]: a resuming run in the background; its pid in $pid
  local type=$1
  shift
  "$qkern" "${q[@]}" --quiet --resume "$@" "$o" "$type" 1 >/dev/null 2>>"$dir/bg_err" &
  pid=$!
}
kill_at() { # kill_at MS: SIGKILL $pid after MS milliseconds
  sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
finish_run() { # finish_run TYPE: the resuming run to the end; its stderr in $dir/err
  "$qkern" "${q[@]}" --resume "$o" "$1" 1 >/dev/null 2>"$dir/err"
}

# ---- random kills, then --resume -------------------------------------------------------------
kills=0 mid=0
# Under a sanitizer ($sanitized, harness.sh) a run takes 5-10x as long: two rounds there (one
# killed twice), the eight in the release build.
rounds="1 2 3 4 5 6 7 8"
[ -z "$sanitized" ] || rounds="1 2"
for round in $rounds; do
  rm -f "$o" "$tmp" "$jnl"
  n_kills=$((1 + round % 2)) # odd rounds: killed twice, the second time while resuming
  what=""
  for _ in $(seq $n_kills); do
    delay=$((RANDOM % span))
    start Q4_K_M
    kill_at $delay
    kills=$((kills + 1))
    r=$(records)
    what="$what ${delay}ms:$r"
    [ "$r" != none ] && [ "$r" -gt 0 ] && [ "$r" -lt 76 ] && mid=$((mid + 1))
  done
  finish_run Q4_K_M
  rc=$?
  echo "round $round: killed at (ms:records)$what; then $(grep -o '[0-9]* tensors kept' "$dir/err" || echo 'nothing kept')"
  check "round $round: the resumed run succeeds (rc $rc)" test $rc -eq 0
  check "round $round: byte-identical to the uninterrupted run" cmp -s "$o" "$dir/ref.gguf"
  check "round $round: no temporary, no journal left" nothing_left
done
echo "$kills kills, $mid of them between the first and the last tensor"
# (with the two sanitizer rounds that could miss by chance; the kill after 20 records below is certain)
[ -n "$sanitized" ] || check "some kills landed mid-run ($mid of $kills)" test $mid -gt 0

# a kill mid-run for certain: after 20 tensors are journaled
rm -f "$o"
start Q4_K_M
wait_records 20 $pid
kill_at 0
r=$(records)
check "mid-run kill leaves the temporary and at least 20 records ($r)" test -e "$tmp" -a "$r" != none
finish_run Q4_K_M
check "mid-run kill: a note says what was kept" grep -q "tensors kept (checked)" "$dir/err"
check "mid-run kill: byte-identical" cmp -s "$o" "$dir/ref.gguf"
check "mid-run kill: nothing left" nothing_left

# ---- a journal of another run -----------------------------------------------------------------
rm -f "$o"
start Q4_K_M
wait_records 20 $pid
kill_at 0
finish_run Q5_K_M
check "another preset: the journal is ignored, one line says so" \
  test "$(grep -c 'journal is from another run' "$dir/err")" -eq 1
check "another preset: the other preset's bytes" cmp -s "$o" "$dir/ref5.gguf"
check "another preset: nothing left" nothing_left

rm -f "$o"
start Q4_K_M
wait_records 20 $pid
kill_at 0
touch -d '2001-01-01' "$dir/im.gguf" # same bytes, another modification time: another run
finish_run Q4_K_M
check "a touched imatrix: started over" grep -q "journal is from another run" "$dir/err"
check "a touched imatrix: byte-identical" cmp -s "$o" "$dir/ref.gguf"
check "a touched imatrix: nothing left" nothing_left

# ---- a damaged temporary ----------------------------------------------------------------------
# The tensors' data starts where the padded tensor bytes (qkern info's last column) end, from the end.
read -r data_at first_bytes < <("$qkern" info "$dir/ref.gguf" | awk -v size="$(stat -c %s "$dir/ref.gguf")" '
  /^  tensor / { on = 1; next }
  on && NF == 0 { on = 0 }
  on { b = $NF; if (!n++) first = b; sum += b + (32 - b % 32) % 32 }
  END { print size - sum, first }')
rm -f "$o"
start Q4_K_M
wait_records 5 $pid
kill_at 0
at=$((data_at + first_bytes / 2))
byte=$(od -An -tu1 -j "$at" -N1 "$tmp" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 0x5a)))" | dd of="$tmp" bs=1 seek="$at" conv=notrunc status=none
finish_run Q4_K_M
check "a flipped byte in tensor 0: found, written again" grep -q "0 tensors kept; tensor 0's bytes differ" "$dir/err"
check "a flipped byte: byte-identical" cmp -s "$o" "$dir/ref.gguf"
check "a flipped byte: nothing left" nothing_left

# a torn journal record: the tensor it names is written again
rm -f "$o"
start Q4_K_M
wait_records 10 $pid
kill_at 0
truncate -s $(($(stat -c %s "$jnl") - 7)) "$jnl"
finish_run Q4_K_M
check "a torn record: byte-identical" cmp -s "$o" "$dir/ref.gguf"
check "a torn record: nothing left" nothing_left

# ---- signals, a second writer, and without --resume ----------------------------------------------
rm -f "$o"
start Q4_K_M
wait_records 5 $pid
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM while resumable: exits 143 (got $rc)" test $rc -eq 143
check "SIGTERM while resumable: temporary and journal kept" test -e "$tmp" -a -e "$jnl"
check "SIGTERM while resumable: no output" test ! -e "$o"
start Q4_K_M
wait_records 20 $pid
err=$("$qkern" "${q[@]}" --resume "$o" Q4_K_M 1 2>&1 >/dev/null)
rc2=$?
wait $pid
rc=$?
check "a second resuming writer fails at once (rc $rc2)" test $rc2 -ne 0
check "it says the file is being written" grep -q "already being written" <<<"$err"
check "the first writer completes (rc $rc)" test $rc -eq 0
check "the first writer's output is byte-identical" cmp -s "$o" "$dir/ref.gguf"
check "after both: nothing left" nothing_left

rm -f "$o"
start Q4_K_M
wait_records 20 $pid
kill_at 0
"$qkern" "${q[@]}" "$o" Q4_K_M 1 >/dev/null 2>"$dir/err"
check "without --resume: succeeds" test $? -eq 0
check "without --resume: no note about resuming" test -z "$(grep resume "$dir/err")"
check "without --resume: byte-identical" cmp -s "$o" "$dir/ref.gguf"
check "without --resume: the old temporary and journal are gone" nothing_left

# ---- split output: a temporary and a journal per part --------------------------------------------
"$qkern" "${q[@]}" --quiet --split-max-size 1M "$dir/sref.gguf" Q4_K_M 1 >/dev/null
for round in $([ -z "$sanitized" ] && echo 1 2 || echo 1); do
  "$qkern" "${q[@]}" --quiet --resume --split-max-size 1M "$dir/sp.gguf" Q4_K_M 1 >/dev/null 2>&1 &
  pid=$!
  kill_at $((RANDOM % span))
  parts_left=$(ls "$dir" | grep -c '^sp-.*\.tmp\.qkern\.journal$')
  "$qkern" "${q[@]}" --resume --split-max-size 1M "$dir/sp.gguf" Q4_K_M 1 >/dev/null 2>"$dir/err"
  check "split round $round (journals left: $parts_left): succeeds" test $? -eq 0
  same=1
  for f in "$dir"/sref-*; do cmp -s "$f" "$dir/sp-${f##*/sref-}" || same=0; done
  check "split round $round: every part byte-identical ($(ls "$dir"/sref-* | wc -l) parts)" test $same -eq 1
  check "split round $round: nothing left" nothing_left
  rm -f "$dir"/sp-*
done

finish
