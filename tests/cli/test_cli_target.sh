#!/usr/bin/env bash
# qkern quantize --target-bpw / --target-size on a generated model: the output's bpw meets the
# target, the chosen mixture beats the preset's at the preset's own size (measured on the written
# files, not predicted), the state file skips the measuring and refuses what is not its own, a
# target out of reach names the range, and the output bytes do not vary between runs.
# Usage: test_cli_target.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"
bpw_of() { # tensor data bpw of a GGUF file, from `qkern info`'s total line
  "$qkern" info "$1" | awk '$1 == "total" { print $NF }'
}
within() { # within BPW TARGET: at most TARGET and within 0.05 of it
  python3 -c "import sys; b, t = float('$1'), float('$2'); sys.exit(0 if t - 0.05 <= b <= t else 1)" ||
    { echo "bpw $1 for target $2"; return 1; }
}

check "generate" "$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf" >/dev/null

# with the imatrix every candidate is open (the I-quants that need it too): 2.5 is in reach
err=$("$qkern" quantize --dry-run --imatrix "$dir/im.gguf" --state-file "$dir/st.bin" --target-bpw 4.5 \
  "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M 2>&1 >"$dir/plan.txt")
check "first run measures the matrix" grep -q "error matrix measured" <<<"$err"
check "first run writes the state file" test -s "$dir/st.bin"
check "dry run writes nothing" test ! -e "$dir/dry.gguf"
check "dry run prints the chosen types, errors and sensitivities" \
  grep -q "ffn_down_exps.*-> [A-Z0-9_]* *[0-9]* *[0-9.e+-]*  *1  default" "$dir/plan.txt"
check "dry run predicts the bpw" grep -q "^target: chosen mixture .* 4\.[45][0-9]* bpw" "$dir/plan.txt"
for t in 2.5 3.5 4.5 6.0; do
  err=$("$qkern" quantize --imatrix "$dir/im.gguf" --state-file "$dir/st.bin" --target-bpw $t \
    "$dir/m.gguf" "$dir/t$t.gguf" Q4_K_M 2>&1 >/dev/null)
  check "target $t reads the state file" grep -q "error matrix read from" <<<"$err"
  b=$(bpw_of "$dir/t$t.gguf")
  echo "target $t bpw: output $b"
  check "target $t: output bpw $b at most the target and within 0.05" within "$b" $t
done
check "deterministic output" "$qkern" quantize --quiet --imatrix "$dir/im.gguf" --state-file "$dir/st.bin" \
  --target-bpw 4.5 "$dir/m.gguf" "$dir/t4.5b.gguf" Q4_K_M
check "same bytes twice" cmp -s "$dir/t4.5.gguf" "$dir/t4.5b.gguf"
size=$("$qkern" quantize --quiet --dry-run --imatrix "$dir/im.gguf" --state-file "$dir/st.bin" --target-size 3M \
  "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M | awk '/^target: chosen mixture/ { print $4 }')
check "--target-size 3M: at most 3 MiB of tensor data ($size)" test "${size:-99999999}" -le 3145728 -a "${size:-0}" -gt 3000000

# the state file is refused for another imatrix (none here), and when it is not one at all
out=$("$qkern" quantize --dry-run --state-file "$dir/st.bin" --target-bpw 4.5 "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M 2>&1)
check "foreign state file refused (exit 1)" test $? -eq 1
check "foreign state file: clear message" grep -q "state file .* was made for other" <<<"$out"
head -c 100 "$dir/m.gguf" >"$dir/junk.bin"
out=$("$qkern" quantize --dry-run --state-file "$dir/junk.bin" --target-bpw 4.5 "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M 2>&1)
check "junk state file refused" grep -q "is not a qkern target state file" <<<"$out"
head -c 300 "$dir/st.bin" >"$dir/cut.bin"
out=$("$qkern" quantize --dry-run --imatrix "$dir/im.gguf" --state-file "$dir/cut.bin" --target-bpw 4.5 "$dir/m.gguf" \
  "$dir/dry.gguf" Q4_K_M 2>&1)
check "state file cut short refused" grep -q "is damaged or cut short" <<<"$out"

# A state file of an older error matrix (written by that version with --device cpu for this
# model, imatrix and command) is refused as another run's, with a clear message, and left as it was.
refuses_old_state() { # NAME FILE
  cp "$2" "$dir/old.bin"
  out=$("$qkern" quantize --dry-run --device cpu --imatrix "$dir/im.gguf" --state-file "$dir/old.bin" --target-bpw 4.5 \
    "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M 2>&1)
  check "state file of $1 refused (exit 1)" test $? -eq 1
  check "state file of $1: clear message" grep -q "state file .* was made for other" <<<"$out"
  check "state file of $1 left as it was" cmp -s "$2" "$dir/old.bin"
}
# "target matrix 1": before the bias term
refuses_old_state "target matrix 1" "$(dirname "$0")/../data/target_state/v1_tiny_seed7_q4km.bin"
# "target matrix 2": sensitivity 1, written by qkern f294772; this version's errors are matrix 2's
# times each tensor's sensitivity, as the report gives it (printed with 17 digits, so the product
# is exact): the measuring itself did not change
v2="$(dirname "$0")/../data/target_state/v2_tiny_seed7_q4km.bin"
refuses_old_state "target matrix 2" "$v2"
check "this version's state file" "$qkern" quantize --dry-run --device cpu --imatrix "$dir/im.gguf" \
  --state-file "$dir/v3.bin" --report "$dir/v3.json" --target-bpw 4.5 "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M \
  >"$dir/plan_v3.txt" 2>/dev/null
check "dry run prints the sens column" grep -q "error *sens  why" "$dir/plan_v3.txt"
check "dry run: token_embd's sens is 1 / rows (1024)" grep -q "^token_embd.weight .* 0.0009766  default" \
  "$dir/plan_v3.txt"
sens_out=$(python3 - "$v2" "$dir/v3.bin" "$dir/v3.json" <<'EOF2'
import json, struct, sys
def rows(path):  # layout 1 (v2's file): no row keys; layout 2 (this version's): a u64 key a row
    b = open(path, "rb").read()
    layout = {b"QKTGTEM1": 1, b"QKTGTEM2": 2}[b[:8]]
    key, count = struct.unpack_from("<QQ", b, 8)
    at, out = 24, []
    for _ in range(count):
        at += 8 if layout == 2 else 0
        (k,) = struct.unpack_from("<I", b, at)
        at += 4
        opts = []
        for _ in range(k & 0x7FFFFFFF):
            opts.append(struct.unpack_from("<iQd", b, at))
            at += 20
        out.append((bool(k & 0x80000000), opts))
    assert at + 8 == len(b), path
    return key, out
k2, r2 = rows(sys.argv[1])
k3, r3 = rows(sys.argv[2])
tensors = json.load(open(sys.argv[3]))["tensors"]
bad, scaled, kinds = [], 0, set()
if k2 == k3: bad.append("same key")
if len(r2) != len(r3) or len(r3) != len(tensors): bad.append("row counts differ")
for (p2, o2), (p3, o3), t in zip(r2, r3, tensors):
    if p2 != p3 or [o[:2] for o in o2] != [o[:2] for o in o3]: bad.append(t["name"] + ": options differ")
    if p3: continue
    s = t["sens"]
    if s is None or not s > 0: bad.append(f"{t['name']}: sens {s}")
    elif any(e3 != e2 * s for (_, _, e2), (_, _, e3) in zip(o2, o3)): bad.append(f"{t['name']}: errors not x {s}")
    elif s != 1:
        scaled += 1
        kinds.add(t["name"].split(".")[-2] if t["name"].startswith("blk.") else t["name"])
for t in tensors:  # attn_q and attn_k keep 1 (target_sensitivity.h)
    if t["name"].split(".")[-2:-1] in (["attn_q"], ["attn_k"]) and t["sens"] not in (None, 1): bad.append(t["name"] + ": sens not 1")
print(f"{scaled} tensors' errors scaled by their sensitivity ({', '.join(sorted(kinds))}); {len(bad)} problems: {bad[:3]}")
want = {"ffn_up_exps", "ffn_gate_exps", "ffn_up_shexp", "ffn_gate_shexp", "attn_v", "token_embd.weight"}
sys.exit(0 if not bad and want <= kinds else 1)
EOF2
)
check "this version's errors are matrix 2's times the reported sensitivity" test $? -eq 0
echo "$sens_out"

# misuse exits 1 with one line and runs nothing
misuse() { # misuse "what" ARGS...: exit 1, a message naming the option
  local what=$1; shift
  "$qkern" quantize "$@" "$dir/m.gguf" "$dir/bad.gguf" Q4_K_M >/dev/null 2>"$dir/err"
  check "$what exits 1" test $? -eq 1
  check "$what says why" grep -q -- "--target\|--state" "$dir/err"
  check "$what writes nothing" test ! -e "$dir/bad.gguf"
}
misuse "--target-bpw x" --target-bpw x
misuse "--target-bpw with --target-size" --target-bpw 4 --target-size 4M
misuse "--state-file without a target" --state-file "$dir/s.bin"
misuse "--target-types with a float type" --target-bpw 4 --target-types Q4_K,F16
misuse "--target-types unknown type" --target-bpw 4 --target-types Q4_K,Q9_K

# without an imatrix the I-quants that need one are out: 2.5 bpw is out of reach
out=$("$qkern" quantize --dry-run --state-file "$dir/st0.bin" --target-bpw 2.5 "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M 2>&1)
check "unreachable target exits 1" test $? -eq 1
check "unreachable target names the range in bpw" grep -q "outside the reachable range [0-9.]* to [0-9.]* bpw" <<<"$out"

# At Q4_K_M's size the mixture's error is lower than Q4_K_M's, summed from both written files'
# --report (sens x weighted_rmse^2 x weights: without an imatrix every weight is 1, the same
# measure the matrix uses; sens per tensor from the mixture's report, 1 where it has none: the
# pinned tensors, copied alike in both), and the written error is the predicted one.
# generate --means: the same model, an imatrix with <name>.in_sum, whose bias term moves the errors
check "generate --means" "$qkern" generate --size tiny --seed 7 --imatrix "$dir/im_means.gguf" --means "$dir/m2.gguf" >/dev/null
check "generate --means: the same model bytes" cmp -s "$dir/m.gguf" "$dir/m2.gguf"
check "generate --means without --imatrix refused" test "$("$qkern" generate --means "$dir/m3.gguf" >/dev/null 2>&1; echo $?)" = 2
mixture_error() { awk '/^target: chosen mixture/ { sub(/;/, "", $11); print $11 }' "$1"; }
"$qkern" quantize --dry-run --imatrix "$dir/im_means.gguf" --target-bpw 4.5 "$dir/m.gguf" "$dir/d.gguf" Q4_K_M \
  >"$dir/plan_means.txt" 2>/dev/null
"$qkern" quantize --dry-run --imatrix "$dir/im.gguf" --target-bpw 4.5 "$dir/m.gguf" "$dir/d.gguf" Q4_K_M \
  >"$dir/plan_plain.txt" 2>/dev/null
em=$(mixture_error "$dir/plan_means.txt") ep=$(mixture_error "$dir/plan_plain.txt")
echo "target 4.5 total error: with means $em, without $ep"
check "the means change the target's error ($em against $ep)" test -n "$em" -a -n "$ep" -a "$em" != "$ep"

check "Q4_K_M" "$qkern" quantize --quiet --report "$dir/p.json" "$dir/m.gguf" "$dir/p.gguf" Q4_K_M
pb=$(bpw_of "$dir/p.gguf")
xout=$("$qkern" quantize --quiet --report "$dir/x.json" --state-file "$dir/st0.bin" --target-bpw "$pb" \
  "$dir/m.gguf" "$dir/x.gguf" Q4_K_M)
check "mixture at Q4_K_M's bpw ($pb)" test $? -eq 0
predicted=$(awk '/^target: chosen mixture/ { sub(/;/, "", $11); print $11 }' <<<"$xout")
cmp_out=$(python3 - "$dir/p.json" "$dir/x.json" "${predicted:-nan}" <<'EOF'
import json, math, sys
sens = {t["name"]: t["sens"] or 1.0 for t in json.load(open(sys.argv[2]))["tensors"]}
def sse(path):
    r = json.load(open(path))
    return r["bpw"], sum(sens[t["name"]] * t["weighted_rmse"] ** 2 * math.prod(t["shape"]) for t in r["tensors"]
                         if t["weighted_rmse"] is not None)
(pb, pe), (xb, xe) = sse(sys.argv[1]), sse(sys.argv[2])
predicted = float(sys.argv[3])
print(f"Q4_K_M: {pb:.4f} bpw, error {pe:.6g}; mixture: {xb:.4f} bpw, error {xe:.6g} ({100 * (1 - xe / pe):.1f}% lower;"
      f" predicted {predicted:.6g})")
sys.exit(0 if xb <= pb and xe < pe and abs(xe - predicted) <= 1e-4 * xe else 1)
EOF
)
check "the mixture's error is lower than Q4_K_M's at its bpw, and the one predicted" test $? -eq 0
echo "$cmp_out"
finish
