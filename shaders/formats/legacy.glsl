/* Legacy 32-element blocks: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (FORMATS.md §4, §9.6), a GLSL
 * port of kernels/cpu/legacy_block.h. One part per block (p = 0).
 *
 * Layouts (byte offsets): d fp16 at 0, then [m fp16], [qh u32 (5-bit types)], then 16 bytes of
 * half-split nibbles (value j in the low nibble of byte j, value j+16 in its high nibble);
 * Q8_0: d, then 32 int8 codes. Blocks are packed, so they are read with qk_rd32 at any
 * alignment. */
#ifndef QK_LEGACY_GLSL
#define QK_LEGACY_GLSL

#if defined(QK_TYPE_Q4_1) || defined(QK_TYPE_Q5_1)
#define QK_QKX_SEARCH_EXACT 1 /* qk_qkx_search_exact, for blocks of tiny values */
#endif
#include "quant_search.glsl"

#if !defined(QK_TYPE_Q8_0)
/* The 4-/5-bit codec, parameters of qk_legacy_layout. */
#if defined(QK_TYPE_Q4_0)
#define QK_LEG_BITS    4
#define QK_LEG_HAS_MIN 0
#define QK_LEG_OFF_QH  0
#define QK_LEG_OFF_QS  2
#elif defined(QK_TYPE_Q4_1)
#define QK_LEG_BITS    4
#define QK_LEG_HAS_MIN 1
#define QK_LEG_OFF_QH  0
#define QK_LEG_OFF_QS  4
#elif defined(QK_TYPE_Q5_0)
#define QK_LEG_BITS    5
#define QK_LEG_HAS_MIN 0
#define QK_LEG_OFF_QH  2
#define QK_LEG_OFF_QS  6
#elif defined(QK_TYPE_Q5_1)
#define QK_LEG_BITS    5
#define QK_LEG_HAS_MIN 1
#define QK_LEG_OFF_QH  4
#define QK_LEG_OFF_QS  8
#else
#error "legacy.glsl: not a legacy type"
#endif
#define QK_LEG_OFF_M 2 /* fp16 m, if QK_LEG_HAS_MIN */
/* The imatrix path weighs by qw*sqrt(sigma2 + x^2), sigma2 the row's mean square. */
#define QK_NEEDS_ROW_SIGMA2 1
#endif

/* ---- dequantize ------------------------------------------------------------------------ */

#if defined(QK_TYPE_Q8_0)

void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base);
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        uint w = qk_rd32(base + 2u + 4u * j);
        [[unroll]] for (uint k = 0u; k < 4u; k++) v[4u * j + k] = float(int(w << (24u - 8u * k)) >> 24) * d;
    }
}

#else

void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base);
#if QK_LEG_BITS == 5
    const uint qh = qk_rd32(base + uint(QK_LEG_OFF_QH));
#else
    const uint qh = 0u;
#endif
#if QK_LEG_HAS_MIN
    const float m = qk_rdh(base + uint(QK_LEG_OFF_M));
#endif
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint w = qk_rd32(base + uint(QK_LEG_OFF_QS) + 4u * j);
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            uint i = 4u * j + k;
            uint lo = ((w >> (8u * k)) & 0x0fu) | (((qh >> i) & 1u) << 4);
            uint hi = ((w >> (8u * k + 4u)) & 0x0fu) | (((qh >> (i + 16u)) & 1u) << 4);
#if QK_LEG_HAS_MIN
            precise float vl = float(lo) * d + m; /* q*d + m, rounded twice as the reference */
            precise float vh = float(hi) * d + m;
            v[i] = vl;
            v[i + 16u] = vh;
#else
            /* (q - offset) * d, not q*d - offset*d: the sign of a zero result matters */
            v[i] = float(int(lo) - (1 << (QK_LEG_BITS - 1))) * d;
            v[i + 16u] = float(int(hi) - (1 << (QK_LEG_BITS - 1))) * d;
#endif
        }
    }
}

#endif

/* ---- quantize -------------------------------------------------------------------------- */

#if defined(QK_TYPE_Q8_0)

/* roundf (ties away from zero), exact for |v| < 2^23; NaN and out-of-range values follow x86's
 * conversion as the reference's qk_round_away does (int arithmetic wraps as it does there). */
int qk_round_away(float v) {
    const float a = abs(v);
    int i = qk_trunc_int(a);
    if (a - float(i) >= 0.5) i++;
    return v < 0.0 ? -i : i;
}

/* The imatrix has no use here: ggml has a single Q8_0 encoder. */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float amax = 0.0;
    for (int i = 0; i < 32; i++) amax = qk_lt(amax, qk_absf(x[i])) ? qk_absf(x[i]) : amax;
    const float d = qk_div(amax, 127.0);
    const float id = !qk_eq(d, 0.0) ? qk_div(1.0, d) : 0.0;
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
    for (int i = 0; i < 32; i++) qk_blk_or8(blk, uint(2 + i), uint(qk_round_away(qk_mul(x[i], id))) & 0xffu);
}

#else

void qk_legacy_pack_codes(in int q[QK_QS_MAX], inout uint blk[QK_BLOCK_WORDS]) {
    for (int j = 0; j < 16; j++)
        qk_blk_or8(blk, uint(QK_LEG_OFF_QS + j), uint((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4)));
#if QK_LEG_BITS == 5
    uint qh = 0u;
    for (int i = 0; i < 32; i++) qh |= uint((q[i] >> 4) & 1) << uint(i);
    qk_blk_set32(blk, uint(QK_LEG_OFF_QH), qh);
#endif
}

/* The reference encoders round with a C conversion of v + 0.5 (v >= 0): truncation. */
int qk_legacy_trunc_code(float v, int top) { return qk_clampi(qk_trunc_int(v), 0, top); }

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    const int top = (1 << QK_LEG_BITS) - 1;
    int q[QK_QS_MAX];
    if (has_qw) {
        /* qk_quant_block_weighted */
        float w[QK_QS_MAX];
        for (int i = 0; i < 32; i++) w[i] = qk_mul(qw[i], qk_sqrt(qk_add(row_sigma2, qk_mul(x[i], x[i]))));
#if QK_LEG_HAS_MIN
        int aux[QK_QS_MAX];
        float min_mag, d;
        /* A value or weight below 2^-60 (zeros aside) can make a product of two of them subnormal,
         * which the plain search's arithmetic may flush: such blocks take the exact one. */
        bool tiny = false;
        for (int i = 0; i < 32; i++) {
            const uint xb = floatBitsToUint(x[i]) & 0x7fffffffu, wb = floatBitsToUint(w[i]) & 0x7fffffffu;
            tiny = tiny || (xb != 0u && xb < 0x21800000u) || (wb != 0u && wb < 0x21800000u);
        }
        if (tiny)
            d = qk_qkx_search_exact(32, top, x, w, true, q, min_mag, aux, -0.9, 0.05, 36, 0, 0);
        else
            d = qk_hd_make_qkx3(32, top, x, w, true, q, min_mag, aux, -0.9, 0.05, 36, 0);
        qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
        qk_blk_set16(blk, uint(QK_LEG_OFF_M), qk_f32_to_fp16(-min_mag));
#else
        const float d = qk_hd_make_qx(32, 1 << (QK_LEG_BITS - 1), x, q, w, true);
        qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
#endif
    } else {
#if QK_LEG_HAS_MIN
        /* qk_quant_block_minmax */
        float mn = x[0], mx = x[0];
        for (int i = 1; i < 32; i++) {
            if (qk_lt(x[i], mn)) mn = x[i];
            if (qk_lt(mx, x[i])) mx = x[i];
        }
        const float d = qk_div(qk_sub(mx, mn), float(top));
        const float id = !qk_eq(d, 0.0) ? qk_div(1.0, d) : 0.0;
        for (int i = 0; i < 32; i++) q[i] = qk_legacy_trunc_code(qk_add(qk_mul(qk_sub(x[i], mn), id), 0.5), top);
        qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
        qk_blk_set16(blk, uint(QK_LEG_OFF_M), qk_f32_to_fp16(mn));
#else
        /* qk_quant_block_symmetric */
        const int offset = 1 << (QK_LEG_BITS - 1);
        float amax = 0.0, mx = 0.0;
        for (int i = 0; i < 32; i++) {
            if (qk_lt(amax, qk_absf(x[i]))) {
                amax = qk_absf(x[i]);
                mx = x[i];
            }
        }
        const float d = qk_div(mx, float(-offset));
        const float id = !qk_eq(d, 0.0) ? qk_div(1.0, d) : 0.0;
        const float bias = float(offset) + 0.5;
        for (int i = 0; i < 32; i++) q[i] = qk_legacy_trunc_code(qk_add(qk_mul(x[i], id), bias), top);
        qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
#endif
    }
    qk_legacy_pack_codes(q, blk);
}

#endif

#endif
