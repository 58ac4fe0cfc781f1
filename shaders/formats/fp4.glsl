/* MXFP4 (FORMATS.md §7): 32 E2M1 values sharing one E8M0 exponent; a GLSL port of
 * kernels/cpu/mxfp4_block.h. Block (17 bytes, packed): e (E8M0), then 16 bytes of half-split
 * nibbles (value j low nibble of byte 1+j, value j+16 its high nibble). One part (p = 0). */
#ifndef QK_MXFP4_GLSL
#define QK_MXFP4_GLSL

#define QK_BLOCK_ELEMS 32
#define QK_BLOCK_BYTES 17
#define QK_BLOCK_WORDS 5

/* qk_kvalues_mxfp4[c] (kernels/tables/kvalues_mxfp4.txt: 0 1 2 3 4 6 8 12, then the same
 * negated; code 8 is 0), computed rather than read so the decoder needs no table load. */
int qk_mxfp4_kv(uint c) {
    uint m = c & 7u;
    int mag = int(m < 4u ? m : (2u + (m & 1u)) << ((m >> 1) - 1u));
    return (c & 8u) != 0u ? -mag : mag;
}

void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_e8m0_to_f32_half(qk_rd8(base));
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint w = qk_rd32(base + 1u + 4u * j);
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            v[4u * j + k] = float(qk_mxfp4_kv((w >> (8u * k)) & 15u)) * d;
            v[4u * j + k + 16u] = float(qk_mxfp4_kv((w >> (8u * k + 4u)) & 15u)) * d;
        }
    }
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

/* MXFP4's rounding is fixed by the format: no imatrix to weigh. */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float amax = 0.0;
    for (int j = 0; j < 32; j++) amax = max(amax, abs(x[j]));
    const uint e = amax > 0.0 ? uint(qk_floor_log2_rounded(amax) - 2 + 127) & 0xffu : 0u;
    const float d = qk_e8m0_to_f32_half(e);
    qk_blk_or8(blk, 0u, e);
    for (int j = 0; j < 16; j++)
        qk_blk_or8(blk, uint(1 + j), uint(qk_mxfp4_nearest_code(x[j], d) | (qk_mxfp4_nearest_code(x[j + 16], d) << 4)));
}

#endif
