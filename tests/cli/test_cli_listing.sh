#!/usr/bin/env bash
# The listings: `qkern types` is a table whose columns line up on every row; `qkern devices`
# lists GPUs first, then the cpu, then software devices (lavapipe) marked as such, columns lined
# up; `qkern --version` and `qkern version` print the version, the commit built from and the
# backends built in; extra arguments exit 2 with one line.
# Usage: test_cli_listing.sh QKERN_BINARY [BACKENDS]   (BACKENDS: "CPU, Vulkan" as built; lavapipe
# is used where it is installed)
set -u
qkern=$1 backends=${2:-}
. "$(dirname "$0")/harness.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)
lvp=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
[ -e "$lvp" ] && export VK_DRIVER_FILES=$lvp VK_ICD_FILENAMES=$lvp
one_line() { [ -n "$1" ] && [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ]; }
bars() { sed 's/[^|]/ /g' <<<"$1"; } # a row reduced to where its column bars are
same_shape() { # every line of $1 has the bars, and the length, of its first
  local first=${1%%$'\n'*} line
  while IFS= read -r line; do
    [ "$(bars "$line")" = "$(bars "$first")" ] && [ ${#line} -eq ${#first} ] || {
      echo "misaligned: '$line'"
      return 1
    }
  done <<<"$1"
}

# ---- types ------------------------------------------------------------------------------------
types=$("$qkern" types)
check "types: exits 0" test $? -eq 0
check "types: every row's columns line up" same_shape "$types"
check "types: a markdown table" grep -q '^|------' <<<"$types"
for t in F32 Q4_K IQ2_XXS IQ4_NL MXFP4 TQ1_0; do
  check "types: lists $t" grep -q "^| $t " <<<"$types"
done
err=$("$qkern" types extra 2>&1 >/dev/null)
check "types extra: exits 2" test $? -eq 2
check "types extra: one line" one_line "$err"

# ---- devices ----------------------------------------------------------------------------------
devices=$("$qkern" devices)
check "devices: exits 0" test $? -eq 0
table=$(grep -v '^software:' <<<"$devices")
check "devices: every row's columns line up" same_shape "$table"
check "devices: a header" grep -q '^device  *kind  *name  *memory  *units$' <<<"$table"
check "devices: the cpu is listed" grep -q '^cpu  *CPU ' <<<"$table"
ranks=$(tail -n +2 <<<"$table" | awk '{print ($2 == "GPU") ? 0 : ($2 == "CPU") ? 1 : ($2 == "software") ? 2 : 9}')
check "devices: GPUs, then the cpu, then software ($(tr '\n' ' ' <<<"$ranks"))" test "$ranks" = "$(sort -n <<<"$ranks")"
check "devices: every kind known" test -z "$(grep 9 <<<"$ranks")"
if grep -qi 'llvmpipe\|lavapipe' <<<"$table"; then
  check "devices: lavapipe is software" grep -qiE '^vulkan:[0-9]+  *software  *(llvmpipe|lavapipe)' <<<"$table"
  check "devices: software is explained" grep -q '^software: ' <<<"$devices"
else
  echo "note: no lavapipe device in this build or on this host"
fi
err=$("$qkern" devices extra 2>&1 >/dev/null)
check "devices extra: exits 2" test $? -eq 2
check "devices extra: one line" one_line "$err"

# ---- version ----------------------------------------------------------------------------------
v=$("$qkern" --version)
check "--version: exits 0" test $? -eq 0
check "version = --version" test "$("$qkern" version)" = "$v"
want=$(sed -nE 's/^#define QK_VERSION_(MAJOR|MINOR|PATCH) +([0-9]+).*/\2/p' "$src/include/qkern.h" | paste -sd.)
check "version: 'qkern $want' first" test "$(sed -n 1p <<<"$v")" = "qkern $want"
commit=$(sed -n 's/^commit: //p' <<<"$v")
check "version: a commit ('$commit')" grep -qE '^([0-9a-f]{12}(-dirty)?|unknown)$' <<<"$commit"
if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1 && [ -n "$commit" ] && [ "$commit" != unknown ]; then
  # built from this work tree: its commit is in the history (HEAD may have moved on since)
  check "version: the commit is in this tree's history" git -C "$src" merge-base --is-ancestor "${commit%-dirty}" HEAD
fi
check "version: backends, the cpu first" grep -qE '^backends: CPU(, CUDA)?(, Vulkan)?$' <<<"$(sed -n 3p <<<"$v")"
[ -n "$backends" ] && check "version: backends '$backends', as built" test "$(sed -n 3p <<<"$v")" = "backends: $backends"
err=$("$qkern" version extra 2>&1 >/dev/null)
check "version extra: exits 2" test $? -eq 2
check "version extra: one line" one_line "$err"

finish
