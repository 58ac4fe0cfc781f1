#!/usr/bin/env bash
# qkern quantize --shard I/N (issue 20, item 3): N runs, each on its own, write the N parts of
# llama.cpp's split GGUF, and together they are the single run: every tensor once, in the single
# run's order, byte for byte; part 1 has the model's metadata and every part the split keys
# (gguf_shards.py says what exactly is checked). Also: the options a single run takes, the plan
# of a dry run, parts beyond the tensors, bad --shard values, a failing shard leaving nothing, the
# examples (the Slurm array script run locally for two shards, the Kubernetes Indexed Job's
# fields and its command run locally), and, where the tools are present, the parts read by the
# Python gguf package and merged by llama.cpp's gguf-split.
# Usage: test_cli_shard.sh QKERN_BINARY [GGUF_SPLIT_BINARY]   (or GGUF_SPLIT=llama-gguf-split)
set -u
qkern=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
gguf_split=${2:-${GGUF_SPLIT:-}}
here=$(cd "$(dirname "$0")" && pwd)
examples=$(cd "$here/../../examples" && pwd)
. "$here/harness.sh"
shards() { python3 "$here/gguf_shards.py" "$@"; }
no_output_left() { # no file in folder $1 whose name starts with $2 (parts and temporaries)
  ! ls "$1/$2"* >/dev/null 2>&1
}
one_line() { [ -n "$1" ] && [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ]; }

"$qkern" generate --size tiny --seed 7 --imatrix "$dir/im.gguf" "$dir/m.gguf" >/dev/null || exit 1

# same_as_single NAME N TYPE [OPTION...]: the single run into NAME/one.gguf, then the N parts into
# NAME/q-0000k-of-0000N.gguf, each by its own process, last part first; then the checks.
same_as_single() {
  local name=$1 n=$2 type=$3 k
  shift 3
  mkdir "$dir/$name"
  check "$name: single run" "$qkern" quantize --quiet "$@" "$dir/m.gguf" "$dir/$name/one.gguf" "$type" >/dev/null
  for ((k = n; k >= 1; k--)); do
    check "$name: --shard $k/$n" "$qkern" quantize --quiet --shard "$k/$n" "$@" "$dir/m.gguf" "$dir/$name/q.gguf" \
      "$type" >/dev/null
  done
  local want="one.gguf"
  for ((k = 1; k <= n; k++)); do want+=$'\n'$(printf 'q-%05d-of-%05d.gguf' "$k" "$n"); done
  check "$name: the files are one.gguf and the $n parts" test "$(ls "$dir/$name")" = "$want"
  check "$name: the parts are the single run" shards check "$dir/$name/one.gguf" "$dir/$name/q" "$n"
}

same_as_single imatrix 3 Q4_K_M --imatrix "$dir/im.gguf"
same_as_single options 2 IQ4_XS --imatrix "$dir/im.gguf" --tensor-type 'ffn_down_exps=q5_k' \
  --output-tensor-type q8_0 --token-embedding-type q4_0 --override-kv general.name=str:sharded --prune-layers 1
same_as_single pure 4 Q3_K_S --pure --leave-output-tensor
same_as_single one 1 Q8_0

# the report lists the part's tensors, those of its file
mkdir "$dir/report"
check "--shard 2/3 --report" "$qkern" quantize --quiet --shard 2/3 --imatrix "$dir/im.gguf" --report "$dir/report/r.json" \
  "$dir/m.gguf" "$dir/report/q.gguf" Q4_K_M >/dev/null
check "report: the part's tensors" python3 -c "
import json, sys; sys.path.insert(0, '$here'); from gguf_shards import Gguf
names = [t['name'] for t in json.load(open('$dir/report/r.json'))['tensors']]
part = [t[0] for t in Gguf('$dir/report/q-00002-of-00003.gguf').tensors]
assert names == part and names, (names, part)"

# a dry run plans the part: the parts' plans, one after the other, are the single run's
plan_rows() { grep -E '^(blk\.|token_embd|output)' <<<"$1"; }
single_plan=$("$qkern" quantize --dry-run --imatrix "$dir/im.gguf" "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M 2>/dev/null)
joined=
for k in 1 2 3 4; do
  part_plan=$("$qkern" quantize --dry-run --shard "$k/4" --imatrix "$dir/im.gguf" "$dir/m.gguf" "$dir/dry.gguf" Q4_K_M \
    2>/dev/null)
  check "dry run of part $k/4 plans tensors" test -n "$(plan_rows "$part_plan")"
  joined+=$(plan_rows "$part_plan")$'\n'
done
check "dry runs: the 4 parts' plans joined are the single plan" test "$joined" = "$(plan_rows "$single_plan")"$'\n'
check "dry runs write nothing" no_output_left "$dir" dry

# more parts than tensors: the parts beyond them are valid files with the split keys and no tensor
n_tensors=$(plan_rows "$single_plan" | wc -l)
n=$((n_tensors + 2))
plan=$("$qkern" quantize --dry-run --shard "$n/$n" "$dir/m.gguf" "$dir/dry.gguf" Q8_0)
check "part $n/$n of $n_tensors tensors plans none" grep -q "^plan: 0 tensors" <<<"$plan"
mkdir "$dir/many"
check "part $n/$n is written" "$qkern" quantize --quiet --shard "$n/$n" "$dir/m.gguf" "$dir/many/q.gguf" Q8_0 >/dev/null
check "part $n/$n: split keys, no tensor" python3 -c "
import sys; sys.path.insert(0, '$here'); from gguf_shards import Gguf
g = Gguf('$dir/many/q-$(printf %05d "$n")-of-$(printf %05d "$n").gguf')
assert (g.value('split.no'), g.value('split.count'), g.value('split.tensors.count')) == ($n - 1, $n, $n_tensors)
assert g.tensors == [] and g.keys() == ['split.no', 'split.count', 'split.tensors.count'], (g.tensors, g.keys())"

# bad --shard values and combinations: exit 1, one line naming --shard, nothing written
mkdir "$dir/bad"
for v in 0/3 4/3 1/0 3 x 1/3x -1/3 1/-3 2/65536 ''; do
  err=$("$qkern" quantize --shard "$v" "$dir/m.gguf" "$dir/bad/q.gguf" Q8_0 2>&1 >/dev/null)
  rc=$?
  check "--shard '$v' exits 1 (got $rc)" test $rc -eq 1
  check "--shard '$v': one line naming --shard" one_line "$err"
  check "--shard '$v': says so" grep -q -- "--shard" <<<"$err"
done
for extra in --keep-split "--split-max-size 1M" "--target-bpw 4.5" "--target-size 2M"; do
  # shellcheck disable=SC2086 # the option and its value
  err=$("$qkern" quantize --shard 1/2 $extra "$dir/m.gguf" "$dir/bad/q.gguf" Q4_K_M 2>&1 >/dev/null)
  rc=$?
  check "--shard with $extra exits 1 (got $rc)" test $rc -eq 1
  check "--shard with $extra: one line naming --shard" grep -q -- "--shard" <<<"$err"
done
check "bad values: nothing written" no_output_left "$dir/bad" q

# a part that fails (IQ1_S needs an imatrix) leaves neither the part nor a temporary
err=$("$qkern" quantize --shard 2/3 "$dir/m.gguf" "$dir/bad/q.gguf" IQ1_S 2>&1 >/dev/null)
check "failing part exits 1" test $? -eq 1
check "failing part: says why" grep -q "imatrix" <<<"$err"
check "failing part: nothing left" no_output_left "$dir/bad" q

# the Python gguf package (llama.cpp's gguf-py) reads every part
if python3 -c "import gguf" 2>/dev/null; then
  check "gguf-py reads the parts" python3 -c "
import gguf
total = 0
for k in (1, 2, 3):
    r = gguf.GGUFReader('$dir/imatrix/q-%05d-of-00003.gguf' % k)
    f = lambda key: int(r.fields[key].parts[-1][0])
    assert (f('split.no'), f('split.count')) == (k - 1, 3), k
    total += len(r.tensors)
    n_all = f('split.tensors.count')
assert total == n_all == len(gguf.GGUFReader('$dir/imatrix/one.gguf').tensors), (total, n_all)"
else
  echo "the Python gguf package is missing (scripts/setup.sh installs it): gguf-py's reading is skipped"
fi

# llama.cpp's gguf-split merges the parts into the single run's tensors
if [ -n "$gguf_split" ] && [ -x "$gguf_split" ]; then
  echo "gguf-split: $gguf_split"
  for name_n in imatrix:3 options:2 pure:4 one:1; do
    name=${name_n%:*} n=${name_n#*:}
    check "$name: gguf-split --merge" "$gguf_split" --merge "$dir/$name/q-00001-of-$(printf %05d "$n").gguf" \
      "$dir/$name/merged.gguf" >"$dir/$name/merge.log" 2>&1
    check "$name: the merge is the single run" shards merged "$dir/$name/merged.gguf" "$dir/$name/one.gguf"
  done
else
  echo "gguf-split not found (set GGUF_SPLIT to llama.cpp's llama-gguf-split): its --merge is skipped"
fi

# examples/slurm_quantize_shards.sh: its body, run here as array tasks 0 and 1 of two
mkdir "$dir/slurm"
for task in 0 1; do
  check "slurm task $task of 2" env SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_COUNT=2 SLURM_ARRAY_TASK_MIN=0 \
    QKERN="$qkern" MODEL="$dir/m.gguf" IMATRIX="$dir/im.gguf" OUT="$dir/slurm/q.gguf" TYPE=Q4_K_M \
    bash "$examples/slurm_quantize_shards.sh" >"$dir/slurm/task$task.log" 2>&1
done
"$qkern" quantize --quiet --imatrix "$dir/im.gguf" "$dir/m.gguf" "$dir/slurm/one.gguf" Q4_K_M >/dev/null
check "slurm: the two parts are the single run" shards check "$dir/slurm/one.gguf" "$dir/slurm/q" 2
err=$(env -u SLURM_ARRAY_TASK_ID -u SLURM_ARRAY_TASK_COUNT bash "$examples/slurm_quantize_shards.sh" 2>&1 >/dev/null)
check "slurm: outside an array it says so" grep -q "Slurm array task" <<<"$err"

# examples/k8s_quantize_shards.yaml: an Indexed Job (the fields checked here; a full schema check
# needs the cluster's API), and its container's command run here for completion indexes 0 and 1
if python3 -c "import yaml" 2>/dev/null; then
  check "k8s: an Indexed Job of N pods, each its part" python3 - "$examples/k8s_quantize_shards.yaml" "$dir/k8s.sh" <<'EOF'
import sys
import yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
assert len(docs) == 1, f"{len(docs)} documents"
job = docs[0]
assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job", (job["apiVersion"], job["kind"])
assert job["metadata"]["name"], "no name"
spec = job["spec"]
assert spec["completionMode"] == "Indexed", spec.get("completionMode")
n = spec["completions"]
assert isinstance(n, int) and n >= 1 and spec["parallelism"] == n, (n, spec.get("parallelism"))
pod = spec["template"]["spec"]
assert pod["restartPolicy"] in ("Never", "OnFailure"), pod["restartPolicy"]
(c,) = pod["containers"]
assert c["name"] and c["image"], c
cmd = " ".join(c["command"] + c.get("args", []))
assert "JOB_COMPLETION_INDEX" in cmd and "--shard" in cmd and "qkern quantize" in cmd, cmd
env = {e["name"]: e.get("value") for e in c.get("env", [])}
assert env.get("SHARDS") == str(n), f"SHARDS {env.get('SHARDS')} is not completions {n}"
mounts = {m["name"] for m in c.get("volumeMounts", [])}
assert mounts <= {v["name"] for v in pod.get("volumes", [])}, mounts
assert c["command"][:2] == ["sh", "-c"] and len(c["command"]) == 3, c["command"]
open(sys.argv[2], "w").write(c["command"][2])
EOF
  mkdir "$dir/k8s" "$dir/k8s/bin"
  ln -s "$qkern" "$dir/k8s/bin/qkern"
  for index in 0 1; do
    check "k8s: completion index $index of 2" env JOB_COMPLETION_INDEX=$index SHARDS=2 MODEL="$dir/m.gguf" \
      IMATRIX="$dir/im.gguf" OUT="$dir/k8s/q.gguf" TYPE=Q4_K_M PATH="$dir/k8s/bin:$PATH" \
      sh -c "$(cat "$dir/k8s.sh")" >"$dir/k8s/pod$index.log" 2>&1
  done
  check "k8s: the two parts are the single run" shards check "$dir/slurm/one.gguf" "$dir/k8s/q" 2
else
  echo "PyYAML is missing (the gguf package brings it; scripts/setup.sh): the manifest's check is skipped"
fi

finish
