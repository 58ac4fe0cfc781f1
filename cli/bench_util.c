/* bench_util.h */
#include "bench_util.h"
#include "cli.h"
#include "synth_model.h"

#include <math.h>
#include <string.h>
#include <time.h>

uint64_t bench_next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double bench_gauss(uint64_t *s) {
    double u1 = ((double)(bench_next_u64(s) >> 11) + 0.5) * 0x1.0p-53,
           u2 = (double)(bench_next_u64(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void bench_date(char *buf, size_t len) {
    time_t tt = time(NULL);
    struct tm tm;
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
}

void bench_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int bench_check_format(const char *cmd, const char *fmt) {
    if (!strcmp(fmt, "md") || !strcmp(fmt, "csv") || !strcmp(fmt, "json")) return 1;
    fprintf(stderr, "%s: --format must be md, csv or json, not '%s'\n", cmd, fmt);
    return 0;
}

void bench_print_shape_names(FILE *f) {
    size_t n;
    const synth_model_shape *s = synth_model_shapes(&n);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%s", i ? ", " : "", s[i].name);
}

qk_status bench_open_device(const char *device, int n_threads, qk_context **ctx, qk_device_info *dev) {
    qk_context_params cp = cli_context_params(device, n_threads);
    qk_status st = qk_context_create(&cp, ctx);
    if (st == QK_OK) st = qk_context_device(*ctx, dev);
    if (st != QK_OK || device) return st;
    /* chosen automatically: open the same device again by its name */
    qk_context_destroy(*ctx);
    cp.device = dev->id;
    return qk_context_create(&cp, ctx);
}
