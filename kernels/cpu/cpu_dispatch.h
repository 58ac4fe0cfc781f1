/* Lookup of the CPU reference kernels by ggml type id. */
#ifndef QK_CPU_DISPATCH_H
#define QK_CPU_DISPATCH_H

#include "cpu_kernels.h"

typedef struct qk_cpu_kernel_pair {
    qk_cpu_dequant_fn dequant;
    qk_cpu_quant_fn quant;
} qk_cpu_kernel_pair;

/* Both NULL for an id without CPU kernels. */
qk_cpu_kernel_pair qk_cpu_kernels(int type_id);

#endif
