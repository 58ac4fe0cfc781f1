/* qkern bench pp / qkern bench tg / qkern bench [options]: tokens/s through the MoE FFN layers of
 * a model shape or a GGUF file, with llama-bench's options and output fields. */
#ifndef QK_CLI_CMD_BENCH_MOE_H
#define QK_CLI_CMD_BENCH_MOE_H

/* Which tests run: pp only, tg only, or both (llama-bench's default, -p and -n). */
typedef enum bench_moe_mode { BENCH_MOE_PP, BENCH_MOE_TG, BENCH_MOE_BOTH } bench_moe_mode;

/* argv[0] is the subcommand ("pp", "tg", or "bench" for both). Returns the exit code. */
int cmd_bench_moe(int argc, char **argv, bench_moe_mode mode);

#endif
