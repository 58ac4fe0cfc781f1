# Sourced by the command-line tests: a scratch folder removed on exit, named checks, and the
# "N passed, N failed" line every qkern test ends with (call finish last).
dir=$(mktemp -d /tmp/qk_cli_XXXXXX)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
check() { # check "what" command...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi
}
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
# Non-empty in a sanitizer build's run (scripts/test.sh sets ASAN_OPTIONS or TSAN_OPTIONS there),
# where a run takes 5-10x as long and the sanitizer's own memory counts in the RSS.
sanitized=${ASAN_OPTIONS:-}${TSAN_OPTIONS:-}
