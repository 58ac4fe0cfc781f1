/* What the MoE matmul shaders share (moe_vec.comp, moe_tiled.comp): the two weight tensors
 * behind one QK_SRC_WORD, the format code, activations of the three float types, and SiLU.
 *
 * The includer declares the storage buffers w_w (binding 1: the weights, or the gate of
 * gate/up), wu_w (binding 2: the up projection; the host binds w there for the other calls),
 * x_w (binding 3) and out_w (its output, as words), and a push-constant block `pc` with
 * qk_off[] and x_type, then includes this file.
 *
 * Weights are bound as a window of whole rows (runtime/vulkan/moe_vulkan.c): a tensor larger
 * than the device's storage-buffer range is covered by several dispatches, each binding experts
 * [e_lo, e_hi) and of them rows [r_lo, r_hi) (all rows when it spans several experts), so row
 * r of expert e lies moe_row_offset(...) bytes into the binding. */
#ifndef QK_MOE_GLSL
#define QK_MOE_GLSL

/* Which of the two weight tensors QK_SRC_WORD reads. Every decode sits in a branch or an
 * unrolled loop with a constant value of it, so the optimizer folds the selection away. */
uint qk_wsel = 0u;
#define QK_SRC_WORD(i) (qk_wsel == 0u ? w_w[i] : wu_w[i])
#define QK_DST_WORDS   out_w

#include "common.glsl"
#include "qk_format.glsl"
#include "io.glsl"

#define MOE_NAN uintBitsToFloat(0x7fc00000u)
/* parts (32 values) per block */
#define MOE_PPB (uint(QK_BLOCK_ELEMS) / 32u)

float moe_silu(float g) { return g / (1.0 + exp(-g)); }

/* Value i of the activation row that starts at byte `row` of binding 3 (F32 rows aligned to 4
 * bytes, F16/BF16 rows to 2: the host checks). */
float moe_load_x(uint row, uint i) {
    if (pc.x_type == QK_ID_F32) return uintBitsToFloat(x_w[(row >> 2) + i]);
    const uint off = row + 2u * i, h = (x_w[off >> 2] >> ((off & 2u) * 8u)) & 0xffffu;
    return pc.x_type == QK_ID_F16 ? qk_fp16_to_f32(h) : qk_bf16_to_f32(h);
}

uint moe_row_offset(uint e, uint r, uint e_lo, uint r_lo, uint m, uint row_bytes) {
    return ((e - e_lo) * m + (r - r_lo)) * row_bytes;
}

/* Values 32*gp..32*gp+31 of the row at byte `row` of the selected tensor (gp counts parts
 * from the row's start; `k` is the row length, for the float types' partial last part). */
void moe_decode(uint row, uint gp, uint k, out float v[32]) {
#ifdef QK_FLOAT_WEIGHTS
    if ((k & 31u) != 0u && gp == k / 32u) {
        qk_dequant_tail(row + gp * uint(QK_BLOCK_BYTES), k & 31u, v);
        return;
    }
#endif
    qk_dequant_part(row + (gp / MOE_PPB) * uint(QK_BLOCK_BYTES), gp % MOE_PPB, v);
}

#endif
