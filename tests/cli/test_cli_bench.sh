#!/usr/bin/env bash
# qkern bench quantize on the CPU, kept to seconds with --limit-layers: valid output in each
# format, the full shape's parameter count (counted here from the published config, not by qkern),
# a positive projected time, and clear errors for bad arguments. Then qkern bench tg / pp on a
# tiny custom shape: the results-format fields and their arithmetic, and the same errors.
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

csv=$("$qkern" bench quantize --shape qwen3-30b-a3b --preset Q8_0 -dev cpu -t 1 --limit-layers 1 -o csv)
check "bench quantize: -dev, -t, -o as llama-bench spells them" grep -q "^cpu,.*,quantize_model,Q8_0," <<<"$csv"
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

# qkern bench tg / pp on the CPU, a tiny custom shape: the results-format fields, one row per
# routing, positive rates, and the bytes and FLOPs of the pass counted here from the shape.
tiny=hidden=256,experts=8,used=2,ffn=256,shexp=256,layers=3
for test in tg pp; do
  n=$([ $test = tg ] && echo "-n 3" || echo "-p 16")
  json=$("$qkern" bench $test --device cpu --custom $tiny -q Q8_0 $n -r 2 --format json --commit c0ffee)
  check "bench $test: json run" test $? -eq 0
  check "bench $test: json fields" python3 -c "
import json, sys
test = sys.argv[2]
r = json.loads(sys.argv[1])
assert isinstance(r, list) and len(r) == 2, r
assert sorted(o['routing'] for o in r) == ['skewed', 'uniform'], r
tokens = 1 if test == 'tg' else 16
for o in r:
    for f in ('device', 'date', 'commit', 'backend', 'op', 'type', 'shape', 'tokens', 'value', 'unit', 'ceiling',
              'ceiling_unit', 'fraction'):
        assert f in o, (f, o)
    assert o['op'] == 'model_' + test and o['backend'] == 'cpu' and o['device_id'] == 'cpu', o
    assert o['type'] == 'Q8_0' and o['shape'] == 'hidden=256,experts=8,used=2,ffn=256,shexp=256,layers=3', o
    assert o['commit'] == 'c0ffee' and o['date'].endswith('Z') and o['tokens'] == tokens, o
    assert o['unit'] == 't/s' and o['value'] > 0 and o['stddev'] >= 0, o
    assert o['ceiling'] is None and o['fraction'] is None, o  # no ceilings on the cpu
    assert o['test'] == ('tg3' if test == 'tg' else 'pp16') and o['layers'] == 3, o
    # Q8_0: 34 bytes per 32 values; each op reads its touched experts (1 or 2 per token) + the shared one
    expert, shared = 3 * 256 * 256 * 34 // 32, 3 * 256 * 256 * 34 // 32
    ops = 3 * (3 if test == 'tg' else 1)
    assert ops * (expert + shared) <= o['weight_bytes'] <= ops * (min(8, 2 * tokens) * expert + shared), o
    assert abs(o['flops'] - 2 * tokens * (3 if test == 'tg' else 1) * 3 * (2 * 3 + 3) * 256 * 256) < 1, o
    assert o['weight_gbps'] > 0, o
" "$json" $test
done
md=$("$qkern" bench tg --device cpu --custom $tiny -q Q4_K,IQ4_XS -n 2 -r 1 --routing skewed)
check "bench tg md: table header" grep -q "^| model | type | size | params | backend | threads | test | routing | t/s | GB/s" <<<"$md"
check "bench tg md: one row per type" test "$(grep -c "^| custom | \(Q4_K\|IQ4_XS\) | .* | CPU | [0-9]* | tg2 | skewed |" <<<"$md")" -eq 2
check "bench tg md: llama-bench's build line" grep -q "^build: [0-9a-z-]* (qkern " <<<"$md"
check "bench tg md: ceilings n/a" grep -q "ceilings: n/a" <<<"$md"
csv=$("$qkern" bench pp --device cpu --custom $tiny -q Q8_0 -p 4 -r 1 --routing uniform --format csv)
check "bench pp csv: header and one row" test "$(wc -l <<<"$csv")" -eq 2
check "bench pp csv: op, type, shape quoted" grep -q ",model_pp,Q8_0,\"hidden=256,.*\",custom,pp4,uniform,4," <<<"$csv"
check "bench pp --help lists the shapes" grep -q "qwen3.5-122b-a10b" <<<"$("$qkern" bench pp --help)"
check "bench tg --help says layers are cycled" grep -q "cycled" <<<"$("$qkern" bench tg --help)"
one_line() { # one_line command...: fails with exit 2 and exactly one line on stderr
  "$@" >/dev/null 2>"$dir/err"
  local rc=$?
  [ "$rc" -eq 2 ] && [ "$(wc -l <"$dir/err")" -eq 1 ] && grep -q "qkern" "$dir/err"
}
check "bench tg: bad type" one_line "$qkern" bench tg --device cpu --custom $tiny -q Q9_Z
check "bench tg: unquantized type" one_line "$qkern" bench tg --device cpu --custom $tiny --type F16
check "bench pp: bad custom key" one_line "$qkern" bench pp --device cpu --custom hidden=256,experts=8,used=2,fnn=256
check "bench pp: custom missing ffn" one_line "$qkern" bench pp --device cpu --custom hidden=256,experts=8,used=2
check "bench pp: used > experts" one_line "$qkern" bench pp --device cpu --custom hidden=256,experts=2,used=4,ffn=256
check "bench pp: unknown model" one_line "$qkern" bench pp --device cpu -m llama-7b
check "bench pp: -m and --custom" one_line "$qkern" bench pp --device cpu -m qwen3-30b-a3b --custom $tiny
check "bench pp: bad -p" one_line "$qkern" bench pp --device cpu --custom $tiny -p 0
check "bench tg: -p is pp's" one_line "$qkern" bench tg --device cpu --custom $tiny -p 8
check "bench tg: bad routing" one_line "$qkern" bench tg --device cpu --custom $tiny --routing zipf
check "bench tg: bad format" one_line "$qkern" bench tg --device cpu --custom $tiny --format xml
"$qkern" bench tg --device cpu --custom hidden=100,experts=4,used=2,ffn=256 -q Q4_K >/dev/null 2>"$dir/err"
check "bench tg: a block size that does not divide the shape fails with one line" \
  test $? -eq 1 -a "$(wc -l <"$dir/err")" -eq 1
check "bench tg: unknown device" fails 1 "$qkern" bench tg --device vulkan:7 --custom $tiny

# llama-bench parity (issue 16): -t is threads, types are -q (old -t TYPES warns), lists and
# ranges for -p/-n/-b/-t, the pp+tg pair of `qkern bench`, rows as soon as measured, and the
# md|csv|json|jsonl|sql outputs with llama-bench's field names next to the fields scripts read.
rows() { # rows JSONL: "test:n_threads:n_batch" of each record, in order
  python3 -c 'import json, sys; print(" ".join("%s:%d:%d" % (r["test"], r["n_threads"], r["n_batch"]) for r in map(json.loads, sys.stdin)))'
}
run() { "$qkern" bench "$@" --device cpu --custom $tiny -q Q8_0 -r 1 --routing uniform -o jsonl 2>"$dir/err"; }
check "-n 1-3: a range" test "$(run tg -n 1-3 | rows)" = "tg1:2:2048 tg2:2:2048 tg3:2:2048" -o \
  "$(run tg -n 1-3 | rows)" = "tg1:$(nproc):2048 tg2:$(nproc):2048 tg3:$(nproc):2048"
check "-p 2-8*2,5: a geometric range, then a value" test "$(run pp -p 2-8*2,5 -t 1 | rows)" = \
  "pp2:1:2048 pp4:1:2048 pp8:1:2048 pp5:1:2048"
check "-p 1-7+3 -p 9: a stepped range; repeating adds" test "$(run pp -p 1-7+3 -p 9 -t 1 | rows)" = \
  "pp1:1:2048 pp4:1:2048 pp7:1:2048 pp9:1:2048"
check "-t 1,2: a row per thread count" test "$(run tg -n 2 -t 1,2 | rows)" = "tg2:1:2048 tg2:2:2048"
check "-b 4,16: pp in batches" test "$(run pp -p 16 -b 4,16 -t 1 | rows)" = "pp16:1:4 pp16:1:16"
check "qkern bench: llama-bench's pp then tg" test "$(run -p 8 -n 2 -t 1 | rows)" = "pp8:1:2048 tg2:1:2048"
check "qkern bench: -p 0 leaves pp out" test "$(run -p 0 -n 2 -t 1 | rows)" = "tg2:1:2048"
check "-t TYPES still works, with a warning" bash -c \
  '"$1" bench tg --device cpu --custom "$2" -t Q8_0 -n 1 -r 1 --routing uniform -o jsonl 2>"$3" | grep -q "\"type\": \"Q8_0\"" &&
   grep -q "warning: -t Q8_0: -t now means threads" "$3"' _ "$qkern" "$tiny" "$dir/err2"
check "bench pp: -b batches keep the FLOPs, read at least as many weights" python3 -c "
import json, subprocess, sys
def one(*a):
    out = subprocess.run([sys.argv[1], 'bench', 'pp', '--device', 'cpu', '--custom', sys.argv[2], '-q', 'Q8_0', '-r', '1',
                          '--routing', 'uniform', '-o', 'jsonl', '-p', '16', *a], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
whole, batched = one(), one('-b', '4')
assert whole['flops'] == batched['flops'] and batched['weight_bytes'] >= whole['weight_bytes'], (whole, batched)
" "$qkern" "$tiny"
out=$("$qkern" bench --device cpu --custom $tiny -q Q8_0,Q4_K -p 4 -n 2 -t 1 -r 3 --routing uniform -o json)
check "-o json: one array, llama-bench's fields with consistent values" python3 -c "
import json, sys
r = json.loads(sys.argv[1])
assert [o['test'] for o in r] == ['pp4', 'tg2', 'pp4', 'tg2'], r
for o in r:
    for f in ('build_commit', 'cpu_info', 'gpu_info', 'backends', 'model_filename', 'model_type', 'model_size',
              'model_n_params', 'n_batch', 'n_threads', 'devices', 'n_prompt', 'n_gen', 'n_depth', 'test_time',
              'avg_ns', 'stddev_ns', 'avg_ts', 'stddev_ts', 'samples_ns', 'samples_ts'):
        assert f in o, (f, o)
    assert o['backends'] == 'CPU' and o['devices'] == 'cpu' and o['n_threads'] == 1 and o['model_type'] == 'custom ' + o['type'], o
    assert (o['n_prompt'], o['n_gen']) == ((4, 0) if o['test'] == 'pp4' else (0, 2)), o
    assert len(o['samples_ns']) == 3 and len(o['samples_ts']) == 3, o
    n = o['n_prompt'] + o['n_gen']
    assert all(abs(ts - 1e9 * n / ns) <= 1e-3 * ts for ns, ts in zip(o['samples_ns'], o['samples_ts'])), o
    assert abs(o['avg_ts'] - o['value']) <= 1e-4 * o['value'] and abs(o['avg_ns'] - 1e3 * o['pass_us']) <= 1e-3 * o['avg_ns'], o
" "$out"
out=$("$qkern" bench --device cpu --custom $tiny -q Q8_0 -p 4 -n 2 -t 1 -r 1 -o csv)
check "-o csv: a header and one row per record, same columns" python3 -c "
import csv, io, sys
rows = list(csv.DictReader(io.StringIO(sys.argv[1])))
assert len(rows) == 4 and {r['test'] for r in rows} == {'pp4', 'tg2'}, rows
assert all(r['backends'] == 'CPU' and r['model_type'] == 'custom Q8_0' and float(r['avg_ts']) > 0 for r in rows), rows
" "$out"
out=$("$qkern" bench --device cpu --custom $tiny -q Q8_0 -p 4 -n 2 -t 1 -r 1 -o sql)
check "-o sql: loads into SQLite" python3 -c "
import sqlite3, sys
db = sqlite3.connect(':memory:')
db.executescript(sys.argv[1])
got = db.execute('select test, n_prompt, n_gen, backends from qkern_bench order by test').fetchall()
assert got == [('pp4', 4, 0, 'CPU'), ('pp4', 4, 0, 'CPU'), ('tg2', 0, 2, 'CPU'), ('tg2', 0, 2, 'CPU')], got
assert db.execute('select count(*) from qkern_bench where avg_ts > 0 and ceiling is null').fetchone()[0] == 4
" "$out"
# rows as soon as measured: the first record is out while the second is still running
"$qkern" bench tg --device cpu --custom hidden=1024,experts=16,used=4,ffn=512,shexp=0,layers=4 -q Q8_0,IQ2_XXS \
  -n 16 -t 1 -r 3 --routing uniform -o jsonl >"$dir/stream" 2>/dev/null & # IQ2_XXS's row: seconds after Q8_0's
pid=$!
for _ in $(seq 600); do [ -s "$dir/stream" ] && break; sleep 0.1; done
check "rows stream: the first row is printed before the run ends" bash -c \
  '[ "$(wc -l <"$1")" -eq 1 ] && kill -0 "$2"' _ "$dir/stream" "$pid"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null

# -m FILE.gguf: the file's own MoE layers (a generated tiny model, quantized to Q8_0)
"$qkern" generate --size tiny "$dir/tiny.gguf" >/dev/null 2>&1 &&
  "$qkern" quantize --quiet --device cpu "$dir/tiny.gguf" "$dir/tiny-q8.gguf" Q8_0 >/dev/null 2>&1
check "generate and quantize a tiny MoE model" test -s "$dir/tiny-q8.gguf"
out=$("$qkern" bench tg --device cpu -m "$dir/tiny-q8.gguf" -n 2 -t 1 -r 1 --routing uniform -o json)
check "-m FILE.gguf: the file's shape, types and name" python3 -c "
import json, sys
(o,) = json.loads(sys.argv[1])
assert o['type'] == 'Q8_0' and o['model'] == 'tiny-q8.gguf' and o['model_filename'].endswith('tiny-q8.gguf'), o
assert o['shape'] == 'qwen35moe' and o['model_type'] == 'qwen35moe Q8_0' and o['layers'] == 4, o
assert o['model_n_params'] == 4 * 3 * 256 * (8 * 256 + 256), o  # tiny: 4 MoE layers, 8 experts of 256, shared 256
" "$out"
check "-m FILE.gguf -q: the file's shape, other types" bash -c \
  '"$1" bench tg --device cpu -m "$2" -q Q4_K -n 1 -r 1 --routing uniform -o jsonl | grep -q "\"type\": \"Q4_K\""' \
  _ "$qkern" "$dir/tiny-q8.gguf"
check "-m a GGUF without MoE layers" one_line "$qkern" bench tg --device cpu -m "$dir/none.gguf"
check "bench: bad range" one_line "$qkern" bench pp --device cpu --custom $tiny -p 2-8*1
check "bench: bad list" one_line "$qkern" bench pp --device cpu --custom $tiny -p 4,,8
check "bench: -p 0 -n 0 runs nothing" one_line "$qkern" bench --device cpu --custom $tiny -p 0 -n 0
check "bench: bad -o" one_line "$qkern" bench tg --device cpu --custom $tiny -o yaml
check "bench: one device" one_line "$qkern" bench tg --custom $tiny -dev cpu,vulkan:0
check "bench -h: llama-bench's lists" grep -q "FIRST-LAST\*MULT" <<<"$("$qkern" bench -h)"

finish
