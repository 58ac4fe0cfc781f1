#!/usr/bin/env bash
# qkern quantize --device LIST (issue 20, "every GPU of a node"): one worker per device over the
# steps, the cpu standing in for extra devices here. Against --device cpu, with cmp: Q4_K_M,
# IQ2_XXS with an imatrix and a size target (--target-bpw), in 1 MiB steps (--max-buffer-size 1)
# so that the workers share the tensors; --mem-limit with several workers; the report's and
# --stats' per-device rows (each device some steps, together the one-device run's); lists with a
# device named twice, an unknown one, an empty item, and cuda:all / vulkan:all where none is
# present, refused with a message that names what was asked, leaving nothing.
# Usage: test_cli_devices.sh QKERN_BINARY
set -u
qkern=$1
. "$(dirname "$0")/harness.sh"
q() { "$qkern" quantize --quiet "$@" >/dev/null; }

# devices REPORT.json: "STEPS BYTES N" summed over the report's device rows, N the rows with steps
devices() {
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["devices"]
print(sum(r["steps"] for r in d), sum(r["bytes"] for r in d), sum(1 for r in d if r["steps"] > 0), len(d))
for r in d: print("   device %d (%s): %d steps, %d bytes, %.3f s" % (r["worker"], r["device"], r["steps"], r["bytes"], r["seconds"]), file=sys.stderr)
' "$1"
}

check "generate" "$qkern" generate --size small --seed 21 --imatrix "$dir/im.gguf" "$dir/m.gguf"

# same NAME TYPE [OPTION...]: --device cpu and --device cpu,cpu,cpu write the same bytes, and the
# three devices did the one device's steps between them, each some
same() {
  local name=$1 type=$2 t0 t1 t2
  shift 2
  t0=$(date +%s.%N)
  check "$name: --device cpu" q --device cpu --report "$dir/$name-1.json" "$@" "$dir/m.gguf" "$dir/$name-1.gguf" "$type"
  t1=$(date +%s.%N)
  check "$name: --device cpu,cpu,cpu" q --device cpu,cpu,cpu --report "$dir/$name-3.json" "$@" "$dir/m.gguf" \
    "$dir/$name-3.gguf" "$type"
  t2=$(date +%s.%N)
  awk -v n="$name" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%s: cpu %.2f s, cpu,cpu,cpu %.2f s\n", n, b - a, c - b }'
  check "$name: the same bytes" cmp "$dir/$name-1.gguf" "$dir/$name-3.gguf"
  local one three
  one=$(devices "$dir/$name-1.json")
  three=$(devices "$dir/$name-3.json")
  read -r s1 b1 n1 r1 <<<"$one"
  read -r s3 b3 n3 r3 <<<"$three"
  check "$name: one device row for one device ($r1)" test "$r1" -eq 1
  check "$name: many steps ($s1)" test "$s1" -gt 20
  check "$name: three devices did the one device's $s1 steps and $b1 bytes ($s3, $b3)" test "$s3" -eq "$s1" -a "$b3" -eq "$b1"
  check "$name: each of the three devices did some ($n3 of $r3)" test "$n3" -eq 3 -a "$r3" -eq 3
  rm -f "$dir/$name"-*
}
same q4km Q4_K_M --max-buffer-size 1
same iq2xxs IQ2_XXS --imatrix "$dir/im.gguf" --max-buffer-size 1
same target Q4_K_M --imatrix "$dir/im.gguf" --target-bpw 4.8 --target-types Q3_K,Q4_K,Q5_K,Q6_K --max-buffer-size 1

# host memory: --mem-limit sizes every worker's buffers; two workers, the same bytes
check "--mem-limit, one device" q --device cpu --mem-limit 32M "$dir/m.gguf" "$dir/l1.gguf" Q4_K_M
check "--mem-limit, two devices" q --device cpu,cpu --mem-limit 32M "$dir/m.gguf" "$dir/l2.gguf" Q4_K_M
check "--mem-limit: the same bytes" cmp "$dir/l1.gguf" "$dir/l2.gguf"
msg=$("$qkern" quantize --quiet --device cpu,cpu,cpu --mem-limit 8M "$dir/m.gguf" "$dir/l3.gguf" Q4_K_M 2>&1)
check "--mem-limit too small for three workers: refused with the least that fits" grep -q "too small.*at least" <<<"$msg"
rm -f "$dir"/l*.gguf

# --resume: a run on two devices stopped part way, continued on three: the uninterrupted bytes
check "--resume: the reference" q --device cpu "$dir/m.gguf" "$dir/ref.gguf" Q4_K_M
"$qkern" quantize --quiet --resume --device cpu,cpu --max-buffer-size 1 "$dir/m.gguf" "$dir/res.gguf" Q4_K_M \
  >/dev/null 2>&1 &
pid=$!
sleep 0.5
kill -INT $pid 2>/dev/null
wait $pid
check "--resume: continued on three devices" q --resume --device cpu,cpu,cpu "$dir/m.gguf" "$dir/res.gguf" Q4_K_M
check "--resume: the same bytes" cmp "$dir/ref.gguf" "$dir/res.gguf"
rm -f "$dir"/ref.gguf "$dir"/res.gguf*

# --stats: a row per device
out=$("$qkern" quantize --quiet --stats --device cpu,cpu "$dir/m.gguf" "$dir/s.gguf" Q8_0 2>&1 >/dev/null)
check "--stats: two device rows" test "$(grep -cE '^[01] +cpu +[0-9]+ ' <<<"$out")" -eq 2
rm -f "$dir/s.gguf"

# refused: what was asked is named, nothing is written
refused() { # refused WHAT DEVICES PATTERN
  local what=$1 devs=$2 pattern=$3 msg
  msg=$("$qkern" quantize --quiet --device "$devs" "$dir/m.gguf" "$dir/r.gguf" Q8_0 2>&1)
  check "$what: fails" test $? -ne 0
  check "$what: says '$pattern' ($msg)" grep -qE -- "$pattern" <<<"$msg"
  check "$what: writes nothing" test ! -e "$dir/r.gguf" -a ! -e "$dir/r.gguf.tmp.qkern"
}
refused "a GPU named twice" "cpu,vulkan:0,vulkan:0" "vulkan:0 is named twice"
refused "cuda and cuda:0 are one device" "cuda,cuda:0" "cuda:0 is named twice"
refused "an unknown device" "cpu,tpu:0" "tpu:0.*unknown backend"
refused "an empty item" "cpu,,cpu" "'' is no device"
refused "a device not present in a list" "cpu,cuda:7" "cuda:7"
refused "cuda:all without a CUDA device" "cuda:all" "cuda:all.*every cuda device.*none is present"
refused "vulkan:all among others" "cpu,vulkan:all" "vulkan:all.*every vulkan device.*none is present"
check "--help names the lists" sh -c "'$qkern' quantize --help | grep -q 'cuda:all'"
finish
