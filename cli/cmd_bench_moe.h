/* qkern bench pp / qkern bench tg: tokens/s through the MoE FFN layers of a model shape. */
#ifndef QK_CLI_CMD_BENCH_MOE_H
#define QK_CLI_CMD_BENCH_MOE_H

/* argv[0] is "pp" or "tg"; tg is 1 for token generation. Returns the exit code. */
int cmd_bench_moe(int argc, char **argv, int tg);

#endif
