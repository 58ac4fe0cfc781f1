/* qkern generate: writes the synthetic Qwen3.5-style MoE model (synth_model.h) and, on request,
 * its importance matrix: inputs for the demo, the tests and timing runs without a download. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "synth_model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qkern generate [--size tiny|small|medium] [--seed N] [--type bf16|f16] [--imatrix FILE [--means]]\n"
            "                      OUT.gguf\n"
            "  Writes a synthetic hybrid MoE model with llama.cpp's " SYNTH_MODEL_ARCH " tensor names, shapes and\n"
            "  metadata (linear-attention and full-attention layers, routed and shared experts, a small\n"
            "  byte-level BPE tokenizer) and weights drawn with realistic statistics. The same seed gives\n"
            "  the same bytes.\n"
            "  --size     tiny (n_embd 256, 8 experts), small (default: 512, 16 experts) or medium\n"
            "             (1024, 8 layers, 32 experts)\n"
            "  --seed     generator seed (default 42)\n"
            "  --type     type of the weight matrices (default bf16); norms, router and conv stay f32\n"
            "  --imatrix  also write a matching importance matrix (llama-imatrix GGUF format)\n"
            "  --means    the importance matrix also holds mean activations (<name>.in_sum): a few\n"
            "             channels offset, as real models' massive activations are; a size target\n"
            "             (qkern quantize --target-bpw) then adds the error's bias term\n");
}

int cmd_generate(int argc, char **argv) {
    const char *size = "small", *type = "bf16", *imatrix = NULL, *out = NULL;
    long long seed = 42;
    int means = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--means")) {
            means = 1;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_int(a, v, 0, INT64_MAX, &seed)) return 2;
            i++;
        } else if ((!strcmp(a, "--size") || !strcmp(a, "--type") || !strcmp(a, "--imatrix")) && v) {
            *(!strcmp(a, "--size") ? &size : !strcmp(a, "--type") ? &type : &imatrix) = v;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "qkern generate: unknown or incomplete option '%s' (qkern generate --help)\n", a);
            return 2;
        } else if (out) {
            fprintf(stderr, "qkern generate: more than one output file ('%s', '%s')\n", out, a);
            return 2;
        } else {
            out = a;
        }
    }
    if (!out) {
        usage(stderr);
        return 2;
    }
    synth_model_params p;
    if (synth_model_params_for_size(size, &p) != QK_OK) {
        fprintf(stderr, "qkern generate: --size: %s\n", synth_model_error());
        return 2;
    }
    if (!strcasecmp(type, "bf16"))
        p.type = QK_TYPE_BF16;
    else if (!strcasecmp(type, "f16"))
        p.type = QK_TYPE_F16;
    else {
        fprintf(stderr, "qkern generate: --type must be bf16 or f16, not '%s'\n", type);
        return 2;
    }
    if (means && !imatrix) {
        fprintf(stderr, "qkern generate: --means needs --imatrix FILE (the means are written into it)\n");
        return 2;
    }
    if (imatrix && !strcmp(imatrix, out)) {
        fprintf(stderr, "qkern generate: the model and the imatrix cannot both be '%s'\n", out);
        return 2;
    }
    p.seed = (uint64_t)seed;
    p.means = means;
    synth_model_summary sum;
    if (synth_model_write(&p, out, imatrix, &sum) != QK_OK) return cli_fail_message("generate", synth_model_error());
    printf("%s: %s %s seed %lld: %llu tensors, %llu params, %llu bytes", out, size, type, seed,
           (unsigned long long)sum.tensors, (unsigned long long)sum.params, (unsigned long long)sum.bytes);
    if (imatrix)
        printf("; imatrix %s: %llu entries%s", imatrix, (unsigned long long)sum.imatrix_entries,
               means ? " with means" : "");
    printf("\n");
    return 0;
}
