/* qkern demo, the built-in default job of the README: generates a small Qwen3.5-style MoE
 * model and its importance matrix, quantizes it with a preset (Q4_K_M) through `qkern
 * quantize`, and prints the summary. `qkern demo --formats` instead quantizes one generated
 * weight matrix (Gaussian rows of varied scale, outlier columns, exact zeros) with every
 * type and prints the error and speed of each. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sys/stat.h>

#include "cli.h"
#include "synth_model.h"

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double u01(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) * 0x1.0p-53; }
static double gauss(uint64_t *s) {
    double u1 = u01(s), u2 = u01(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void generate(uint64_t seed, int64_t rows, int64_t cols, float *x, float *im) {
    uint64_t s = seed;
    for (int64_t c = 0; c < cols; c++) im[c] = (float)exp(1.5 * gauss(&s));
    for (int64_t r = 0; r < rows; r++) {
        double scale = 0.02 * exp2(2.0 * u01(&s) - 1.0);
        for (int64_t c = 0; c < cols; c++) {
            double v = scale * gauss(&s);
            if (c % 100 == 7) v *= 8.0; /* outlier columns, as real attention/FFN weights have */
            if (splitmix(&s) % 64 == 0) v = 0.0;
            x[r * cols + c] = (float)v;
        }
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: qkern demo [--dir DIR] [--size tiny|small|medium] [--preset P] [--device D]\n"
            "  Generates a small Qwen3.5-style MoE model and its imatrix in DIR (default qkern-demo),\n"
            "  quantizes it with preset P (default Q4_K_M) and prints the summary.\n"
            "usage: qkern demo --formats [--rows N] [--cols N] [--threads N] [--device D] [--types T,...] [--seed S]\n"
            "  Quantizes a generated rows x cols tensor (default 64 x 4096) with every quantized type\n"
            "  (or the listed ones), with the generated importance matrix where the type uses one,\n"
            "  and prints per type: bits per weight, relative and importance-weighted RMS error,\n"
            "  and quantize/dequantize speed in M weights/s.\n");
}

static int wanted(const char *list, const char *name) {
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncasecmp(p, name, n)) return 1;
        p += len + (e != NULL);
    }
    return 0;
}

/* generate, then `qkern quantize --imatrix IM MODEL OUT PRESET`, then `qkern info --summary OUT` */
static int model_demo(int argc, char **argv) {
    const char *dir = "qkern-demo", *size = "small", *preset = "Q4_K_M", *device = NULL;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v || (strcmp(a, "--dir") && strcmp(a, "--size") && strcmp(a, "--preset") && strcmp(a, "--device"))) {
            fprintf(stderr, "qkern demo: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        }
        *(a[2] == 'd' ? (a[3] == 'i' ? &dir : &device) : a[2] == 's' ? &size : &preset) = v;
    }
    synth_model_params sp;
    if (synth_model_params_for_size(size, &sp) != QK_OK) return cli_fail_message("demo", synth_model_error());
    sp.seed = 42;
    char model[4096], imatrix[4096], out[4096];
    snprintf(model, sizeof model, "%s/model-%s-bf16.gguf", dir, size);
    snprintf(imatrix, sizeof imatrix, "%s/model-%s.imatrix.gguf", dir, size);
    snprintf(out, sizeof out, "%s/model-%s-%s.gguf", dir, size, preset);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "qkern demo: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    synth_model_summary sum;
    if (synth_model_write(&sp, model, imatrix, &sum) != QK_OK) return cli_fail_message("demo", synth_model_error());
    printf("generated %s: %llu tensors, %.1f M parameters, %.1f MiB, and %s (%llu entries)\n", model,
           (unsigned long long)sum.tensors, (double)sum.params / 1e6, (double)sum.bytes / 1048576.0, imatrix,
           (unsigned long long)sum.imatrix_entries);
    printf("$ qkern quantize --imatrix %s %s %s %s\n", imatrix, model, out, preset);
    fflush(stdout);
    char *qargv[] = {"quantize", "--imatrix", imatrix, model, out, (char *)preset, NULL, NULL, NULL};
    int qargc = 6;
    if (device) qargv[qargc++] = "--device", qargv[qargc++] = (char *)device;
    int rc = cmd_quantize(qargc, qargv);
    if (rc) return rc;
    printf("$ qkern info --summary %s\n", out);
    fflush(stdout);
    char *iargv[] = {"info", "--summary", out, NULL};
    return cmd_info(3, iargv);
}

int cmd_demo(int argc, char **argv) {
    int formats = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--formats")) {
            formats = 1;
            for (int k = i; k < argc; k++) argv[k] = argv[k + 1];
            argc--;
            break;
        }
    if (!formats) {
        for (int i = 1; i < argc; i++)
            if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(), 0;
        return model_demo(argc, argv);
    }
    long long rows = 64, cols = 4096, threads = 0, seed = 42;
    const char *device = NULL, *types = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--rows"))
            ok = cli_parse_int(a, v, 1, 1 << 20, &rows), i++;
        else if (!strcmp(a, "--cols"))
            ok = cli_parse_int(a, v, 256, 1 << 20, &cols), i++;
        else if (!strcmp(a, "--threads"))
            ok = cli_parse_int(a, v, 0, 1024, &threads), i++;
        else if (!strcmp(a, "--seed"))
            ok = cli_parse_int(a, v, 0, INT64_MAX, &seed), i++;
        else if (!strcmp(a, "--device") && v)
            device = v, i++;
        else if (!strcmp(a, "--types") && v)
            types = v, i++;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return usage(), 0;
        else {
            fprintf(stderr, "qkern demo: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        }
        if (!ok) return 2;
    }
    if (cols % 256) {
        fprintf(stderr, "qkern demo: --cols must be a multiple of 256 (the K-quant block size)\n");
        return 2;
    }
    if (types)
        for (const char *p = types; *p;) {
            const char *e = strchr(p, ',');
            char name[32];
            size_t len = e ? (size_t)(e - p) : strlen(p);
            snprintf(name, sizeof name, "%.*s", (int)(len < 31 ? len : 31), p);
            qk_type t;
            if (qk_type_from_name(name, &t) != QK_OK) {
                fprintf(stderr, "qkern demo: unknown type '%s' (see qkern types)\n", name);
                return 2;
            }
            p += len + (e != NULL);
        }

    qk_context_params p = cli_context_params(device, (int)threads);
    qk_context *ctx;
    if (qk_context_create(&p, &ctx) != QK_OK) return cli_fail("cannot open the device", NULL);
    qk_device_info dev;
    qk_context_device(ctx, &dev);

    const size_t n = (size_t)(rows * cols);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *im = malloc((size_t)cols * sizeof(float));
    uint8_t *q = malloc(n * sizeof(float));
    if (!x || !y || !im || !q) {
        fprintf(stderr, "qkern demo: out of memory for a %lld x %lld tensor\n", rows, cols);
        free(x), free(y), free(im), free(q);
        qk_context_destroy(ctx);
        return 1;
    }
    generate((uint64_t)seed, rows, cols, x, im);
    printf("qkern %s demo: %lld x %lld generated weights (seed %lld) on %s (%s)\n\n", qk_version_string(), rows, cols,
           seed, dev.id, dev.name);
    printf("| type    |    bpw | imatrix | rel. RMSE | weighted RMSE | quantize Mw/s | dequantize Mw/s |\n");
    printf("|---------|-------:|---------|----------:|--------------:|--------------:|----------------:|\n");
    int rc = 0;
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(i), &ti);
        if (!ti.is_quantized || !wanted(types, ti.name)) continue;
        qk_quantize_desc qd = qk_quantize_default_desc();
        qd.type = ti.type, qd.rows = rows, qd.cols = cols;
        qd.src = qk_host(x, n * sizeof(float));
        qd.dst = qk_host(q, n * sizeof(float));
        if (ti.uses_imatrix) qd.imatrix = im, qd.imatrix_len = cols;
        /* one untimed pass first: page faults and the IQ lattice tables stay out of the rate */
        if (qk_quantize(ctx, &qd) != QK_OK) {
            rc = cli_fail(ti.name, ctx);
            continue;
        }
        double t0 = now();
        if (qk_quantize(ctx, &qd) != QK_OK) {
            rc = cli_fail(ti.name, ctx);
            continue;
        }
        const double t1 = now();
        qk_dequantize_desc dd = qk_dequantize_default_desc();
        dd.type = ti.type, dd.rows = rows, dd.cols = cols;
        dd.src = qk_host(q, n * sizeof(float));
        dd.dst = qk_host(y, n * sizeof(float));
        if (qk_dequantize(ctx, &dd) != QK_OK) {
            rc = cli_fail(ti.name, ctx);
            continue;
        }
        const double t2 = now(); /* the first, untimed dequantize warms dst */
        if (qk_dequantize(ctx, &dd) != QK_OK) {
            rc = cli_fail(ti.name, ctx);
            continue;
        }
        double t3 = now();
        double se = 0, sx = 0, wse = 0, ws = 0;
        for (size_t k = 0; k < n; k++) {
            double e = (double)y[k] - x[k], w = im[k % (size_t)cols];
            se += e * e, sx += (double)x[k] * x[k], wse += w * e * e, ws += w;
        }
        printf("| %-7s | %6.4f | %-7s | %9.5f | %13.6f | %13.2f | %15.1f |\n", ti.name, ti.bits_per_weight,
               ti.uses_imatrix ? "yes" : "-", sqrt(se / sx), sqrt(wse / ws), n / (t1 - t0) * 1e-6,
               n / (t3 - t2) * 1e-6);
        fflush(stdout);
    }
    free(x), free(y), free(im), free(q);
    qk_context_destroy(ctx);
    return rc;
}
