/* The MoE FFN layers of a GGUF model file, for qkern bench pp / tg -m FILE.gguf: their shapes,
 * expert counts and weight types as the file has them, and the bytes of each expert tensor. */
#ifndef QK_CLI_BENCH_MOE_FILE_H
#define QK_CLI_BENCH_MOE_FILE_H

#include <stdint.h>

#include "qkern.h"

/* The tensors of one MoE layer, in this order; a model without a shared expert has no S*. */
enum { MOE_GATE, MOE_UP, MOE_DOWN, MOE_SGATE, MOE_SUP, MOE_SDOWN, MOE_PARTS };

typedef struct bench_moe_file {
    qk_gguf *gguf;
    char arch[64];
    int64_t hidden, experts, used, ffn, shexp, layers;
    /* per MoE layer (blk.N with ffn_gate_exps), its tensors; NULL where absent */
    const qk_gguf_tensor *(*parts)[MOE_PARTS];
    int64_t other_types; /* MoE layers whose tensor types differ from the first one's */
} bench_moe_file;

/* 1 if path names a GGUF file (ends in .gguf, or is a readable file). */
int bench_moe_file_is_path(const char *path);
/* Opens path and finds its MoE layers (blk.N.ffn_{gate,up,down}_exps.weight, and the shared
 * expert's ffn_{gate,up,down}_shexp.weight where present). 0 and one line on stderr (prefixed
 * with cmd) if the file cannot be read or has no such layers, or their shapes disagree. */
int bench_moe_file_open(const char *cmd, const char *path, bench_moe_file *f);
/* NULL-safe; the tensors' data dies with it. */
void bench_moe_file_close(bench_moe_file *f);

#endif
