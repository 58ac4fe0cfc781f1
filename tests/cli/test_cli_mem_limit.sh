#!/usr/bin/env bash
# qkern quantize --mem-limit: the run's peak resident memory (GNU time's maximum RSS) stays
# within the limit and below an unlimited run's, the output is the same bytes, and a limit too
# small for the model's widest row is refused with the least that fits, leaving nothing.
# Usage: test_cli_mem_limit.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"
if ! /usr/bin/time -f %M true >/dev/null 2>&1; then
  echo "SKIPPED: GNU time (/usr/bin/time) is not installed"
  exit 77
fi

# A sanitizer's shadow memory and quarantine count in the RSS: under one ($sanitized, harness.sh)
# only the bytes and the refusals are checked.
[ -z "$sanitized" ] || echo "peak RSS checks skipped: a sanitizer's own memory counts in it"
rss_check() { [ -n "$sanitized" ] || check "$@"; }

# peak RSS in KiB of: qkern quantize --quiet --device cpu ARGS... (the last line time writes)
rss() { /usr/bin/time -f %M "$qkern" quantize --quiet --device cpu "$@" 2>&1 >/dev/null | tail -n 1; }

check "generate" "$qkern" generate --size small --seed 5 "$dir/m.gguf"
free_kib=$(rss "$dir/m.gguf" "$dir/free.gguf" Q4_K_M 2)
check "unlimited run" test -s "$dir/free.gguf"
for mib in 29 40; do
  got=$(rss --mem-limit ${mib}M "$dir/m.gguf" "$dir/lim$mib.gguf" Q4_K_M 2)
  echo "--mem-limit ${mib}M: peak RSS $got KiB (unlimited: $free_kib KiB)"
  rss_check "--mem-limit ${mib}M: within the limit" test "$got" -le $((mib * 1024))
  check "--mem-limit ${mib}M: the same bytes" cmp -s "$dir/free.gguf" "$dir/lim$mib.gguf"
done
# the limit does the work: the unlimited run's 64 MiB steps take more
got=$(rss --mem-limit 29M "$dir/m.gguf" "$dir/lim.gguf" Q4_K_M 2)
rss_check "--mem-limit 29M: below the unlimited run ($got < $free_kib KiB)" test "$got" -lt "$free_kib"

msg=$("$qkern" quantize --quiet --device cpu --mem-limit 8M "$dir/m.gguf" "$dir/small.gguf" Q4_K_M 2>&1)
check "a limit too small fails" test $? -ne 0
check "... saying so, with the least that fits" grep -q "too small.*at least" <<<"$msg"
check "... and writes nothing" test ! -e "$dir/small.gguf" -a ! -e "$dir/small.gguf.tmp.qkern"
check "a bad size is a usage error" sh -c "! '$qkern' quantize --mem-limit 12X '$dir/m.gguf' '$dir/x.gguf' Q8_0 2>/dev/null"
finish
