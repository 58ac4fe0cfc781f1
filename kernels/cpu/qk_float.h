/* Scalar number helpers shared by every CPU kernel: fp16/bf16/E8M0 conversion, the rounding
 * rules of the GGUF reference encoders, and unaligned little-endian field access.
 * Everything here is exact and order-independent; the functions are QK_HD, so the CUDA
 * kernels run these very statements. */
#ifndef QK_FLOAT_H
#define QK_FLOAT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qk_hd.h"
#include "qk_tables.h"

/* The float types' "blocks" are single values. */
#define QK_BYTES_f32  4
#define QK_BYTES_f16  2
#define QK_BYTES_bf16 2

static inline QK_HD uint32_t qk_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline QK_HD float qk_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* binary16 -> binary32, exact (subnormals, inf and NaN kept). */
static inline QK_HD float qk_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return qk_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in fp32 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return qk_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* binary32 -> binary16, round to nearest even; overflow -> inf, NaN -> sign|0x7E00. */
static inline QK_HD uint16_t qk_f32_to_fp16(float f) {
    uint32_t x = qk_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00u;
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {
        /* result is subnormal or zero: round ax * 2^24 to an integer, ties to even */
        if (ax < 0x33000000u) return sign; /* below half the smallest subnormal */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* value = m * 2^(e-150); want m * 2^(e-150+24) */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t tie = 1u << (shift - 1);
        if (rem > tie || (rem == tie && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t q = ax - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t rem = q & 0x1fffu;
    q >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) q++;
    return sign | (uint16_t)q;
}

static inline QK_HD float qk_bf16_to_f32(uint16_t h) { return qk_bits_f32((uint32_t)h << 16); }

static inline QK_HD uint16_t qk_f32_to_bf16(float f) {
    uint32_t x = qk_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* E8M0 exponent byte -> half of its nominal value, 2^(e-128), as ggml's MXFP4 uses it. */
static inline QK_HD float qk_e8m0_to_f32_half(uint8_t e) {
    uint32_t bits = e >= 2 ? (uint32_t)(e - 1) << 23 : (e == 1 ? 0x00400000u : 0x00200000u);
    return qk_bits_f32(bits);
}

/* Round to nearest, ties to even (valid for |v| <= 4194303), as the reference encoders do. */
static inline QK_HD int qk_nearest_int(float v) {
    float val = v + QKC_NEAREST_INT_MAGIC;
    /* A NaN here was made from finite input (inf*0 where a subnormal range overflowed an
     * inverse scale): x86's default NaN 0xFFC00000 reads as 0; CUDA's 0x7FFFFFFF would not. */
    if (val != val) return 0;
    int32_t i;
    memcpy(&i, &val, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* (int)v as x86's cvttss2si computes it: NaN and values out of range give INT_MIN. C leaves
 * those conversions undefined and CUDA saturates them; the encoders meet them when a block's
 * scale is subnormal and its inverse overflows, so both sides spell the x86 result out. */
static inline QK_HD int qk_trunc_int(float v) {
    return v >= -2147483648.0f && v < 2147483648.0f ? (int)v : (-2147483647 - 1);
}

/* (int)lroundf(v) as glibc computes it on x86-64: NaN, inf and |v| >= 2^63 give LONG_MIN,
 * whose low 32 bits are 0; other values keep the low 32 bits of the rounded integer. */
static inline QK_HD int qk_lround_int(float v) {
    if (!(fabsf(v) < 9223372036854775808.0f)) return 0;
    return (int)(uint32_t)(uint64_t)llroundf(v);
}

static inline QK_HD int qk_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Unaligned little-endian fields inside packed blocks. */
static inline QK_HD uint16_t qk_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline QK_HD uint32_t qk_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline QK_HD void qk_wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline QK_HD void qk_wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline QK_HD float qk_rdh(const uint8_t *p) { return qk_fp16_to_f32(qk_rd16(p)); }
static inline QK_HD void qk_wrh(uint8_t *p, float v) { qk_wr16(p, qk_f32_to_fp16(v)); }

#endif
