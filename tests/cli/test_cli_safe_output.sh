#!/usr/bin/env bash
# What `qkern quantize` leaves behind when it cannot finish: nothing. Every signal that ends it
# (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE), sent once the temporary output exists and once at
# a random moment, removes the temporaries (model and report) and ends it by that signal (a
# shell sees 128 + its number); a second writer of the same OUT fails at once and leaves the
# first one's file alone; a full disk (a file size limit, and a small tmpfs where user namespaces
# allow one) fails with one line naming the file; a report that cannot be written stops the run
# before any output exists; the report and the model get the umask's mode.
# Usage: test_cli_safe_output.sh QKERN_BINARY   (QK_TEST_SEED=N repeats the random moments)
set -u
set -m # background jobs get SIGINT and SIGQUIT at their default, as under a terminal
qkern=$1
. "$(dirname "$0")/harness.sh"
seed=${QK_TEST_SEED:-$(date +%s)}
RANDOM=$seed
echo "seed $seed (QK_TEST_SEED=$seed repeats the random moments)"

no_temp() { ! ls "$dir"/*.tmp.* >/dev/null 2>&1; }
one_line() { [ -n "$1" ] && [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ]; }
wait_for() { # wait_for FILE PID: until FILE exists (1) or PID has ended (0), at most 20 s
  for _ in $(seq 2000); do
    [ -e "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

"$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf" >/dev/null
q=(quantize --quiet --imatrix "$dir/im.gguf" "$dir/m.gguf")
"$qkern" "${q[@]}" "$dir/ref.gguf" Q4_K_M 1 >/dev/null
check "reference output" test -s "$dir/ref.gguf"
absent_or_complete() { [ ! -e "$dir/o.gguf" ] || cmp -s "$dir/o.gguf" "$dir/ref.gguf"; }

# ---- signals ---------------------------------------------------------------------------------
signal_case() { # signal_case SIG WHEN: WHEN "temp" (once o.gguf.tmp.qkern exists) or seconds
  local sig=$1 when=$2 num rc
  num=$(kill -l "$sig")
  rm -f "$dir/o.gguf" "$dir/r.json"
  "$qkern" "${q[@]:0:4}" --report "$dir/r.json" "$dir/m.gguf" "$dir/o.gguf" Q4_K_M 1 >/dev/null 2>"$dir/err" &
  local pid=$!
  if [ "$when" = temp ]; then
    wait_for "$dir/o.gguf.tmp.qkern" $pid
    check "$sig: the temporary appeared before the end" test -e "$dir/o.gguf.tmp.qkern"
  else
    sleep "$when"
  fi
  kill -s "$sig" $pid 2>/dev/null
  wait $pid
  rc=$?
  if [ "$when" != temp ] && [ $rc -eq 0 ]; then # the run ended before the signal came
    echo "note: $sig at ${when}s came after the end"
    return
  fi
  check "$sig at $when: exits $((128 + num)) (got $rc)" test $rc -eq $((128 + num))
  check "$sig at $when: no temporary left" no_temp
  check "$sig at $when: OUT absent or complete" absent_or_complete
  check "$sig at $when: no report" test ! -e "$dir/r.json"
}
for sig in INT TERM HUP QUIT PIPE; do
  signal_case $sig temp
  if [ $sig = PIPE ]; then
    # the temp case's stderr: its signal came once the output was open, so after the handler was
    # installed (at a random moment the signal may come before, under a sanitizer's slow start)
    grep -q "stopped by SIGPIPE" "$dir/err"
    check "the handler says which signal" test $? -eq 0
  fi
  signal_case $sig "0.$((RANDOM % 6))$((RANDOM % 10))"
done

# a split output: every part's temporary goes
"$qkern" "${q[@]}" --split-max-size 1M "$dir/sp.gguf" Q4_K_M 1 >/dev/null 2>&1 &
pid=$!
wait_for "$dir/sp-00002-of-00006.gguf.tmp.qkern" $pid
check "split: six temporaries ($(ls "$dir" | grep -c '^sp-'))" test "$(ls "$dir" | grep -c '^sp-.*\.tmp\.qkern$')" -eq 6
kill -TERM $pid
wait $pid
rc=$?
check "split, SIGTERM: exits 143 (got $rc)" test $rc -eq 143
check "split, SIGTERM: no part, no temporary" test -z "$(ls "$dir" | grep '^sp')"

# a real SIGPIPE: stderr is a pipe whose reader has gone
rm -f "$dir/o.gguf"
"$qkern" quantize --imatrix "$dir/im.gguf" "$dir/m.gguf" "$dir/o.gguf" Q4_K_M 1 2>&1 >/dev/null | true
rc=${PIPESTATUS[0]}
check "closed stderr: exits 141 (got $rc)" test $rc -eq 141
check "closed stderr: no output" test ! -e "$dir/o.gguf"
check "closed stderr: no temporary" no_temp

# nohup: a SIGHUP ignored at the start stays ignored, and the run completes
rm -f "$dir/o.gguf"
(trap '' HUP && exec "$qkern" "${q[@]}" "$dir/o.gguf" Q4_K_M 1 >/dev/null) &
pid=$!
wait_for "$dir/o.gguf.tmp.qkern" $pid
kill -HUP $pid
wait $pid
rc=$?
check "ignored SIGHUP: completes (got $rc)" test $rc -eq 0
check "ignored SIGHUP: the output is complete" cmp -s "$dir/o.gguf" "$dir/ref.gguf"

# SIGKILL cannot be caught: its temporary is taken over by the next run, which leaves none
rm -f "$dir/o.gguf"
"$qkern" "${q[@]}" "$dir/o.gguf" Q4_K_M 1 >/dev/null &
pid=$!
wait_for "$dir/o.gguf.tmp.qkern" $pid
kill -KILL $pid
wait $pid
check "SIGKILL leaves its temporary" test -e "$dir/o.gguf.tmp.qkern"
"$qkern" "${q[@]}" "$dir/o.gguf" Q4_K_M 1 >/dev/null
check "the next run succeeds" test $? -eq 0
check "the next run leaves no temporary" no_temp
check "the next run's output is complete" cmp -s "$dir/o.gguf" "$dir/ref.gguf"

# ---- two writers of the same OUT ----------------------------------------------------------------
rm -f "$dir/o.gguf"
"$qkern" "${q[@]}" "$dir/o.gguf" Q4_K_M 1 >/dev/null &
pid=$!
wait_for "$dir/o.gguf.tmp.qkern" $pid
t0=$(date +%s%N)
err=$("$qkern" "${q[@]}" "$dir/o.gguf" Q8_0 1 2>&1 >/dev/null)
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
first_running=$(kill -0 $pid 2>/dev/null && echo yes)
check "second writer: the first was still writing" test "$first_running" = yes
check "second writer: exits 1 (got $rc)" test $rc -eq 1
check "second writer: one line" one_line "$err"
check "second writer: says why" grep -q "o.gguf: already being written by another process" <<<"$err"
check "second writer: fails at once (${ms} ms)" test $ms -lt 5000
check "second writer: the first's temporary is still there" test -e "$dir/o.gguf.tmp.qkern"
wait $pid
check "first writer: succeeds" test $? -eq 0
check "first writer: its output, complete" cmp -s "$dir/o.gguf" "$dir/ref.gguf"
check "two writers: no temporary left" no_temp

# ---- a full disk --------------------------------------------------------------------------------
full_case() { # full_case WHAT OUT_DIR SAYS [ulimit -f KiB]
  local what=$1 out=$2/full.gguf says=$3 err rc
  err=$(
    [ -n "${4:-}" ] && ulimit -f "$4"
    "$qkern" quantize --quiet "$dir/m.gguf" "$out" Q8_0 1 2>&1 >/dev/null
  )
  rc=$?
  check "$what: exits 1, not killed by SIGXFSZ (got $rc)" test $rc -eq 1
  check "$what: one line" one_line "$err"
  check "$what: names the file and the cause" grep -q "full.gguf.*$says" <<<"$err"
  check "$what: nothing left" test -z "$(ls -A "$2" | grep full.gguf)"
}
full_case "file size limit" "$dir" "File too large" 4096
# a 4 MiB tmpfs in a private mount namespace, where unprivileged user namespaces are allowed
mkdir "$dir/mnt"
if unshare -rm mount -t tmpfs -o size=4m none "$dir/mnt" 2>/dev/null; then
  export -f full_case check one_line
  export qkern dir pass fail
  out=$(unshare -rm bash -c 'mount -t tmpfs -o size=4m none "$dir/mnt" &&
    full_case "full tmpfs" "$dir/mnt" "No space left on device"; echo "$pass $fail"')
  printf '%s\n' "$out" | sed '$d'
  read -r pass fail <<<"$(printf '%s\n' "$out" | tail -1)"
else
  echo "note: no user namespaces here: the tmpfs case is skipped (the file size limit stands in)"
fi

# ---- a report that cannot be written stops the run before any output exists ----------------------
err=$("$qkern" "${q[@]:0:4}" --report "$dir/no/such/dir/r.json" "$dir/m.gguf" "$dir/rep.gguf" Q4_0 1 2>&1 >/dev/null)
rc=$?
check "unwritable report: exits 1 (got $rc)" test $rc -eq 1
check "unwritable report: one line naming it" grep -q "^qkern: --report $dir/no/such/dir/r.json: No such file" <<<"$err"
check "unwritable report: one line" one_line "$err"
check "unwritable report: no model" test ! -e "$dir/rep.gguf"
# a run that fails after the report's file was made leaves neither
"$qkern" "${q[@]:0:4}" --report "$dir/r2.json" "$dir/m.gguf" "$dir/m.gguf" Q4_0 1 >/dev/null 2>&1
check "failed run: no report, no temporary" test ! -e "$dir/r2.json" -a -z "$(ls "$dir" | grep 'r2\.json')"

# ---- permissions: the umask's, for the model and the report -------------------------------------
for mask in 027 002; do
  rm -f "$dir/o.gguf" "$dir/r.json"
  (umask $mask && "$qkern" "${q[@]:0:4}" --report "$dir/r.json" "$dir/m.gguf" "$dir/o.gguf" Q4_0 1 >/dev/null)
  want=$(printf '%o' $((0666 & ~0$mask)))
  check "umask $mask: report mode $want (got $(stat -c %a "$dir/r.json"))" test "$(stat -c %a "$dir/r.json")" = "$want"
  check "umask $mask: model mode $want (got $(stat -c %a "$dir/o.gguf"))" test "$(stat -c %a "$dir/o.gguf")" = "$want"
done

finish
