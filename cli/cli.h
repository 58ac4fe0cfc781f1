/* The qkern command line: one function per subcommand. Each returns the process exit code. */
#ifndef QK_CLI_H
#define QK_CLI_H

#include "qkern.h"

int cmd_demo(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_types(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Prints "qkern: <what>: <library message>" to stderr and returns 1. */
int cli_fail(const char *what, const qk_context *ctx);

/* Parses a positive integer option value; returns 0 and prints an error if it is not one. */
int cli_parse_int(const char *opt, const char *value, long long lo, long long hi, long long *out);

#endif
