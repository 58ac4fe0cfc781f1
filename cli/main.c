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

/* Appends device `id` to the list; a GPU already in it is refused. */
static int add_device(const char *devices, char (**ids)[32], size_t *n, size_t *cap, const char *id) {
    for (size_t k = 0; strcmp(id, "cpu") && k < *n; k++)
        if (!strcmp((*ids)[k], id)) {
            fprintf(stderr, "qkern: --device %s: %s is named twice (a device is one worker; only cpu may repeat)\n",
                    devices, id);
            return 0;
        }
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 8;
        char(*grown)[32] = realloc(*ids, c * sizeof *grown);
        if (!grown) return fprintf(stderr, "qkern: --device: out of memory\n"), 0;
        *ids = grown, *cap = c;
    }
    snprintf((*ids)[(*n)++], sizeof **ids, "%s", id);
    return 1;
}

/* "KIND:all": every device of that backend present that is no software emulation. */
static int add_all(const char *devices, const char *kind, size_t kind_len, char (**ids)[32], size_t *n, size_t *cap) {
    size_t found = 0, software = 0;
    for (int i = 0; i < qk_device_count(); i++) {
        qk_device_info info;
        if (qk_device_get(i, &info) != QK_OK || strncmp(info.id, kind, kind_len) || info.id[kind_len] != ':') continue;
        if (qk_device_is_software(i)) {
            software++;
            continue;
        }
        if (!add_device(devices, ids, n, cap, info.id)) return 0;
        found++;
    }
    if (!found) {
        fprintf(stderr, "qkern: --device %s: %.*s:all asks for every %.*s device, and none is present%s\n", devices,
                (int)kind_len, kind, (int)kind_len, kind,
                software ? " (only software ones: name one, e.g. vulkan:0, to use it)" : " (qkern devices lists them)");
        return 0;
    }
    return 1;
}

int cli_contexts_create(const char *devices, int n_threads, qk_context ***contexts, size_t *n) {
    char(*ids)[32] = NULL;
    size_t n_ids = 0, cap = 0;
    int ok = 1;
    *contexts = NULL;
    *n = 0;
    if (!devices || (!strchr(devices, ',') && !strstr(devices, ":all"))) { /* one device, the library's words */
        qk_context **one = calloc(1, sizeof *one);
        qk_context_params cp = cli_context_params(devices, n_threads); /* NULL: the best device present */
        if (!one || qk_context_create(&cp, &one[0]) != QK_OK) {
            free(one);
            cli_fail(devices ? devices : "device", NULL);
            return 0;
        }
        *contexts = one, *n = 1;
        return 1;
    }
    for (const char *p = devices; ok;) {
        const size_t len = strcspn(p, ",");
        char id[32];
        if (!len || len >= sizeof id) {
            fprintf(stderr, "qkern: --device %s: '%.*s' is no device (cpu, cuda:N, vulkan:N, cuda:all, vulkan:all)\n",
                    devices, (int)len, p);
            ok = 0;
            break;
        }
        snprintf(id, sizeof id, "%.*s", (int)len, p);
        const char *colon = strchr(id, ':');
        if (colon && !strcmp(colon, ":all"))
            ok = add_all(devices, id, (size_t)(colon - id), &ids, &n_ids, &cap);
        else {
            if (!strcmp(id, "cuda") || !strcmp(id, "vulkan")) strcat(id, ":0"); /* as the library reads them */
            ok = add_device(devices, &ids, &n_ids, &cap, id);
        }
        if (!p[len]) break;
        p += len + 1;
    }
    qk_context **ctx = ok ? calloc(n_ids, sizeof *ctx) : NULL;
    if (ok && !ctx) {
        fprintf(stderr, "qkern: --device: out of memory\n");
        ok = 0;
    }
    for (size_t k = 0; ok && k < n_ids; k++) {
        qk_context_params cp = cli_context_params(ids[k], n_threads);
        if (qk_context_create(&cp, &ctx[k]) != QK_OK) {
            char what[300];
            snprintf(what, sizeof what, "--device %s", devices);
            cli_fail(what, NULL);
            ok = 0;
        }
    }
    if (ok) {
        *contexts = ctx, *n = n_ids;
    } else if (ctx) {
        cli_contexts_destroy(ctx, n_ids);
    }
    free(ids);
    return ok;
}

void cli_contexts_destroy(qk_context **contexts, size_t n) {
    for (size_t k = 0; contexts && k < n; k++) qk_context_destroy(contexts[k]);
    free(contexts);
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
