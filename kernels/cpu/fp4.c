/* MXFP4 and NVFP4 (FORMATS.md §7) over whole rows; the block code is in fp4_block.h. */
#include "cpu_kernels.h"
#include "fp4_block.h"

QK_CPU_ROWS_WITHOUT_IMATRIX(mxfp4, QKC_QK_MXFP4, QK_BYTES_mxfp4)
QK_CPU_ROWS_WITHOUT_IMATRIX(nvfp4, QKC_QK_NVFP4, QK_BYTES_nvfp4)
