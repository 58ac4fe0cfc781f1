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

/* Builds the shared tables a type's quantizer needs (the IQ lattice maps) ahead of the
 * parallel loop, so an allocation failure is reported instead of hit inside a kernel.
 * Returns 0 if memory ran out. */
int qk_cpu_quant_prepare(int type_id);

#endif
