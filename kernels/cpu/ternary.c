/* Ternary and 1/2-bit: TQ1_0, TQ2_0, Q1_0 and Q2_0 (FORMATS.md §8) over whole rows; the block
 * code is in ternary_block.h. */
#include "cpu_kernels.h"
#include "ternary_block.h"

QK_CPU_ROWS_WITHOUT_IMATRIX(tq1_0, QKC_QK_K, QK_BYTES_tq1_0)
QK_CPU_ROWS_WITHOUT_IMATRIX(tq2_0, QKC_QK_K, QK_BYTES_tq2_0)
QK_CPU_ROWS_WITHOUT_IMATRIX(q1_0, QKC_QK1_0, QK_BYTES_q1_0)
QK_CPU_ROWS_WITHOUT_IMATRIX(q2_0, QKC_QK2_0, QK_BYTES_q2_0)
