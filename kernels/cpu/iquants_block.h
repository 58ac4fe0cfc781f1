/* I-quant block layouts and dequantizers (FORMATS.md §6.1-6.9), one super-block at a time:
 * IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_NL, IQ4_XS. Shared by the
 * encoders (iquants_{grid,iq1,iq4}_block.h), the CPU rows and the CUDA kernels. Every
 * product is exact in fp32 (§13); the factor order follows ggml's anyway, which also fixes
 * the sign of zero. */
#ifndef QK_IQUANTS_BLOCK_H
#define QK_IQUANTS_BLOCK_H

#include "qk_float.h"

/* IQ2_XXS: d, then per 32-chunk 4 grid bytes and a u32 (4 x 7 sign bits, scale in 28-31) */
#define QK_IQ2XXS_QS     2
#define QK_BYTES_iq2_xxs (QK_IQ2XXS_QS + QKC_QK_K / 4)
/* IQ2_XS: d, 32 x u16 (grid index | 7 sign bits << 9), 16 four-bit scales */
#define QK_IQ2XS_QS     2
#define QK_IQ2XS_SCALES (QK_IQ2XS_QS + QKC_QK_K / 4)
#define QK_BYTES_iq2_xs (QK_IQ2XS_SCALES + QKC_QK_K / 32)
/* IQ2_S: d, 32 low index bytes, 32 sign bytes, 8 bytes of index bits 8-9, 16 scales */
#define QK_IQ2S_QS     2
#define QK_IQ2S_SIGNS  (QK_IQ2S_QS + QKC_QK_K / 8)
#define QK_IQ2S_QH     (QK_IQ2S_SIGNS + QKC_QK_K / 8)
#define QK_IQ2S_SCALES (QK_IQ2S_QH + QKC_QK_K / 32)
#define QK_BYTES_iq2_s (QK_IQ2S_SCALES + QKC_QK_K / 32)
/* IQ3_XXS: d, 64 grid bytes, 8 x u32 (4 x 7 sign bits, scale in 28-31) */
#define QK_IQ3XXS_QS     2
#define QK_IQ3XXS_SS     (QK_IQ3XXS_QS + QKC_QK_K / 4)
#define QK_BYTES_iq3_xxs (QK_IQ3XXS_SS + QKC_QK_K / 8)
/* IQ3_S: d, 64 low index bytes, 8 bytes of index bit 8, 32 sign bytes, 8 four-bit scales */
#define QK_IQ3S_QS     2
#define QK_IQ3S_QH     (QK_IQ3S_QS + QKC_QK_K / 4)
#define QK_IQ3S_SIGNS  (QK_IQ3S_QH + QKC_QK_K / 32)
#define QK_IQ3S_SCALES (QK_IQ3S_SIGNS + QKC_QK_K / 8)
#define QK_BYTES_iq3_s (QK_IQ3S_SCALES + QKC_QK_K / 64)
/* IQ1_S: d, 8-value groups' low index bytes, one 16-bit word per 32-value chunk (index high
 * bits, scale, delta sign) */
#define QK_IQ1_GROUP   8
#define QK_IQ1S_CHUNK  32
#define QK_IQ1S_NC     (QKC_QK_K / QK_IQ1S_CHUNK)
#define QK_IQ1S_D      0
#define QK_IQ1S_QS     2
#define QK_IQ1S_QH     (QK_IQ1S_QS + QKC_QK_K / QK_IQ1_GROUP)
#define QK_BYTES_iq1_s (QK_IQ1S_QH + 2 * QK_IQ1S_NC)
/* IQ1_M: 16-value sub-blocks, each group with its own delta sign; the fp16 super-scale is
 * spread over the top nibbles of the four scale words */
#define QK_IQ1M_CHUNK  16
#define QK_IQ1M_NC     (QKC_QK_K / QK_IQ1M_CHUNK)
#define QK_IQ1M_QS     0
#define QK_IQ1M_QH     (QK_IQ1M_QS + QKC_QK_K / QK_IQ1_GROUP)
#define QK_IQ1M_SC     (QK_IQ1M_QH + QK_IQ1M_NC)
#define QK_BYTES_iq1_m (QK_IQ1M_SC + 2 * (QKC_QK_K / 64))
/* IQ4_NL: d, 16 half-split nibble bytes; IQ4_XS: d, high 2 bits of 8 scales, low nibbles,
 * then 8 x 16 nibble bytes */
#define QK_IQ4_BLK      32
#define QK_IQ4NL_D      0
#define QK_IQ4NL_QS     2
#define QK_BYTES_iq4_nl (QK_IQ4NL_QS + QKC_QK4_NL / 2)
#define QK_IQ4XS_NB     (QKC_QK_K / QK_IQ4_BLK)
#define QK_IQ4XS_D      0
#define QK_IQ4XS_SCH    2
#define QK_IQ4XS_SCL    4
#define QK_IQ4XS_QS     (QK_IQ4XS_SCL + QK_IQ4XS_NB / 2)
#define QK_BYTES_iq4_xs (QK_IQ4XS_QS + QKC_QK_K / 2)

static inline QK_HD float qk_iq_sign_of(uint8_t signs, int k) {
    return (signs & QK_TAB(qk_kmask_iq2xs)[k]) ? -1.f : 1.f;
}
static inline QK_HD float qk_iq_grid_byte(uint64_t entry, int k) { return (float)(uint8_t)(entry >> (8 * k)); }

/* Eight values of a grid entry: db times its bytes, signed by the bits of s. */
static inline QK_HD void qk_iq_put8(float *dst, float db, uint64_t g, uint8_t s) {
    for (int k = 0; k < 8; k++) dst[k] = db * qk_iq_grid_byte(g, k) * qk_iq_sign_of(s, k);
}

/* IQ2_XS and IQ2_S: the scale of 8-value group e, from the nibble it shares a byte with. */
static inline QK_HD float qk_iq2_group_scale(float d, uint8_t sc, int e) {
    return d * (0.5f + (float)((e & 2) ? sc >> 4 : sc & 15)) * 0.25f;
}

static inline QK_HD void qk_dequant_part_iq2_xxs(const uint8_t *b, int c, float *dst) {
    const float d = qk_rdh(b);
    const uint8_t *q = b + QK_IQ2XXS_QS + 8 * c;
    const uint32_t aux = qk_rd32(q + 4);
    const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
    for (int l = 0; l < 4; l++, dst += 8) {
        const uint64_t g = QK_TAB(qk_iq2xxs_grid)[q[l]];
        const uint8_t s = QK_TAB(qk_ksigns_iq2xs)[(aux >> (7 * l)) & 127];
        qk_iq_put8(dst, db, g, s);
    }
}

QK_DEQUANT_BY_PARTS(iq2_xxs)

static inline QK_HD void qk_dequant_part_iq2_xs(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b);
    for (int e = 4 * p; e < 4 * p + 4; e++, dst += 8) {
        const uint8_t sc = b[QK_IQ2XS_SCALES + e / 4];
        const float db = qk_iq2_group_scale(d, sc, e);
        const uint16_t v = qk_rd16(b + QK_IQ2XS_QS + 2 * e);
        const uint64_t g = QK_TAB(qk_iq2xs_grid)[v & 511];
        const uint8_t s = QK_TAB(qk_ksigns_iq2xs)[v >> 9];
        qk_iq_put8(dst, db, g, s);
    }
}

QK_DEQUANT_BY_PARTS(iq2_xs)

static inline QK_HD void qk_dequant_part_iq2_s(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b);
    for (int e = 4 * p; e < 4 * p + 4; e++, dst += 8) {
        const uint8_t sc = b[QK_IQ2S_SCALES + e / 4];
        const float db = qk_iq2_group_scale(d, sc, e);
        const int idx = b[QK_IQ2S_QS + e] | ((b[QK_IQ2S_QH + e / 4] >> (2 * (e % 4))) & 3) << 8;
        const uint64_t g = QK_TAB(qk_iq2s_grid)[idx];
        const uint8_t s = b[QK_IQ2S_SIGNS + e];
        qk_iq_put8(dst, db, g, s);
    }
}

QK_DEQUANT_BY_PARTS(iq2_s)

static inline QK_HD void qk_dequant_part_iq3_xxs(const uint8_t *b, int c, float *dst) {
    const float d = qk_rdh(b);
    const uint32_t aux = qk_rd32(b + QK_IQ3XXS_SS + 4 * c);
    const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
    for (int l = 0; l < 4; l++, dst += 8) {
        const uint8_t s = QK_TAB(qk_ksigns_iq2xs)[(aux >> (7 * l)) & 127];
        const uint32_t g0 = QK_TAB(qk_iq3xxs_grid)[b[QK_IQ3XXS_QS + 8 * c + 2 * l]];
        const uint32_t g1 = QK_TAB(qk_iq3xxs_grid)[b[QK_IQ3XXS_QS + 8 * c + 2 * l + 1]];
        for (int k = 0; k < 4; k++) {
            dst[k] = db * qk_iq_grid_byte(g0, k) * qk_iq_sign_of(s, k);
            dst[k + 4] = db * qk_iq_grid_byte(g1, k) * qk_iq_sign_of(s, k + 4);
        }
    }
}

QK_DEQUANT_BY_PARTS(iq3_xxs)

static inline QK_HD void qk_dequant_part_iq3_s(const uint8_t *b, int c, float *dst) {
    const float d = qk_rdh(b);
    const int sc = (b[QK_IQ3S_SCALES + c / 2] >> (4 * (c % 2))) & 15;
    const float db = d * (float)(1 + 2 * sc);
    for (int q = 8 * c; q < 8 * c + 8; q++, dst += 4) {
        const int idx = b[QK_IQ3S_QS + q] | ((b[QK_IQ3S_QH + q / 8] >> (q % 8)) & 1) << 8;
        const uint32_t g = QK_TAB(qk_iq3s_grid)[idx];
        const uint8_t s = b[QK_IQ3S_SIGNS + q / 2];
        for (int k = 0; k < 4; k++) dst[k] = db * qk_iq_grid_byte(g, k) * qk_iq_sign_of(s, 4 * (q % 2) + k);
    }
}

QK_DEQUANT_BY_PARTS(iq3_s)

/* y = dl * (G + delta) for the 8 signed grid bytes G of grid entry idx. */
static inline QK_HD void qk_iq1_unpack_group(int idx, float dl, float delta, float *y) {
    const uint64_t g = QK_TAB(qk_iq1s_grid)[idx];
    for (int k = 0; k < QK_IQ1_GROUP; k++) y[k] = dl * ((float)(int8_t)(g >> (8 * k)) + delta);
}

/* a part is one 32-value chunk of IQ1_S */
static inline QK_HD void qk_dequant_part_iq1_s(const uint8_t *b, int c, float *dst) {
    const float d = qk_rdh(b + QK_IQ1S_D);
    const uint16_t h = qk_rd16(b + QK_IQ1S_QH + 2 * c);
    const float dl = d * (float)(2 * ((h >> 12) & 7) + 1);
    const float delta = (h & 0x8000) ? -QKC_IQ1S_DELTA : QKC_IQ1S_DELTA;
    for (int l = 0; l < 4; l++) {
        const int idx = b[QK_IQ1S_QS + 4 * c + l] | ((h >> (3 * l)) & 7) << 8;
        qk_iq1_unpack_group(idx, dl, delta, dst + QK_IQ1_GROUP * l);
    }
}

QK_DEQUANT_BY_PARTS(iq1_s)

static inline QK_HD float qk_iq1m_super_scale(const uint8_t *sc) {
    uint16_t bits = 0;
    for (int w = 0; w < 4; w++) bits |= (uint16_t)((qk_rd16(sc + 2 * w) >> 12) << (4 * w));
    return qk_fp16_to_f32(bits);
}

static inline QK_HD void qk_dequant_part_iq1_m(const uint8_t *b, int p, float *dst) {
    const float d = qk_iq1m_super_scale(b + QK_IQ1M_SC);
    for (int g = 4 * p; g < 4 * p + 4; g++) {
        const int c = g / 4, l = g % 4;
        const int s = (qk_rd16(b + QK_IQ1M_SC + 2 * (c / 2)) >> (6 * (c % 2) + 3 * (l / 2))) & 7;
        const float dl = d * (float)(2 * s + 1);
        const int nib = b[QK_IQ1M_QH + 2 * c + l / 2] >> (4 * (l % 2));
        const int idx = b[QK_IQ1M_QS + g] | (nib & 7) << 8;
        qk_iq1_unpack_group(idx, dl, (nib & 8) ? -QKC_IQ1M_DELTA : QKC_IQ1M_DELTA, dst + QK_IQ1_GROUP * (g - 4 * p));
    }
}

QK_DEQUANT_BY_PARTS(iq1_m)

/* 32 codes, half-split: byte j holds element j (low nibble) and element j+16 (high). */
static inline QK_HD void qk_iq4_unpack_nibbles(const uint8_t *qs, float dl, float *y) {
    for (int j = 0; j < QK_IQ4_BLK / 2; j++) {
        y[j] = dl * QK_TAB(qk_kvalues_iq4nl)[qs[j] & 15];
        y[j + QK_IQ4_BLK / 2] = dl * QK_TAB(qk_kvalues_iq4nl)[qs[j] >> 4];
    }
}

static inline QK_HD void qk_dequant_block_iq4_nl(const uint8_t *b, float *dst) {
    qk_iq4_unpack_nibbles(b + QK_IQ4NL_QS, qk_rdh(b + QK_IQ4NL_D), dst);
}

static inline QK_HD void qk_dequant_part_iq4_xs(const uint8_t *b, int c, float *dst) {
    const float d = qk_rdh(b + QK_IQ4XS_D);
    const uint16_t sh = qk_rd16(b + QK_IQ4XS_SCH);
    const int ls = ((b[QK_IQ4XS_SCL + c / 2] >> (4 * (c % 2))) & 15) | (((sh >> (2 * c)) & 3) << 4);
    const float dl = d * (float)(ls - 32);
    qk_iq4_unpack_nibbles(b + QK_IQ4XS_QS + (QK_IQ4_BLK / 2) * c, dl, dst);
}

QK_DEQUANT_BY_PARTS(iq4_xs)

#endif
