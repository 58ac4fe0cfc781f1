#!/usr/bin/env bash
# qkern bench quantize on the CPU, kept to seconds with --limit-layers: valid output in each
# format, the full shape's parameter count (counted here from the published config, not by qkern),
# a positive projected time, and clear errors for bad arguments.
# Usage: test_cli_bench.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"
fails() { # fails EXPECTED_RC command...: exits with that code and says why on stderr
  local want=$1; shift
  "$@" >/dev/null 2>"$dir/err"
  local rc=$?
  [ "$rc" -eq "$want" ] && grep -q "qkern" "$dir/err"
}

# Qwen3.5-35B-A3B from its config.json: 40 layers, every 4th full attention, the rest gated delta net.
H=2048 L=40 V=248320 NH=16 NKV=2 HD=256 E=256 F=512 S=512 KH=16 VH=32 DH=128 CONV=4
conv_dim=$((2 * KH * DH + VH * DH))
full=$((H + H * 2 * HD * NH + 2 * H * HD * NKV + HD * NH * H + 2 * HD))  # gated query, q/k norms
linear=$((H + H * conv_dim + H * VH * DH + CONV * conv_dim + 2 * VH + 2 * H * VH + DH + VH * DH * H))
ffn=$((H + H * E + 3 * H * F * E + H + 3 * H * S))  # post-attention norm, router, experts, shared
n_full=$((L / 4))
want=$((2 * V * H + H + n_full * full + (L - n_full) * linear + L * ffn))
echo "expected parameters of qwen3.5-35b-a3b: $want"

json=$("$qkern" bench quantize --shape qwen3.5-35b-a3b --preset Q4_K_M --device cpu --limit-layers 1 --format json)
check "json run" test $? -eq 0
check "json: one record, right fields, full-model parameters, positive time" python3 -c "
import json, sys
r = json.loads(sys.argv[1]); want = int(sys.argv[2])
assert isinstance(r, list) and len(r) == 1, r
o = r[0]
assert o['op'] == 'quantize_model' and o['type'] == 'Q4_K_M' and o['shape'] == 'qwen3.5-35b-a3b', o
assert o['unit'] == 's' and o['device'] == 'cpu' and o['date'], o
assert o['params'] == want, (o['params'], want)
assert abs(want - 35e9) / 35e9 < 0.02, want  # the published size
assert o['value'] > 0 and o['gweights_per_s'] > 0, o
assert o['skipped'] == 0 and 0 < o['weights'] <= want and o['tensors'] > 0, o
" "$json" "$want"

md=$("$qkern" bench quantize --shape qwen3-30b-a3b --preset Q8_0,Q4_K --device cpu --limit-layers 1)
check "md run" test $? -eq 0
check "md: table header" grep -q "^| preset | tensors | weights | kernel s | G weights/s" <<<"$md"
check "md: the alias names its preset" grep -q "^| Q4_K_M |" <<<"$md"
check "md: Q8_0 row" grep -q "^| Q8_0 |" <<<"$md"
csv=$("$qkern" bench quantize --shape qwen3-30b-a3b --preset Q8_0 --device cpu --limit-layers 1 --format csv)
check "csv: header and one row" test "$(wc -l <<<"$csv")" -eq 2
check "csv: op and unit" grep -q ",quantize_model,Q8_0,qwen3-30b-a3b,[0-9.]*,s," <<<"$csv"

check "bench --help" "$qkern" bench --help >/dev/null
check "bench quantize --help lists the shapes" grep -q "qwen3.5-397b-a17b" <<<"$("$qkern" bench quantize --help)"
check "no shape" fails 2 "$qkern" bench quantize
check "unknown shape" fails 2 "$qkern" bench quantize --shape llama-7b
check "bad preset" fails 2 "$qkern" bench quantize --shape qwen3-30b-a3b --preset Q9_Z
check "COPY is refused" fails 2 "$qkern" bench quantize --shape qwen3-30b-a3b --preset COPY
check "bad format" fails 2 "$qkern" bench quantize --shape qwen3-30b-a3b --format xml
check "bad --limit-layers" fails 2 "$qkern" bench quantize --shape qwen3-30b-a3b --limit-layers 0
check "unknown subcommand" fails 2 "$qkern" bench dequantize
check "unknown device" fails 1 "$qkern" bench quantize --shape qwen3-30b-a3b --device vulkan:7 --limit-layers 1

finish
