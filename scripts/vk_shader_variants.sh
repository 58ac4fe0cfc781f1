#!/usr/bin/env bash
# Which form of an encoder shader a Vulkan driver refuses (vkCreateComputePipelines fails) or
# computes differently: builds forms of quant/TYPE here, then on the GPU machine runs the
# equivalence test of that type once per form, the form loaded through the diagnostic hook
# QK_VK_SHADER_FILE (runtime/core/vulkan/vk_device.c), and once more without denormals kept
# (QK_VK_DISABLE=denorm).
#
# usage: bash scripts/vk_shader_variants.sh build BUILD_DIR OUT_DIR TYPE...   (here: glslc, spirv-opt)
#        bash scripts/vk_shader_variants.sh run BUILD_DIR OUT_DIR              (GPU machine; $OUT/variants.md)
# Forms: built (as the build makes it: glslc -O0, NoContraction, spirv-opt's SSA passes), noopt
# (glslc -O0 and NoContraction only), nounroll (built without --loop-unroll), inline (only
# return merging and inlining), O (glslc -O, then NoContraction), and for the K-quants with an
# imatrix branch: plain (the imatrix branch cut) and weighted (the other branch cut; both with the
# constant branch folded away).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=$1 B=$2 D=$3
shift 3
if [ "$mode" = build ]; then
  mkdir -p "$D"
  gen="$B/generated"
  for T in "$@"; do
    src=shaders
    cc() { # cc SRC_DIR OUT GLSLC_OPT
      glslc --target-env=vulkan1.2 $3 -I "$1" -I "$1/formats" -I "$gen" -DQK_TYPE_$T "$1/quant.comp" -o "$2"
    }
    opt() { spirv-opt --target-env=vulkan1.2 "$@"; }
    # shaders.cmake's passes for the exact shaders (keep the two lists alike), less what a form drops
    passes() { # passes [--no-unroll] [EXTRA...]
      local unroll=--loop-unroll
      [ "${1:-}" = --no-unroll ] && unroll= && shift
      echo --merge-return --inline-entry-points-exhaustive --eliminate-dead-functions --private-to-local \
        --scalar-replacement=0 --ssa-rewrite $unroll --scalar-replacement=0 --ssa-rewrite \
        --eliminate-local-single-block --eliminate-local-single-store "$@" --eliminate-dead-code-aggressive
    }
    cp "$B/spirv/quant.$T.spv" "$D/$T.built.spv"
    cc $src "$D/$T.raw" -O0 && python3 scripts/spv_nocontract.py "$D/$T.raw" "$D/$T.noopt.spv"
    opt $(passes --no-unroll) "$D/$T.noopt.spv" -o "$D/$T.nounroll.spv"
    opt --merge-return --inline-entry-points-exhaustive --eliminate-dead-functions "$D/$T.noopt.spv" -o "$D/$T.inline.spv"
    cc $src "$D/$T.rawO" -O && python3 scripts/spv_nocontract.py "$D/$T.rawO" "$D/$T.O.spv"
    if grep -q 'if (!has_qw) {' shaders/formats/kquants.glsl && [[ $T == Q?_K ]]; then
      for form in plain weighted; do
        tmp=$(mktemp -d) && cp -r shaders/. "$tmp/"
        [ $form = plain ] && cond=true || cond=false
        sed -i "s/if (!has_qw) {/if ($cond) {/" "$tmp/formats/kquants.glsl"
        cc "$tmp" "$D/$T.raw" -O0 && python3 scripts/spv_nocontract.py "$D/$T.raw" "$D/$T.$form.nc"
        opt $(passes --eliminate-dead-branches) "$D/$T.$form.nc" -o "$D/$T.$form.spv"
        rm -rf "$tmp" "$D/$T.$form.nc"
      done
    fi
    rm -f "$D/$T.raw" "$D/$T.rawO"
    for f in "$D/$T".*.spv; do spirv-val --target-env vulkan1.2 "$f" || echo "invalid: $f"; done
  done
  ls -la "$D"
  exit 0
fi

# run: on the GPU machine, with BUILD_DIR's binaries unpacked
out=${OUT:-out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  echo "| type | form | denormals | result | pipeline failures | checks failed |"
  echo "|---|---|---|---|---:|---:|"
  for f in "$D"/*.spv; do
    base=$(basename "$f" .spv) T=${base%%.*} form=${base#*.}
    for dn in kept flushed; do
      [ $dn = flushed ] && [ $form != built ] && continue
      dis=""; [ $dn = flushed ] && dis=denorm
      log=$(QK_VK_DISABLE=$dis QK_VK_SHADER_FILE="quant/$T=$f" QK_TEST_TYPES=$T timeout 120 \
        "$B/tests/test_gpu_equivalence" vulkan:0 2>&1)
      echo "$log" >"$out/variant-$base-$dn.log"
      res=$(echo "$log" | awk -v t="$T" '$1 == t {print $2}')
      echo "| $T | $form | $dn | ${res:-?} | $(echo "$log" | grep -c 'vkCreateComputePipelines') | $(echo "$log" | grep -c '^FAIL') |"
    done
  done
} | tee "$out/variants.md"
