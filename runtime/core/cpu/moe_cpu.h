/* The CPU backend's MoE matmul: the moe_workspace and moe hooks of backend.h. */
#ifndef QK_MOE_CPU_H
#define QK_MOE_CPU_H

#include "backend.h"

/* The weighted sum keeps every slot's product there ([n_tokens][n_used][m] floats) before the
 * ordered sum; the other two calls write y directly and need nothing. */
size_t qk_cpu_moe_workspace(const qk_moe_args *a);

/* Runs a validated call on `workers` threads. Every output is one dot product (two for gate_up)
 * of a fixed order, so the result does not depend on the number of workers. */
qk_status qk_cpu_moe(qk_context *ctx, int workers, const qk_moe_args *a);

#endif
