/* What the `qkern bench` subcommands share: seeded random numbers, the clock, the date, JSON
 * strings and their common option values. */
#ifndef QK_CLI_BENCH_UTIL_H
#define QK_CLI_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "qkern.h"

/* splitmix64: a seeded stream, the same numbers on every machine. */
uint64_t bench_next_u64(uint64_t *s);
/* A standard normal value (Box-Muller). */
double bench_gauss(uint64_t *s);
/* Monotonic seconds. */
double bench_now(void);
/* The current UTC time as "2026-11-23T07:21:33Z". */
void bench_date(char *buf, size_t len);
/* s as a JSON string, quoted and escaped. */
void bench_json_string(FILE *f, const char *s);
/* 1 if fmt is md, csv or json; otherwise prints why on stderr (prefixed with cmd) and returns 0. */
int bench_check_format(const char *cmd, const char *fmt);
/* Appends the values of a llama-bench list to out[*n] (capacity cap): items separated by ',',
 * each N, FIRST-LAST (step 1), FIRST-LAST+STEP or FIRST-LAST*MULT, all whole numbers in
 * [lo, hi]. Returns 0 and prints why on stderr (prefixed with cmd and opt) on a bad item, a
 * range that does not grow, or more than cap values. */
int bench_parse_list(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out,
                     size_t cap, size_t *n);
/* 1 if s is written in that syntax (digits and , - + * only, a digit first): tells a thread
 * count list from the type list that `-t` used to take. */
int bench_is_list(const char *s);
/* The named model shapes (synth_model.h), comma-separated, for a usage text. */
void bench_print_shape_names(FILE *f);
/* A context on `device` (NULL: the best present) that is opened by its name, so that an
 * operation the device cannot do is refused (QK_ERR_UNSUPPORTED) instead of run on the cpu:
 * a benchmark times the device it reports, never a fallback. *dev describes it. */
qk_status bench_open_device(const char *device, int n_threads, qk_context **ctx, qk_device_info *dev);

#endif
