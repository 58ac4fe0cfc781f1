#!/usr/bin/env bash
# Runs one libFuzzer target for a while on a scratch copy of its seed corpus (so the checkout
# is never modified). Crash inputs are kept in ARTIFACTS for replay: `fuzz_x FILE`.
# usage: run_fuzz.sh FUZZER CORPUS_DIR ARTIFACTS_DIR [SECONDS]
set -euo pipefail
fuzzer=$1 corpus=$2 artifacts=$3 secs=${4:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/qk_fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
if [ -d "$corpus" ]; then cp -R "$corpus"/. "$work/corpus/"; fi
"$fuzzer" -max_total_time="$secs" -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus"
