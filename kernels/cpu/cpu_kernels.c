#include "cpu_kernels.h"

#include "cpu_dispatch.h"
#include "iq_grid.h"
#include "qkern.h"

/* Type id -> CPU reference kernels. Only function pointers live here; sizes are in the
 * runtime's format table. */
#define ENTRY(id, T)                                                                                                   \
    case id: return (qk_cpu_kernel_pair) { qk_cpu_dequant_##T, qk_cpu_quant_##T                                        \
        }

qk_cpu_kernel_pair qk_cpu_kernels(int type_id) {
    switch (type_id) {
        ENTRY(QK_TYPE_F32, f32);
        ENTRY(QK_TYPE_F16, f16);
        ENTRY(QK_TYPE_Q4_0, q4_0);
        ENTRY(QK_TYPE_Q4_1, q4_1);
        ENTRY(QK_TYPE_Q5_0, q5_0);
        ENTRY(QK_TYPE_Q5_1, q5_1);
        ENTRY(QK_TYPE_Q8_0, q8_0);
        ENTRY(QK_TYPE_Q2_K, q2_k);
        ENTRY(QK_TYPE_Q3_K, q3_k);
        ENTRY(QK_TYPE_Q4_K, q4_k);
        ENTRY(QK_TYPE_Q5_K, q5_k);
        ENTRY(QK_TYPE_Q6_K, q6_k);
        ENTRY(QK_TYPE_IQ2_XXS, iq2_xxs);
        ENTRY(QK_TYPE_IQ2_XS, iq2_xs);
        ENTRY(QK_TYPE_IQ3_XXS, iq3_xxs);
        ENTRY(QK_TYPE_IQ1_S, iq1_s);
        ENTRY(QK_TYPE_IQ4_NL, iq4_nl);
        ENTRY(QK_TYPE_IQ3_S, iq3_s);
        ENTRY(QK_TYPE_IQ2_S, iq2_s);
        ENTRY(QK_TYPE_IQ4_XS, iq4_xs);
        ENTRY(QK_TYPE_IQ1_M, iq1_m);
        ENTRY(QK_TYPE_BF16, bf16);
        ENTRY(QK_TYPE_TQ1_0, tq1_0);
        ENTRY(QK_TYPE_TQ2_0, tq2_0);
        ENTRY(QK_TYPE_MXFP4, mxfp4);
    default: return (qk_cpu_kernel_pair){0, 0};
    }
}

int qk_cpu_quant_prepare(int type_id) {
    qk_iq_grid_id grid;
    switch (type_id) {
    case QK_TYPE_IQ2_XXS: grid = QK_IQ_GRID_2BIT_256; break;
    case QK_TYPE_IQ2_XS: grid = QK_IQ_GRID_2BIT_512; break;
    case QK_TYPE_IQ2_S: grid = QK_IQ_GRID_2BIT_1024; break;
    case QK_TYPE_IQ3_XXS: grid = QK_IQ_GRID_3BIT_256; break;
    case QK_TYPE_IQ3_S: grid = QK_IQ_GRID_3BIT_512; break;
    case QK_TYPE_IQ1_S:
    case QK_TYPE_IQ1_M: grid = QK_IQ_GRID_1BIT_2048; break;
    default: return 1;
    }
    return qk_iq_grid_get(grid) != NULL;
}
