/* bench_moe_file.h */
#include "bench_moe_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const part_names[MOE_PARTS] = {"ffn_gate_exps",  "ffn_up_exps",  "ffn_down_exps",
                                                  "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"};

int bench_moe_file_is_path(const char *path) {
    size_t n = strlen(path);
    return (n > 5 && !strcmp(path + n - 5, ".gguf")) || !access(path, R_OK);
}

static int shape_is(const qk_gguf_tensor *t, int64_t a, int64_t b, int64_t c) {
    return t->ne[0] == a && t->ne[1] == b && t->ne[2] == c && t->ne[3] == 1;
}

int bench_moe_file_open(const char *cmd, const char *path, bench_moe_file *f) {
    memset(f, 0, sizeof *f);
    if (qk_gguf_open(path, &f->gguf) != QK_OK) {
        fprintf(stderr, "%s: -m %s: %s\n", cmd, path, qk_last_error(NULL));
        return 0;
    }
    if (!qk_gguf_get_string(f->gguf, "general.architecture", f->arch, sizeof f->arch))
        snprintf(f->arch, sizeof f->arch, "unknown");
    char key[128];
    snprintf(key, sizeof key, "%s.block_count", f->arch);
    const int64_t n_blocks = qk_gguf_get_int(f->gguf, key, 0);
    snprintf(key, sizeof key, "%s.expert_used_count", f->arch);
    f->used = qk_gguf_get_int(f->gguf, key, 0);
    f->parts = calloc(n_blocks > 0 ? (size_t)n_blocks : 1, sizeof *f->parts);
    if (!f->parts) {
        fprintf(stderr, "%s: -m %s: out of host memory\n", cmd, path);
        bench_moe_file_close(f);
        return 0;
    }
    const char *why = NULL;
    for (int64_t b = 0; b < n_blocks && !why; b++) {
        const qk_gguf_tensor *t[MOE_PARTS];
        for (int i = 0; i < MOE_PARTS; i++) {
            char name[QK_GGUF_MAX_NAME + 1];
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)b, part_names[i]);
            t[i] = qk_gguf_find_tensor(f->gguf, name);
        }
        if (!t[MOE_GATE]) continue; /* a dense layer */
        if (!f->layers) {
            f->hidden = t[MOE_GATE]->ne[0], f->ffn = t[MOE_GATE]->ne[1], f->experts = t[MOE_GATE]->ne[2];
            f->shexp = t[MOE_SGATE] ? t[MOE_SGATE]->ne[1] : 0;
        }
        const int64_t h = f->hidden, e = f->experts, s = f->shexp;
        int ok = t[MOE_UP] && t[MOE_DOWN] && shape_is(t[MOE_GATE], h, f->ffn, e) && shape_is(t[MOE_UP], h, f->ffn, e) &&
                 shape_is(t[MOE_DOWN], f->ffn, h, e) && t[MOE_UP]->type == t[MOE_GATE]->type;
        if (s)
            ok = ok && t[MOE_SGATE] && t[MOE_SUP] && t[MOE_SDOWN] && shape_is(t[MOE_SGATE], h, s, 1) &&
                 shape_is(t[MOE_SUP], h, s, 1) && shape_is(t[MOE_SDOWN], s, h, 1) &&
                 t[MOE_SUP]->type == t[MOE_SGATE]->type;
        if (!ok) {
            snprintf(key, sizeof key, "blk.%lld: the expert tensors' shapes or gate/up types disagree", (long long)b);
            why = key;
            break;
        }
        const qk_gguf_tensor *const *first = f->parts[0];
        if (f->layers)
            for (int i = 0; i < MOE_PARTS; i++)
                if (t[i] && first[i] && t[i]->type != first[i]->type) {
                    f->other_types++;
                    break;
                }
        memcpy(f->parts[f->layers++], t, sizeof t);
    }
    if (!why && !f->layers) why = "no MoE layers (blk.N.ffn_gate_exps.weight)";
    if (!why && (f->used < 1 || f->used > f->experts)) why = "no usable <arch>.expert_used_count";
    if (why) {
        fprintf(stderr, "%s: -m %s: %s\n", cmd, path, why);
        bench_moe_file_close(f);
        return 0;
    }
    return 1;
}

void bench_moe_file_close(bench_moe_file *f) {
    if (!f) return;
    qk_gguf_close(f->gguf);
    free(f->parts);
    memset(f, 0, sizeof *f);
}
