#!/usr/bin/env bash
# qkern quantize --target-bpw ... --plot (issue 17 item 4) on a generated model, read back by parsers
# of their own (xml.etree for the SVG, json for the report): the curve has one polyline point per
# reported point, falls as the bpw grows, the chosen mixture is not below it, and no preset made
# only of candidate types beats it at its own size (the allocation is optimal over the candidates,
# up to the gap of its convex-hull relaxation: TOL below). Presets that cannot be priced exactly
# are named, not invented; misuse and an unwritable plot leave nothing behind.
# Usage: test_cli_plot.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"

check "generate" "$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf" >/dev/null
# the presets' own sizes, from plans alone (no measuring): the plot must price them the same
for p in Q3_K_S Q4_K_M Q6_K IQ4_XS; do
  "$qkern" quantize --quiet --dry-run --imatrix "$dir/im.gguf" --report "$dir/plan_$p.json" \
    "$dir/m.gguf" "$dir/x.gguf" $p >/dev/null
done

# The plot is an inspection output: written with --dry-run too, as --report is
err=$("$qkern" quantize --dry-run --imatrix "$dir/im.gguf" --target-bpw 4.5 --plot "$dir/curve.svg" \
  --report "$dir/r.json" "$dir/m.gguf" "$dir/out.gguf" Q4_K_M 2>&1 >"$dir/stdout.txt")
check "plot run exits 0" test $? -eq 0
check "dry run writes no model" test ! -e "$dir/out.gguf"
check "the plot is written" test -s "$dir/curve.svg"
check "no temporary left" test -z "$(ls "$dir" | grep '\.tmp\.')"
check "stdout names the plot" grep -q "^plot: [0-9]* points of the curve, [0-9]* presets -> .*curve.svg" "$dir/stdout.txt"
grep "size target curve" <<<"$err"

check "curve, presets and chosen point agree" python3 - "$dir" <<'EOF'
import json, math, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
# The allocation is Lagrangian (exact on the convex hull) plus a greedy fill; a mixture the
# allocator could have chosen may beat it by at most the part of one hull step it could not take.
# On this model that is far below 0.5% of the total, so a preset lower than the curve by more
# than TOL means the allocator (or its bookkeeping) is wrong.
TOL = 0.005
r = json.load(open(f"{d}/r.json"))
w, tgt, pareto, presets = r["weights"], r["target"], r["pareto"], r["presets"]
left = r["presets_left_out"]
ok = True
def fail(msg):
    global ok
    ok = False
    print("FAIL:", msg)

# every quantized preset is placed or named, and no float preset or alias is
names = [p["name"] for p in presets] + [p["name"] for p in left]
for want in ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
             "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ3_S", "IQ4_XS", "Q4_0", "MXFP4_MOE"]:
    if names.count(want) != 1: fail(f"preset {want} appears {names.count(want)} times")
for never in ["F16", "BF16", "F32", "COPY", "Q4_K", "Q3_K", "Q5_K"]:
    if never in names: fail(f"{never} is no quantized mixture of its own")
# with the imatrix every preset can be priced exactly here
if left: fail(f"presets left out with an imatrix: {left}")

# the curve: enough points, bpw from bytes, bpw up and error down
if len(pareto) < 40: fail(f"only {len(pareto)} curve points")
for a in pareto:
    if abs(a["bpw"] - 8 * a["bytes"] / w) > 1e-5: fail(f"bpw {a['bpw']} is not 8 * {a['bytes']} / {w}")
for a, b in zip(pareto, pareto[1:]):
    if not (b["bytes"] > a["bytes"] and b["error"] < a["error"]): fail(f"not a falling curve: {a} then {b}")
if not (tgt["min_bytes"] <= pareto[0]["bytes"] and pareto[-1]["bytes"] <= tgt["max_bytes"]):
    fail("curve outside the reachable range")

def curve_at(nbytes):  # the least error the curve reaches with at most nbytes
    errs = [p["error"] for p in pareto if p["bytes"] <= nbytes]
    return min(errs) if errs else None

# the chosen mixture: within its budget, on or above the curve (the curve is the same allocator's)
if tgt["bytes"] > tgt["budget"]: fail("the chosen mixture exceeds its budget")
env = curve_at(tgt["bytes"])
if env is None or tgt["error"] < env * (1 - 1e-9): fail(f"chosen point {tgt} below the curve ({env})")
if abs(tgt["bpw"] - r["bpw"]) > 1e-6: fail("target bpw differs from the report's bpw")
print(f"chosen: {tgt['bpw']:.4f} bpw, error {tgt['error']:.6g}; curve at its size {env:.6g}")

# the presets: priced from the same matrix as the plan sizes them, and none beats the curve
checked = 0
for p in presets:
    if abs(p["bpw"] - 8 * p["bytes"] / w) > 1e-5: fail(f"{p['name']}: bpw does not match its bytes")
    try:
        plan = json.load(open(f"{d}/plan_{p['name']}.json"))
        if plan["out_bytes"] != p["bytes"]: fail(f"{p['name']}: {p['bytes']} bytes, its plan has {plan['out_bytes']}")
    except FileNotFoundError:
        pass
    c = curve_at(p["bytes"])
    line = f"{p['name']:10s} {p['bpw']:.4f} bpw  error {p['error']:12.6g}  curve {c if c is None else f'{c:.6g}'}"
    if not p["candidates_only"]:
        print(line + "  (types outside the candidates: not compared)")
        continue
    if c is None or p["bytes"] > tgt["max_bytes"]:
        print(line + "  (outside the reachable range)")
        continue
    checked += 1
    print(line + f"  ({100 * (1 - c / p['error']):.1f}% lower on the curve)")
    if p["error"] < c * (1 - TOL): fail(f"{p['name']} beats the curve: {p['error']} < {c}")
    if p["allocation_error"] is None or p["allocation_error"] > p["error"] * (1 + TOL):
        fail(f"{p['name']}: the allocation at its size ({p['allocation_error']}) is worse than it")
if checked < 10: fail(f"only {checked} presets compared with the curve")
q4km = [p for p in presets if p["name"] == "Q4_K_M"][0]
if abs(q4km["error"] - tgt["preset_error"]) > 1e-9 * q4km["error"]: fail("Q4_K_M's error differs from preset_error")

# the picture: one polyline point per curve point, one marker per preset, the chosen point
svg = ET.parse(f"{d}/curve.svg").getroot()
ns = {"s": "http://www.w3.org/2000/svg"}
if svg.tag != "{http://www.w3.org/2000/svg}svg": fail(f"root is {svg.tag}")
lines = svg.findall(".//s:polyline[@id='curve']", ns)
npts = len(lines[0].get("points").split()) if len(lines) == 1 else -1
if npts != len(pareto): fail(f"polyline has {npts} points, the report {len(pareto)}")
marks = [c.get("data-label") for c in svg.findall(".//s:circle", ns) if "mark" in (c.get("class") or "").split()
         and c.get("data-label")]
if sorted(marks) != sorted(p["name"] for p in presets): fail(f"markers {sorted(marks)}")
if len(svg.findall(".//*[@id='target']")) != 1: fail("no marker for the chosen point")
texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
if "m.gguf" not in texts or "sum w (x - q)^2" not in texts: fail("title does not name the model and the error")
if "log scale" not in texts: fail("errors spanning decades without a log axis")
sys.exit(0 if ok else 1)
EOF

# Without an imatrix the I-quant presets cannot run: named in the picture and on stderr, not drawn
err=$("$qkern" quantize --dry-run --target-bpw 5 --plot "$dir/c0.svg" --report "$dir/r0.json" \
  "$dir/m.gguf" "$dir/out.gguf" Q4_K_M 2>&1 >/dev/null)
check "plot without imatrix exits 0" test $? -eq 0
check "left-out preset named on stderr" grep -q -- "--plot: IQ2_XXS left out: needs imatrix data" <<<"$err"
check "left-out presets: in the picture's notes, absent from its markers and the report's presets" python3 - "$dir" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
r = json.load(open(f"{d}/r0.json"))
left = {p["name"] for p in r["presets_left_out"]}
placed = {p["name"] for p in r["presets"]}
svg = ET.parse(f"{d}/c0.svg").getroot()
texts = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
marks = {c.get("data-label") for c in svg.iter("{http://www.w3.org/2000/svg}circle") if c.get("data-label")}
ok = "IQ2_XXS" in left and "Q4_K_M" in placed and not (left & placed) and marks == placed
ok = ok and all(any(t.strip().startswith(n + ":") for t in texts) for n in left)
print("left out:", sorted(left))
sys.exit(0 if ok else 1)
EOF

# misuse: exit 1, one clear line, nothing written
"$qkern" quantize --plot "$dir/p.svg" "$dir/m.gguf" "$dir/bad.gguf" Q4_K_M >/dev/null 2>"$dir/err"
check "--plot without a target exits 1" test $? -eq 1
check "--plot without a target says why" grep -q -- "--plot needs --target-bpw or --target-size" "$dir/err"
check "--plot without a target writes nothing" test ! -e "$dir/p.svg" -a ! -e "$dir/bad.gguf"
"$qkern" quantize --target-bpw 4.5 --plot "$dir/no/such/dir/p.svg" "$dir/m.gguf" "$dir/bad.gguf" Q4_K_M \
  >/dev/null 2>"$dir/err"
check "--plot into a missing folder exits 1" test $? -eq 1
check "--plot into a missing folder names it" grep -q -- "--plot .*no/such/dir/p.svg: No such file" "$dir/err"
check "--plot into a missing folder: stopped before any output" test ! -e "$dir/bad.gguf"
# a plot that fails only when renamed into place (a folder of that name): the run's own outputs
# stand, the plot's temporary does not
mkdir "$dir/taken.svg"
"$qkern" quantize --quiet --target-bpw 5.5 --target-types Q4_K,Q6_K --plot "$dir/taken.svg" \
  "$dir/m.gguf" "$dir/ok.gguf" Q4_K_M >/dev/null 2>"$dir/err"
check "plot that cannot be renamed exits 1" test $? -eq 1
check "plot that cannot be renamed says so" grep -q -- "--plot .*taken.svg: Is a directory" "$dir/err"
check "plot that cannot be renamed leaves no temporary" test -z "$(ls "$dir" | grep 'taken\.svg\.tmp')"
finish
