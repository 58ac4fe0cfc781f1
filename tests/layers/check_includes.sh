#!/usr/bin/env bash
# The layers hold (DESIGN.md): cli/ and bench/ include the public headers (include/) and their
# own, never a header of the library's insides (runtime/, kernels/, shaders/) - whatever the
# include path would let through. Prints each offending line; exit 1 if there is one.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
private=$(find runtime kernels shaders -name '*.h' -printf '%f\n' | sort -u)
bad=0
for f in cli/*.[ch] bench/*.[ch] bench/*.cpp; do
  [ -e "$f" ] || continue
  while IFS= read -r line; do
    name=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$line")
    base=${name##*/}
    [ -e "include/$name" ] && continue
    [ -e "$(dirname "$f")/$name" ] && continue
    if [[ "$name" == */* ]] || grep -qx -- "$base" <<<"$private"; then
      echo "$f: $line: a private header (cli/ and bench/ see include/ only)"
      bad=1
    fi
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
done
[ $bad = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $bad
