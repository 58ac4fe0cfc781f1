/* The CPU backend's MoE matmul: what the moe_plan and moe hooks of backend.h call. */
#ifndef QK_MOE_CPU_H
#define QK_MOE_CPU_H

#include "backend.h"

/* The workspace of the weighted sum: every slot's product ([n_tokens][n_used][m] floats) before
 * the ordered sum. The other two calls write y directly and need none. */
size_t qk_cpu_moe_partial_bytes(const qk_moe_args *a);

/* Runs a validated call on `workers` threads. Every output is one dot product (two for gate_up)
 * of a fixed order, so the result does not depend on the number of workers. */
qk_status qk_cpu_moe(qk_context *ctx, int workers, const qk_moe_args *a);

#endif
