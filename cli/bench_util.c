/* bench_util.h */
#include "bench_util.h"
#include "cli.h"
#include "synth_model.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
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

/* One whole number at *s, advancing it; 0 if there is none or it overflows. */
static int take_number(const char **s, long long *v) {
    char *end;
    if (**s < '0' || **s > '9') return 0;
    errno = 0;
    *v = strtoll(*s, &end, 10);
    *s = end;
    return errno == 0;
}

int bench_parse_list(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out,
                     size_t cap, size_t *n) {
    const char *p = s;
    do {
        long long first, last, step = 1;
        char op = '+';
        int ok = take_number(&p, &first);
        last = first;
        if (ok && *p == '-') {
            p++;
            ok = take_number(&p, &last);
            if (ok && (*p == '+' || *p == '*')) {
                op = *p++;
                ok = take_number(&p, &step);
            }
        }
        if (!ok || (*p && *p != ',')) {
            fprintf(stderr, "%s: %s: '%s' is not N, FIRST-LAST, FIRST-LAST+STEP or FIRST-LAST*MULT (comma-separated)\n",
                    cmd, opt, s);
            return 0;
        }
        for (long long v = first; v <= last;) {
            if (v < lo || v > hi) {
                fprintf(stderr, "%s: %s: %lld is out of range [%lld, %lld]\n", cmd, opt, v, lo, hi);
                return 0;
            }
            if (*n == cap) {
                fprintf(stderr, "%s: %s: more than %zu values\n", cmd, opt, cap);
                return 0;
            }
            out[(*n)++] = v;
            long long next = step > hi ? hi + 1 : op == '+' ? v + step : v * step; /* no overflow: v <= hi */
            if (next <= v) { /* a step of 0, or a factor of 0 or 1: the range would never end */
                fprintf(stderr, "%s: %s: the range '%s' does not grow\n", cmd, opt, s);
                return 0;
            }
            v = next;
        }
    } while (*p++ == ',');
    return 1;
}

int bench_is_list(const char *s) {
    if (*s < '0' || *s > '9') return 0;
    return s[strspn(s, "0123456789,-+*")] == 0;
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
