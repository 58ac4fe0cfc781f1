/* MXFP4 and NVFP4 (FORMATS.md §7): E2M1 values under a power-of-two (MXFP4) or UE4M3 (NVFP4)
 * scale; a GLSL port of kernels/cpu/fp4_block.h. Both decode with ggml's doubled E2M1 table
 * times the half scale, and both encoders pick each code with the same nearest-code search.
 * Neither takes an imatrix.
 * MXFP4 (17 bytes, packed): e (E8M0), then 16 bytes of half-split nibbles (value j low nibble
 *   of byte 1+j, value j+16 its high nibble). One part (p = 0).
 * NVFP4 (36 bytes): four UE4M3 scale bytes d[s], one per 16 values, then for each sub-block s
 *   8 bytes of half-split nibbles (value 16s+j low nibble of byte 4+8s+j, 16s+8+j its high
 *   nibble). Two parts: part p is sub-blocks 2p and 2p+1. */
#ifndef QK_FP4_GLSL
#define QK_FP4_GLSL

/* qk_kvalues_mxfp4[c] (kernels/tables/kvalues_mxfp4.txt: 0 1 2 3 4 6 8 12, then the same
 * negated; code 8 is 0), computed rather than read so the decoder needs no table load. */
int qk_mxfp4_kv(uint c) {
    uint m = c & 7u;
    int mag = int(m < 4u ? m : (2u + (m & 1u)) << ((m >> 1) - 1u));
    return (c & 8u) != 0u ? -mag : mag;
}

/* ggml's best_index_mxfp4: the code c minimizing |kv[c]*d - x| (the product is exact), the
 * first of equal ones (ties to the smaller magnitude, +0 over -0). d = 0 gives code 0. */
int qk_mxfp4_nearest_code(float x, float d) {
    int best = 0;
    float best_err = abs(float(qk_mxfp4_kv(0u)) * d - x);
    for (int c = 1; c < 16; c++) {
        float err = abs(float(qk_mxfp4_kv(uint(c))) * d - x);
        if (err < best_err) {
            best = c;
            best_err = err;
        }
    }
    return best;
}

#if defined(QK_TYPE_MXFP4)

/* Below this exponent byte the scale 2^(e-128) or its products are subnormal: a device may flush
 * subnormal operands and results of float arithmetic, whatever the module's DenormPreserve mode
 * says (the H100's driver 580 does: bench/results/2026-12-06-vulkan-h100-a95ace0-shader-forms.md),
 * so there the values are built, and the errors compared, from their bits. */
#define QK_MXFP4_SUBNORMAL_E 8u

/* kv * 2^(e-128) for e < QK_MXFP4_SUBNORMAL_E, exactly as the CPU's (float)kv * d gives it
 * (|kv| <= 12: never rounded). A zero code is +0 there too ((float)0 has no sign). */
float qk_mxfp4_small_value(int kv, uint e) {
    if (kv == 0) return 0.0;
    const uint mag = uint(abs(kv));
    const int p = findMSB(mag), E = int(e) - 128, fe = p + E;
    const uint bits = fe >= -126 ? (uint(fe + 127) << 23) | ((mag << uint(23 - p)) & 0x7fffffu) : mag << uint(E + 149);
    return uintBitsToFloat((kv < 0 ? 0x80000000u : 0u) | bits);
}

void qk_dequant_part(uint base, uint p, out float v[32]) {
    const uint e = qk_rd8(base);
    const float d = qk_e8m0_to_f32_half(e);
    const bool small = e < QK_MXFP4_SUBNORMAL_E; /* uniform over the block: the common case stays a multiply */
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint w = qk_rd32(base + 1u + 4u * j);
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            const int lo = qk_mxfp4_kv((w >> (8u * k)) & 15u), hi = qk_mxfp4_kv((w >> (8u * k + 4u)) & 15u);
            v[4u * j + k] = small ? qk_mxfp4_small_value(lo, e) : float(lo) * d;
            v[4u * j + k + 16u] = small ? qk_mxfp4_small_value(hi, e) : float(hi) * d;
        }
    }
}

/* qk_mxfp4_nearest_code for e < QK_MXFP4_SUBNORMAL_E. There amax < 2^-116, so x and kv * d are
 * multiples of 2^-149 below 2^-112 and their difference is exact in double; rounded once to
 * float it is the CPU's fabsf(kv * d - x), and non-negative floats order as their bits. */
int qk_mxfp4_nearest_code_small(float x, uint e) {
    const double x64 = qk_f32_to_f64(x);
    int best = 0;
    uint best_err = floatBitsToUint(qk_f64_to_f32(abs(x64)));
    for (int c = 1; c < 16; c++) {
        const double v = qk_f32_to_f64(qk_mxfp4_small_value(qk_mxfp4_kv(uint(c)), e));
        const uint err = floatBitsToUint(qk_f64_to_f32(abs(v - x64)));
        if (err < best_err) {
            best = c;
            best_err = err;
        }
    }
    return best;
}

/* floorf(log2f(a)) for finite a > 0 with log2f correctly rounded: see the C reference. The
 * C compares in double; here g <= 6 (|v| <= 128, and subnormals give g <= 6), so k < 2^24 and
 * ln2 * 2^g are exact in fp32 and no integer lies between fp32's and fp64's ln2 * 2^g: the
 * fp32 comparison decides the same. */
int qk_floor_log2_rounded(float a) {
    const uint u = floatBitsToUint(a);
    int e, g;
    uint k;
    if (u >= 0x00800000u) {
        e = int(u >> 23) - 127;
        k = 0x00800000u - (u & 0x007fffffu);
        g = 0;
    } else {
        const int p = findMSB(u);
        e = p - 149;
        k = (2u << uint(p)) - u;
        g = p - 23;
    }
    const int v = e + 1;
    if (v == 0) return e;
    g += v > 0 ? findMSB(uint(v - 1)) : findMSB(uint(-v));
    if (g < 0) return e;
    return float(k) < 0.693147182464599609375 * float(1u << uint(g)) ? e + 1 : e;
}

/* MXFP4's rounding is fixed by the format: no imatrix to weigh. */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    /* the largest magnitude by its bits (finite input: they order as the values), so that a
     * block of subnormals is not flushed to a zero amax */
    uint amax_bits = 0u;
    for (int j = 0; j < 32; j++) amax_bits = max(amax_bits, floatBitsToUint(x[j]) & 0x7fffffffu);
    const uint e = amax_bits != 0u ? uint(qk_floor_log2_rounded(uintBitsToFloat(amax_bits)) - 2 + 127) & 0xffu : 0u;
    const float d = qk_e8m0_to_f32_half(e);
    qk_blk_or8(blk, 0u, e);
    for (int j = 0; j < 16; j++) {
        const int lo = e < QK_MXFP4_SUBNORMAL_E ? qk_mxfp4_nearest_code_small(x[j], e) : qk_mxfp4_nearest_code(x[j], d);
        const int hi =
            e < QK_MXFP4_SUBNORMAL_E ? qk_mxfp4_nearest_code_small(x[j + 16], e) : qk_mxfp4_nearest_code(x[j + 16], d);
        qk_blk_or8(blk, uint(1 + j), uint(lo | (hi << 4)));
    }
}

#elif defined(QK_TYPE_NVFP4)

#define QK_NVFP4_QS 4u /* after the four scale bytes */

/* ggml_ue4m3_to_fp32: the half value of a UE4M3 scale byte (bit 7 ignored, 0x00 and 0x7F
 * give 0, 0xFF gives 240), from kernels/tables/ue4m3_half_f32.txt. */
float qk_ue4m3_to_f32_half(uint x) { return uintBitsToFloat(qk_tab_u32(QK_TAB_ue4m3_half_f32, x)); }

/* Sub-block s: values 16s+j (low nibbles) and 16s+8+j (high nibbles) of bytes 4+8s+j;
 * kv * S is exact, and a negative code under S = 0 gives -0.0 as (float)kv * S does. */
void qk_dequant_part(uint base, uint p, out float v[32]) {
    [[unroll]] for (uint h = 0u; h < 2u; h++) {
        const uint s = 2u * p + h;
        const float d = qk_ue4m3_to_f32_half(qk_rd8(base + s));
        [[unroll]] for (uint j = 0u; j < 2u; j++) {
            uint w = qk_rd32(base + QK_NVFP4_QS + 8u * s + 4u * j);
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                v[16u * h + 4u * j + k] = float(qk_mxfp4_kv((w >> (8u * k)) & 15u)) * d;
                v[16u * h + 4u * j + k + 8u] = float(qk_mxfp4_kv((w >> (8u * k + 4u)) & 15u)) * d;
            }
        }
    }
}

/* ggml_fp32_to_ue4m3 (FORMATS.md §7.4), not an IEEE rounding: decided on the bits of v, so
 * that no compare depends on how a device treats subnormals and NaN. */
uint qk_f32_to_ue4m3(float v) {
    uint b = floatBitsToUint(v);
    if (int(b) <= 0 || b > 0x7f800000u) return 0u; /* !(v > 0): +-0, negative, NaN */
    if (b > 0x43e00000u) b = 0x43e00000u;          /* v > 448: 448 (inf included) */
    int e = int(b >> 23) - 127 + 7;
    if (e <= 0) { /* v < 2^-6: M = (int)(v*512 + 0.5f), rounded half up in fp32, capped at 7 */
        /* v*512 is exact, so a driver's fusing the two would round the same */
        const int m = qk_trunc_int(uintBitsToFloat(b) * 512.0 + 0.5);
        return m < 1 ? 0u : uint(min(m, 7));
    }
    if (e >= 15) return 0x7eu;
    /* the top 3 mantissa bits plus the first dropped one: ties away, no sticky bit */
    int m = int((b >> 20) & 7u) + int((b >> 19) & 1u);
    if (m > 7) {
        m = 0;
        e++;
        if (e >= 15) return 0x7eu;
    }
    return uint((e << 3) | m);
}

/* Four sub-blocks of 16, each on its own: S from amax/6 through the UE4M3 byte, then
 * MXFP4's nearest-code search against the stored byte's half value. No imatrix. */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    for (int s = 0; s < 4; s++) {
        float amax = 0.0;
        for (int j = 0; j < 16; j++) {
            const float a = abs(x[16 * s + j]);
            if (amax < a) amax = a; /* a strictly larger value (§7.4); as fmaxf, a NaN never */
        }
        const uint ue = qk_f32_to_ue4m3(qk_div(amax, 6.0));
        const float d = qk_ue4m3_to_f32_half(ue);
        qk_blk_or8(blk, uint(s), ue);
        for (int j = 0; j < 8; j++)
            qk_blk_or8(blk, QK_NVFP4_QS + uint(8 * s + j),
                       uint(qk_mxfp4_nearest_code(x[16 * s + j], d) | (qk_mxfp4_nearest_code(x[16 * s + 8 + j], d) << 4)));
    }
}

#else
#error "fp4.glsl: not an FP4 type"
#endif

#endif
