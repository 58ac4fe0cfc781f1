/* Ternary and 1/2-bit formats (FORMATS.md §8); a GLSL port of kernels/cpu/ternary_block.h.
 * None of the encoders takes an imatrix.
 * TQ1_0 (256 values, 54 bytes): 48 bytes of 5 trits (base-3 fixed point), 4 bytes of 4 trits,
 *   fp16 d; values {-1, 0, +1} * d.
 * TQ2_0 (256 values, 66 bytes): 64 bytes of 2-bit codes (quarter addressing), fp16 d.
 * Q1_0 (128 values, 18 bytes): fp16 d, 16 bytes of sign bits (LSB first); values +-d.
 * Q2_0 (64 values, 18 bytes): fp16 d, 16 bytes of sequential 2-bit codes; values
 *   (code - 1) * d, of which the encoder writes only the ternary three. */
#ifndef QK_TERNARY_GLSL
#define QK_TERNARY_GLSL

/* The ternary encoders' scale (TQ1_0, TQ2_0, Q2_0): d = max|x|, and the unrounded inverse the
 * codes use, id = 1/d (0 if d == 0: told by the bits, since a device may flush a subnormal d in
 * a compare); TQ1_0's and TQ2_0's code is lroundf(x*id) + 1 (ties away from zero). */
float qk_ternary_inv(float d) { return (floatBitsToUint(d) & 0x7fffffffu) != 0u ? qk_div(1.0, d) : 0.0; }
int qk_ternary_code(float x, float id) { return qk_lround_int(x * id) + 1; }

#if defined(QK_TYPE_TQ1_0)

#define QK_TQ1_QH 48
#define QK_TQ1_D  52

/* Trit of a base-3 fixed-point byte q, given pow3 = 3^n: multiply up (keeping 8 bits) and
 * read the top trit. */
int qk_tq1_trit(uint q, uint pow3) { return int((((q * pow3) & 0xffu) * 3u) >> 8); }

uint qk_tq1_pow3(uint n) { return qk_tab_u8(QK_TAB_tq1_0_pow3, n); }

void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base + uint(QK_TQ1_D));
    if (p < 5u) { /* values 32p + j: byte j, trit p */
        const uint m = qk_tq1_pow3(p);
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            uint w = qk_rd32(base + 4u * j);
            [[unroll]] for (uint k = 0u; k < 4u; k++)
                v[4u * j + k] = float(qk_tq1_trit((w >> (8u * k)) & 0xffu, m) - 1) * d;
        }
    } else if (p < 7u) { /* r = i - 160 - 32(p-5): byte 32 + r%16, trit 2(p-5) + r/16 */
        const uint m0 = qk_tq1_pow3(2u * (p - 5u)), m1 = qk_tq1_pow3(2u * (p - 5u) + 1u);
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint w = qk_rd32(base + 32u + 4u * j);
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                uint q = (w >> (8u * k)) & 0xffu;
                v[4u * j + k] = float(qk_tq1_trit(q, m0) - 1) * d;
                v[4u * j + k + 16u] = float(qk_tq1_trit(q, m1) - 1) * d;
            }
        }
    } else { /* values 224..239: byte 32 + r, trit 4; 240..255: byte 48 + r%4, trit r/4 */
        const uint m4 = qk_tq1_pow3(4u);
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint w = qk_rd32(base + 32u + 4u * j);
            [[unroll]] for (uint k = 0u; k < 4u; k++) v[4u * j + k] = float(qk_tq1_trit((w >> (8u * k)) & 0xffu, m4) - 1) * d;
        }
        uint wh = qk_rd32(base + uint(QK_TQ1_QH));
        [[unroll]] for (uint t = 0u; t < 4u; t++) {
            const uint m = qk_tq1_pow3(t);
            [[unroll]] for (uint k = 0u; k < 4u; k++) v[16u + 4u * t + k] = float(qk_tq1_trit((wh >> (8u * k)) & 0xffu, m) - 1) * d;
        }
    }
}

/* Element i -> (byte offset, trit number) in a TQ1_0 block. */
void qk_tq1_position(int i, out int byte_, out int trit) {
    if (i < 160) {
        byte_ = i % 32;
        trit = i / 32;
    } else if (i < 240) {
        byte_ = 32 + (i - 160) % 16;
        trit = (i - 160) / 16;
    } else {
        byte_ = QK_TQ1_QH + (i - 240) % 4;
        trit = (i - 240) / 4;
    }
}

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float amax = 0.0;
    for (int i = 0; i < 256; i++) amax = max(amax, abs(x[i]));
    const float d = amax, id = qk_ternary_inv(d);
    /* q = sum of trits as base-3 digits, most significant first; qh bytes hold 4 trits and a
     * zero fifth */
    int q[52];
    for (int k = 0; k < 52; k++) q[k] = 0;
    for (int i = 0; i < 256; i++) {
        int byte_, trit;
        qk_tq1_position(i, byte_, trit);
        int t = qk_ternary_code(x[i], id);
        int pw = 1;
        for (int k = trit; k < 4; k++) pw *= 3;
        q[byte_] += t * pw;
    }
    for (int k = 0; k < 52; k++) qk_blk_or8(blk, uint(k), uint((q[k] * 256 + 242) / 243));
    qk_blk_set16(blk, uint(QK_TQ1_D), qk_f32_to_fp16(d));
}

#elif defined(QK_TYPE_TQ2_0)

#define QK_TQ2_D 64

/* Value i: bits 2*((i%128)/32) of byte 32*(i/128) + i%32; so part p is the 32 bytes at
 * 32*(p/4) shifted by 2*(p%4). */
void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base + uint(QK_TQ2_D));
    const uint off = base + 32u * (p >> 2), s = 2u * (p & 3u);
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        uint w = qk_rd32(off + 4u * j) >> s;
        [[unroll]] for (uint k = 0u; k < 4u; k++) v[4u * j + k] = float(int((w >> (8u * k)) & 3u) - 1) * d;
    }
}

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float amax = 0.0;
    for (int i = 0; i < 256; i++) amax = max(amax, abs(x[i]));
    const float d = amax, id = qk_ternary_inv(d);
    for (int i = 0; i < 256; i++) {
        int q = qk_ternary_code(x[i], id);
        qk_blk_or8(blk, uint(32 * (i / 128) + i % 32), uint(q << (2 * ((i % 128) / 32))));
    }
    qk_blk_set16(blk, uint(QK_TQ2_D), qk_f32_to_fp16(d));
}

#elif defined(QK_TYPE_Q1_0)

#define QK_Q1_QS 2u /* after d */

/* Value i: bit i%8 of byte 2 + i/8, so part p is the 32 bits at 2 + 4p. A set bit gives d, a
 * clear one the fp32 negation of d (sign bit flipped: -0.0 for d = +0). */
void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base), nd = uintBitsToFloat(floatBitsToUint(d) ^ 0x80000000u);
    const uint w = qk_rd32(base + QK_Q1_QS + 4u * p);
    [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = ((w >> i) & 1u) != 0u ? d : nd;
}

/* d = (sum of |x| left to right in fp32) / 128; bit i set iff x[i] >= 0.0f (so for -0.0,
 * not for NaN), decided on the bits, since a device may flush subnormals in a compare. */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float sum = 0.0;
    for (int i = 0; i < 128; i++) sum += abs(x[i]);
    const float d = qk_div(sum, 128.0);
    for (int i = 0; i < 128; i++) {
        const uint b = floatBitsToUint(x[i]);
        if (b <= 0x7f800000u || b == 0x80000000u) qk_blk_or8(blk, QK_Q1_QS + uint(i / 8), 1u << uint(i % 8));
    }
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
}

#elif defined(QK_TYPE_Q2_0)

#define QK_Q2_QS 2u /* after d */

/* Value i: bits 2(i%4) of byte 2 + i/4 (sequential, not TQ2_0's quarters), so part p is the
 * 8 bytes at 2 + 8p. (code - 1) * d: code 1 gives a zero with the sign of d. */
void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base);
    [[unroll]] for (uint j = 0u; j < 2u; j++) {
        const uint w = qk_rd32(base + QK_Q2_QS + 8u * p + 4u * j);
        [[unroll]] for (uint k = 0u; k < 16u; k++) v[16u * j + k] = float(int((w >> (2u * k)) & 3u) - 1) * d;
    }
}

/* (int)roundf(v) as x86 computes it: half away from zero, then cvttss2si's INT_MIN for NaN, inf
 * and |v| >= 2^31. Where both are in range this is lroundf's value (qk_lround_int); decided on
 * the bits, so that no compiler folds it into another rounding. */
int qk_roundf_int(float v) {
    return (floatBitsToUint(v) & 0x7fffffffu) < 0x4f000000u ? qk_lround_int(v) : int(0x80000000u);
}

/* a * b rounded to float as the CPU rounds it, subnormal operands and result included, where a
 * device may flush them (a subnormal x times a large id): the product of two floats is exact in
 * double, then rounded in integer arithmetic. inf * 0 gives a NaN, as in fp32. */
float qk_mul_exact(float a, float b) { return qk_f64_to_f32(qk_f32_to_f64(a) * qk_f32_to_f64(b)); }

/* TQ2_0's rule on 64 values: code = clamp((int)roundf(x * id) + 1, 0, 3), which never reaches 3.
 * ggml casts roundf's result where TQ2_0 calls lroundf: the two differ only where id overflows
 * to inf (d below about 2^-128), where the cast's INT_MIN gives code 0 and lroundf code 1.
 * amax, like fmaxf, skips a (quiet) NaN; it is compared on the bits (|x| >= 0, so the order of
 * the bits is the order of the values) and x * id is qk_mul_exact, so that a block of subnormals
 * encodes as on the CPU on a device that flushes them. */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    uint amax_bits = 0u;
    for (int i = 0; i < 64; i++) {
        const uint a = floatBitsToUint(x[i]) & 0x7fffffffu;
        if (a > amax_bits && a <= 0x7f800000u) amax_bits = a;
    }
    const float d = uintBitsToFloat(amax_bits), id = qk_ternary_inv(d);
    for (int i = 0; i < 64; i++) {
        const int q = qk_clampi(qk_roundf_int(qk_mul_exact(x[i], id)) + 1, 0, 3);
        qk_blk_or8(blk, QK_Q2_QS + uint(i / 4), uint(q << (2 * (i % 4))));
    }
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
}

#else
#error "ternary.glsl: not a ternary or 1/2-bit type"
#endif

#endif
