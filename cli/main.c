#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qk_git_commit.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"demo", cmd_demo, "generate a small MoE model and quantize it with Q4_K_M (--formats: every type on one tensor)"},
    {"quantize", cmd_quantize, "quantize a GGUF model to a llama.cpp preset (llama-quantize's interface)"},
    {"state-merge", cmd_state_merge, "combine a sharded size target's per-part state files (quantize --shard)"},
    {"info", cmd_info, "show a GGUF file's metadata, tensors and bits per weight"},
    {"types", cmd_types, "list the formats: id, block size, bytes, bits per weight, imatrix use"},
    {"devices", cmd_devices, "list the devices qkern can run on"},
    {"generate", cmd_generate, "write a synthetic Qwen3.5-style MoE model (GGUF) and its imatrix"},
    {"bench", cmd_bench, "time quantizing a whole real model shape on a device, per preset (no disk)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: qkern COMMAND [OPTIONS]   (qkern COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  %-11s %s\n", "version", "print the version, the git commit built from and the backends built in");
}

static void print_notice(void *user, const char *line) {
    (void)user;
    fprintf(stderr, "%s\n", line);
}

qk_context_params cli_context_params(const char *device, int n_threads) {
    qk_context_params p = qk_context_default_params();
    p.device = device, p.n_threads = n_threads;
    p.notice = print_notice;
    return p;
}

int cli_fail(const char *what, const qk_context *ctx) { return cli_fail_message(what, qk_last_error(ctx)); }

int cli_fail_message(const char *what, const char *message) {
    fprintf(stderr, "qkern: %s: %s\n", what, message);
    return 1;
}

int cli_parse_int(const char *opt, const char *value, long long lo, long long hi, long long *out) {
    char *end;
    if (!value) {
        fprintf(stderr, "qkern: %s needs a value\n", opt);
        return 0;
    }
    long long v = strtoll(value, &end, 10);
    if (end == value || *end || v < lo || v > hi) {
        fprintf(stderr, "qkern: %s: '%s' is not a whole number in [%lld, %lld]\n", opt, value, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        if (argc > 2) {
            fprintf(stderr, "usage: qkern version\n");
            return 2;
        }
        printf("qkern %s\ncommit: %s\nbackends: %s\n", qk_version_string(), QK_GIT_COMMIT, QK_BUILD_BACKENDS);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qkern: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
