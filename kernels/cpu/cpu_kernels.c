#include "cpu_kernels.h"

#include "cpu_dispatch.h"
#include "fp4_block.h"
#include "iq_grid.h"
#include "iquants_block.h"
#include "kquants_block.h"
#include "legacy_block.h"
#include "qkern.h"
#include "ternary_block.h"

/* Type id -> CPU reference kernels: one case for every row of the format table with a cpu
 * column of Y. Only function pointers live here; sizes are in the runtime's format table. */
#define ENTRY(NAME, codec, id, elems, bytes, family, source, imatrix, cpu, ...)                                        \
    QK_IF_##cpu(case id : return (qk_cpu_kernel_pair){qk_cpu_dequant_##codec, qk_cpu_quant_##codec};)

qk_cpu_kernel_pair qk_cpu_kernels(int type_id) {
    switch (type_id) {
        QK_FORMATS(ENTRY)
    default: return (qk_cpu_kernel_pair){0, 0};
    }
}
#undef ENTRY

/* Every row's block bytes are its layout's: the table and the block code agree, or nothing
 * builds. */
#define CHECK_BYTES(NAME, codec, id, elems, bytes, ...)                                                                \
    _Static_assert(QK_BYTES_##codec == (bytes), #NAME ": the format table's block bytes differ from its layout");
QK_FORMATS(CHECK_BYTES)
#undef CHECK_BYTES

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
