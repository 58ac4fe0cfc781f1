#!/usr/bin/env bash
# qkern quantize --stats: the table of where the wall time went is printed (on stderr, and only
# when asked), its stages' shares add up to the wall time, its byte counts are the files' tensor
# data, and --report carries the same numbers as a "stats" object.
# Usage: test_cli_stats.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"

# tensor data bytes of a GGUF file: the "total" line of qkern info (tensors, weights, bytes, bpw)
data_bytes() { "$qkern" info "$1" | awk '$1 == "total" { print $4 }'; }

# Checks a --stats table (file $1): every stage once, seconds >= 0, shares summing to 100% (the
# "other" row is the wall time no stage took: a stage counted twice would push the sum above),
# and the bytes of read, quantize, measure and write as given ($2..$5; "-" not checked).
check_table() {
  python3 - "$@" <<'EOF'
import re, sys
path, want = sys.argv[1], dict(zip(["read", "quantize", "measure", "write"], sys.argv[2:6]))
rows = {}
for line in open(path):
    m = re.match(r"^(\w+)\b.*?\s(-?\d+\.\d+)\s+(-?\d+\.\d)%(?:\s+(\S+)\s+(\d+))?\s*$", line)
    if m:
        rows.setdefault(m.group(1), []).append((float(m.group(2)), float(m.group(3)), m.group(5)))
stages = ["read", "convert", "quantize", "measure", "write", "other", "total"]
assert all(len(rows.get(s, [])) == 1 for s in stages), f"stages {sorted(rows)}, want each of {stages} once"
assert all(rows[s][0][0] >= 0 for s in stages), rows
share = sum(rows[s][0][1] for s in stages[:-1])
assert 99.4 <= share <= 100.6, f"shares add up to {share}%"
assert abs(sum(rows[s][0][0] for s in stages[:-1]) - rows["total"][0][0]) < 1e-3, rows
for s, b in want.items():
    assert b == "-" or rows[s][0][2] == b, f"{s}: {rows[s][0][2]} bytes, want {b}"
EOF
}

check "generate" "$qkern" generate --size tiny --seed 11 --imatrix "$dir/im.gguf" "$dir/m.gguf"
in_bytes=$(data_bytes "$dir/m.gguf")

# f32/bf16 in, Q4_K_M out, errors measured: read is every input byte, write every output byte
check "quantize --stats --report" sh -c "'$qkern' quantize --quiet --stats --imatrix '$dir/im.gguf' \
  --report '$dir/r.json' '$dir/m.gguf' '$dir/q.gguf' Q4_K_M 2 >'$dir/out.txt' 2>'$dir/err.txt'"
out_bytes=$(data_bytes "$dir/q.gguf")
check "the table is on stderr, not stdout" sh -c "grep -q '^stage ' '$dir/err.txt' && ! grep -q '^stage ' '$dir/out.txt'"
check "quantize on the cpu is named so" grep -q '^quantize  ' "$dir/err.txt"
check "table: stages, shares, bytes" check_table "$dir/err.txt" "$in_bytes" - - "$out_bytes"
check "input and output GB/s" grep -Eq '^input [0-9.]+ GB/s, output [0-9.]+ GB/s' "$dir/err.txt"
check "report's stats agree with the files and the table" python3 - "$dir/r.json" "$dir/err.txt" "$in_bytes" \
  "$out_bytes" "$(stat -c %s "$dir/q.gguf")" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
table = open(sys.argv[2]).read()
in_bytes, out_bytes, file_bytes = map(int, sys.argv[3:6])
s = r["stats"]
st = {x["stage"]: x for x in s["stages"]}
assert list(st) == ["read", "convert", "quantize", "measure", "write", "other"], list(st)
assert st["read"]["bytes"] == in_bytes == r["in_bytes"], (st["read"], in_bytes)
assert st["write"]["bytes"] == out_bytes == r["out_bytes"] and out_bytes < file_bytes, (st["write"], out_bytes)
assert st["convert"]["bytes"] == 0, st["convert"]   # f32/bf16 go to the quantize call as they are
# every converted tensor's source is quantized and measured once; copied ones are not
assert 0 < st["quantize"]["bytes"] == st["measure"]["bytes"] < in_bytes, st
assert s["quantize_includes_transfers"] is False
assert abs(sum(x["seconds"] for x in s["stages"]) - s["wall_seconds"]) < 1e-5, s
assert abs(s["wall_seconds"] - r["seconds"]) < 1e-5, (s, r["seconds"])
for name, x in st.items():
    assert x["seconds"] >= 0, x
    m = re.search(r"^%s\b.*?\s(\d+\.\d+)\s" % name, table, re.M)
    assert m and abs(float(m.group(1)) - x["seconds"]) < 1e-3, (name, x, m and m.group(0))
EOF

# requantizing: the dequantize on the host is the convert stage, and quantize reads its f32
check "requantize --stats" sh -c "'$qkern' quantize --quiet --stats --allow-requantize '$dir/q.gguf' \
  '$dir/q8.gguf' Q8_0 >/dev/null 2>'$dir/err2.txt'"
check "requantize table" check_table "$dir/err2.txt" "$out_bytes" - 0 "$(data_bytes "$dir/q8.gguf")"
check "requantize converts on the host" python3 -c "
import re; t = open('$dir/err2.txt').read()
conv = re.search(r'^convert\b.*?\s(\d+\.\d+)\s.*\s(\d+)$', t, re.M)
assert conv and int(conv.group(2)) > 0, t"

# without --stats: no table
check "no --stats, no table" sh -c "'$qkern' quantize --quiet '$dir/m.gguf' '$dir/q2.gguf' Q4_K_M 2>&1 | \
  (! grep -q '^stage ')"
finish
