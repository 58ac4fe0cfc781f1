/* The qkern command line: one function per subcommand. Each returns the process exit code. */
#ifndef QK_CLI_H
#define QK_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "qkern.h"

int cmd_demo(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_state_merge(int argc, char **argv); /* in cmd_quantize.c: the size target's state files */
int cmd_info(int argc, char **argv);
int cmd_types(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* "4096 x 512 x 8": the first n_dims dimensions, innermost first. */
void cli_shape(char *buf, size_t len, int n_dims, const int64_t *ne);

/* Tensors, weights, bytes and bits per weight per type, then the total. */
typedef struct cli_totals cli_totals;
cli_totals *cli_totals_new(void);
void cli_totals_free(cli_totals *t);
void cli_totals_add(cli_totals *t, qk_type type, const int64_t *ne, uint64_t bytes);
void cli_totals_print(const cli_totals *t);

/* Context parameters for `device` (NULL: the best present) and n_threads (0: all cores), with
 * the library's notices (an operation the device cannot do, run on the cpu instead) on stderr. */
qk_context_params cli_context_params(const char *device, int n_threads);

/* --device's list: one context per device of `devices`, comma-separated: "cpu", "cuda:0,cuda:1",
 * "cuda:0,cpu", "cuda:all" / "vulkan:all" (every such device present, software ones left out),
 * or NULL for the best one present. A GPU named twice is refused (each is one worker of its own);
 * the cpu may be repeated, one more worker on the host's cores each time. Returns 1 with
 * *contexts (release with cli_contexts_destroy) and *n >= 1, or prints why not to stderr and
 * returns 0. */
int cli_contexts_create(const char *devices, int n_threads, qk_context ***contexts, size_t *n);
void cli_contexts_destroy(qk_context **contexts, size_t n);

/* Prints "qkern: <what>: <library message>" to stderr and returns 1. */
int cli_fail(const char *what, const qk_context *ctx);
/* The same with a message of the CLI's own (e.g. synth_model_error()). */
int cli_fail_message(const char *what, const char *message);

/* Parses a positive integer option value; returns 0 and prints an error if it is not one. */
int cli_parse_int(const char *opt, const char *value, long long lo, long long hi, long long *out);

#endif
