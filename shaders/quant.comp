#version 450
/* Quantize: one invocation encodes one block with the CPU reference's encoder (the format
 * file's qk_quant_block), from F32/F16/BF16 values, with the importance weights of its row's
 * group when an imatrix is given. Blocks lie back to back (rows of whole blocks) and need not
 * align with words, so they are stored with qk_store_bytes. */
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 1) readonly buffer Src { uint src_w[]; };
layout(std430, set = 0, binding = 2) buffer Dst { uint dst_w[]; };
layout(std430, set = 0, binding = 3) readonly buffer Imatrix { float im[]; };
layout(std430, set = 0, binding = 4) readonly buffer RowStat { float row_sigma2[]; };
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n_blocks;       /* blocks of this dispatch */
    uint blocks_per_row;
    uint cols;
    uint src_type;
    uint row0;           /* the tensor row of this dispatch's first row */
    uint rows_per_mat;   /* rows sharing one imatrix vector */
    uint has_imatrix;
} pc;
#define QK_SRC_WORD(i) src_w[i]
#define QK_DST_WORDS dst_w
#include "common.glsl"
#include "qk_format.glsl"
#include "io.glsl"

void main() {
    uint b = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
    if (b >= pc.n_blocks) return;
    uint row = b / pc.blocks_per_row, col0 = (b % pc.blocks_per_row) * QK_BLOCK_ELEMS;
    float x[QK_BLOCK_ELEMS], qw[QK_BLOCK_ELEMS];
    uint first = b * QK_BLOCK_ELEMS;
    for (uint i = 0u; i < QK_BLOCK_ELEMS; i++) x[i] = qk_load_value(pc.src_type, pc.qk_off[1], first + i);
    bool has_qw = pc.has_imatrix != 0u;
    uint im0 = pc.qk_off[3] / 4u + ((pc.row0 + row) / max(pc.rows_per_mat, 1u)) * pc.cols + col0;
    for (uint i = 0u; i < QK_BLOCK_ELEMS; i++) qw[i] = has_qw ? im[im0 + i] : 0.0;
    float sigma2 = 0.0;
#ifdef QK_NEEDS_ROW_SIGMA2
    if (has_qw) sigma2 = row_sigma2[pc.qk_off[4] / 4u + row];
#endif
    uint blk[QK_BLOCK_WORDS];
    for (uint i = 0u; i < QK_BLOCK_WORDS; i++) blk[i] = 0u;
    qk_quant_block(x, qw, has_qw, sigma2, blk);
    uint off = pc.qk_off[2] + b * QK_BLOCK_BYTES;
    QK_STORE_SPAN(off, QK_BLOCK_BYTES, blk)
}
