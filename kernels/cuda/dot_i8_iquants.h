/* 8-bit part decoders (dot_i8.h) of the lattice I-quants: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
 * IQ1_S, IQ1_M (layouts: FORMATS.md §6.1-6.7, iquants_block.h).
 *
 * A part is one 32-value chunk of the 256-value block. The grid/IQ3 codes are the lattice bytes
 * with their signs; the scale is the dequantizer's own (so s * q is its product, bit for bit).
 * IQ1 codes are 8 * G + 8 * delta (G in {-1, 0, 1}, delta +-1/8) with the scale divided by 8,
 * also exact. No offsets. */
#ifndef QK_DOT_I8_IQUANTS_H
#define QK_DOT_I8_IQUANTS_H

#include "dot_i8.h"
#include "iquants_block.h"

#define QK_I8_OFFSET_iq2_xxs 0
#define QK_I8_OFFSET_iq2_xs  0
#define QK_I8_OFFSET_iq2_s   0
#define QK_I8_OFFSET_iq3_xxs 0
#define QK_I8_OFFSET_iq3_s   0
#define QK_I8_OFFSET_iq1_s   0
#define QK_I8_OFFSET_iq1_m   0

/* Sign bits become 0x01 in the bytes to negate of a word of four lattice magnitudes (1..127). Bit j
 * of a 7-bit x lands alone at bit j + 7k of x * 0x204081 (k = 0..3: no two terms meet, so no
 * carries): the product's bits 8k and 8k + 4 are x's bits k and k + 4. */
#define QK_IQ_SPREAD 0x00204081u
#define QK_IQ_BYTE1  0x01010101u

/* ksigns_iq2xs[v] without the table: the eighth sign is the parity of the seven in v. */
static inline QK_HD void qk_iq_ksigns_bits(uint32_t v, uint32_t *b0, uint32_t *b1) {
    const uint32_t x = v * QK_IQ_SPREAD;
    const uint32_t lo = x & QK_IQ_BYTE1, hi = (x >> 4) & QK_IQ_BYTE1;
    /* byte 3 of (lo + hi) * 0x01010101 is the number of set bits, its low bit the parity */
    *b0 = lo;
    *b1 = hi | (((lo + hi) * QK_IQ_BYTE1) & 0x01000000u);
}

/* Eight explicit sign bits, the low byte of t (bit 7 goes around the multiply: it would carry). */
static inline QK_HD void qk_iq_sign_bits8(uint32_t t, uint32_t *b0, uint32_t *b1) {
    const uint32_t x = (t & 0x7fu) * QK_IQ_SPREAD;
    *b0 = x & QK_IQ_BYTE1;
    *b1 = ((x >> 4) | (t << 17)) & QK_IQ_BYTE1;
}

/* Negates the bytes of g flagged in b: ~g + 1 per byte, never carrying as no magnitude is 0. */
static inline QK_HD uint32_t qk_iq_neg4(uint32_t g, uint32_t b) { return (g ^ (b * 0xffu)) + b; }

/* A grid entry's eight magnitudes signed by a ksigns index v into q[0..1]. */
static inline QK_HD void qk_iq_put_ksigned(uint64_t g, uint32_t v, uint32_t *q) {
    uint32_t b0, b1;
    qk_iq_ksigns_bits(v, &b0, &b1);
    q[0] = qk_iq_neg4((uint32_t)g, b0);
    q[1] = qk_iq_neg4((uint32_t)(g >> 32), b1);
}

static inline QK_HD void qk_iq_put_signed8(uint32_t g0, uint32_t g1, uint32_t t, uint32_t *q) {
    uint32_t b0, b1;
    qk_iq_sign_bits8(t, &b0, &b1);
    q[0] = qk_iq_neg4(g0, b0);
    q[1] = qk_iq_neg4(g1, b1);
}

static inline QK_HD void qk_iq_one_scale(qk_part_i8 *r, float s) {
    r->s[0] = r->s[1] = s;
    r->o[0] = r->o[1] = 0.0f;
}

static inline QK_HD void qk_part_i8_iq2_xxs(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint8_t *c = b + QK_IQ2XXS_QS + 8 * p;
    const uint32_t idx = qk_ld32_a2(c), aux = qk_ld32_a2(c + 4);
    for (int l = 0; l < 4; l++)
        qk_iq_put_ksigned(QK_TAB(qk_iq2xxs_grid)[(idx >> 8 * l) & 255], (aux >> 7 * l) & 127, r->q + 2 * l);
    const float d = qk_i8_half(qk_ld16_a2(b));
    qk_iq_one_scale(r, d * (0.5f + (float)(aux >> 28)) * 0.25f);
}

static inline QK_HD void qk_part_i8_iq2_xs(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint8_t *e = b + QK_IQ2XS_QS + 8 * p;
    const uint32_t w[2] = {qk_ld32_a2(e), qk_ld32_a2(e + 4)};
    for (int l = 0; l < 4; l++) {
        const uint32_t v = w[l / 2] >> 16 * (l % 2); /* grid index in bits 0-8, sign index 9-15 */
        qk_iq_put_ksigned(QK_TAB(qk_iq2xs_grid)[v & 511], (v >> 9) & 127, r->q + 2 * l);
    }
    const float d = qk_i8_half(qk_ld16_a2(b));
    const uint32_t sc = b[QK_IQ2XS_SCALES + p];
    r->s[0] = d * (0.5f + (float)(sc & 15)) * 0.25f;
    r->s[1] = d * (0.5f + (float)(sc >> 4)) * 0.25f;
    r->o[0] = r->o[1] = 0.0f;
}

static inline QK_HD void qk_part_i8_iq2_s(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint32_t qs = qk_ld32_a2(b + QK_IQ2S_QS + 4 * p), signs = qk_ld32_a2(b + QK_IQ2S_SIGNS + 4 * p);
    const uint32_t qh = b[QK_IQ2S_QH + p], sc = b[QK_IQ2S_SCALES + p];
    for (int l = 0; l < 4; l++) {
        const uint64_t g = QK_TAB(qk_iq2s_grid)[((qs >> 8 * l) & 255) | ((qh << (8 - 2 * l)) & 0x300)];
        qk_iq_put_signed8((uint32_t)g, (uint32_t)(g >> 32), signs >> 8 * l, r->q + 2 * l);
    }
    const float d = qk_i8_half(qk_ld16_a2(b));
    r->s[0] = d * (0.5f + (float)(sc & 15)) * 0.25f;
    r->s[1] = d * (0.5f + (float)(sc >> 4)) * 0.25f;
    r->o[0] = r->o[1] = 0.0f;
}

static inline QK_HD void qk_part_i8_iq3_xxs(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint8_t *q = b + QK_IQ3XXS_QS + 8 * p;
    const uint32_t w[2] = {qk_ld32_a2(q), qk_ld32_a2(q + 4)};
    const uint32_t aux = qk_ld32_a2(b + QK_IQ3XXS_SS + 4 * p);
    for (int l = 0; l < 4; l++) {
        /* a ksigns group of 8 spans two 4-value grid entries */
        const uint32_t ix = w[l / 2] >> 16 * (l % 2);
        const uint64_t g =
            (uint64_t)QK_TAB(qk_iq3xxs_grid)[ix & 255] | (uint64_t)QK_TAB(qk_iq3xxs_grid)[(ix >> 8) & 255] << 32;
        qk_iq_put_ksigned(g, (aux >> 7 * l) & 127, r->q + 2 * l);
    }
    const float d = qk_i8_half(qk_ld16_a2(b));
    qk_iq_one_scale(r, d * (0.5f + (float)(aux >> 28)) * 0.5f);
}

static inline QK_HD void qk_part_i8_iq3_s(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint8_t *q = b + QK_IQ3S_QS + 8 * p;
    const uint32_t w[2] = {qk_ld32_a2(q), qk_ld32_a2(q + 4)};
    const uint32_t qh = b[QK_IQ3S_QH + p], signs = qk_ld32_a2(b + QK_IQ3S_SIGNS + 4 * p);
    for (int l = 0; l < 4; l++) {
        const uint32_t ix = w[l / 2] >> 16 * (l % 2), h = qh >> 2 * l; /* index bit 8 of quads 2l, 2l+1 */
        const uint32_t g0 = QK_TAB(qk_iq3s_grid)[(ix & 255) | ((h << 8) & 256)];
        const uint32_t g1 = QK_TAB(qk_iq3s_grid)[((ix >> 8) & 255) | ((h << 7) & 256)];
        qk_iq_put_signed8(g0, g1, signs >> 8 * l, r->q + 2 * l);
    }
    const float d = qk_i8_half(qk_ld16_a2(b));
    const uint32_t sc = (uint32_t)(b[QK_IQ3S_SCALES + p / 2] >> 4 * (p % 2)) & 15;
    qk_iq_one_scale(r, d * (float)(1 + 2 * sc));
}

/* IQ1 from the GPU grid (half the bytes of the signed one): an entry holds G + 1 in {0, 1, 2} per
 * nibble, elements 0-3 in the low nibbles, 4-7 in the high ones. bias is 0x80 + 8 * delta - 8 per
 * byte, so 8 * (G + 1) + bias stays inside its byte (0x77..0x89) and ^ 0x80 leaves 8 * (G + delta)
 * in two's complement. */
static inline QK_HD void qk_iq1_put8(uint32_t g, uint32_t bias, uint32_t *q) {
    q[0] = (((g << 3) & 0x78787878u) + bias) ^ 0x80808080u;
    q[1] = (((g >> 1) & 0x78787878u) + bias) ^ 0x80808080u;
}

/* bias for a delta sign bit (1: -1/8) */
static inline QK_HD uint32_t qk_iq1_bias(uint32_t neg) { return 0x79797979u - (neg & 1) * 0x02020202u; }

static inline QK_HD void qk_part_i8_iq1_s(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint32_t qs = qk_ld32_a2(b + QK_IQ1S_QS + 4 * p), h = qk_ld16_a2(b + QK_IQ1S_QH + 2 * p);
    const uint32_t bias = qk_iq1_bias(h >> 15);
    for (int l = 0; l < 4; l++)
        qk_iq1_put8(QK_TAB(qk_iq1s_grid_gpu)[((qs >> 8 * l) & 255) | (((h >> 3 * l) << 8) & 0x700)], bias,
                    r->q + 2 * l);
    const float d = qk_i8_half(qk_ld16_a2(b + QK_IQ1S_D));
    qk_iq_one_scale(r, d * (float)(2 * ((h >> 12) & 7) + 1) * 0.125f);
}

static inline QK_HD void qk_part_i8_iq1_m(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint32_t qs = qk_ld32_a4(b + QK_IQ1M_QS + 4 * p), qh = qk_ld16_a2(b + QK_IQ1M_QH + 2 * p);
    for (int l = 0; l < 4; l++) {
        const uint32_t nib = qh >> 4 * l; /* index bits 8-10, delta sign */
        qk_iq1_put8(QK_TAB(qk_iq1s_grid_gpu)[((qs >> 8 * l) & 255) | ((nib << 8) & 0x700)], qk_iq1_bias(nib >> 3),
                    r->q + 2 * l);
    }
    /* scale words W0 W1 | W2 W3; the super-scale's fp16 bits are their top nibbles */
    const uint32_t w01 = qk_ld32_a4(b + QK_IQ1M_SC), w23 = qk_ld32_a4(b + QK_IQ1M_SC + 4);
    const uint32_t dbits = ((w01 >> 12) & 0xf) | ((w01 >> 24) & 0xf0) | ((w23 >> 4) & 0xf00) | ((w23 >> 16) & 0xf000);
    const float d = qk_i8_half(dbits);
    const uint32_t w = ((p & 4) ? w23 : w01) >> (16 * ((p >> 1) & 1) + 6 * (p & 1));
    r->s[0] = d * (float)(2 * (w & 7) + 1) * 0.125f;
    r->s[1] = d * (float)(2 * ((w >> 3) & 7) + 1) * 0.125f;
    r->o[0] = r->o[1] = 0.0f;
}

#endif
