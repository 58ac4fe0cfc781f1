/* 8-bit part decoders (dot_i8.h) of the legacy 32-value blocks: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.
 * Layouts in legacy_block.h (FORMATS.md §4); its dequantizers are the reference.
 *
 * Q4_0 and Q5_0 fold their -8 and -16 into the codes; Q4_1 and Q5_1 keep the unsigned codes and
 * carry m as the offset, so that s * q + o is the reference's q * d + m, rounded once as it is.
 * Q4_1 (20 bytes) and Q5_1 (24) are 4-byte aligned; Q4_0 (18), Q5_0 (22) and Q8_0 (34) 2-byte. */
#ifndef QK_DOT_I8_LEGACY_H
#define QK_DOT_I8_LEGACY_H

#include "dot_i8.h"
#include "legacy_block.h"

/* Per byte x - c, for bytes x with x + 0x80 - c in 0..255: no carry leaves a byte, and flipping
 * bit 7 afterwards takes the 0x80 back off modulo 256. */
static inline QK_HD uint32_t qk_leg_minus(uint32_t x, uint32_t c) {
    return (x + (0x80u - c) * 0x01010101u) ^ 0x80808080u;
}

/* Bits i..i+3 of the 32-bit qh as bit 4 of bytes 0..3: the multiply moves bit j to 8j + 4, and
 * its other partial products land on bits the mask drops, without carries. */
static inline QK_HD uint32_t qk_leg_high_bits(uint32_t qh, int i) {
    return ((qh >> i) & 15u) * 0x02040810u & 0x10101010u;
}

/* Half-split nibbles: qs word k (bytes 4k..4k+3) holds values 4k..4k+3 in its low nibbles and
 * 16 + 4k.. in its high ones. */
#define QK_I8_OFFSET_q4_0 0

static inline QK_HD void qk_part_i8_q4_0(const uint8_t *b, int p, qk_part_i8 *r) {
    (void)p;
    const qk_legacy_layout t = qk_layout_q4_0();
    uint32_t w[4];
    qk_ld32n_a2(b + t.off_qs, 4, w);
    for (int k = 0; k < 4; k++) {
        r->q[k] = qk_leg_minus(w[k] & 0x0f0f0f0fu, 8);
        r->q[4 + k] = qk_leg_minus((w[k] >> 4) & 0x0f0f0f0fu, 8);
    }
    r->s[0] = r->s[1] = qk_i8_half(qk_ld16_a2(b + QK_LEG_OFF_D));
    r->o[0] = r->o[1] = 0.0f;
}

#define QK_I8_OFFSET_q4_1 1

static inline QK_HD void qk_part_i8_q4_1(const uint8_t *b, int p, qk_part_i8 *r) {
    (void)p;
    const qk_legacy_layout t = qk_layout_q4_1();
    for (int k = 0; k < 4; k++) {
        const uint32_t w = qk_ld32_a4(b + t.off_qs + 4 * k);
        r->q[k] = w & 0x0f0f0f0fu;
        r->q[4 + k] = (w >> 4) & 0x0f0f0f0fu;
    }
    const uint32_t dm = qk_ld32_a4(b + QK_LEG_OFF_D); /* d, then m */
    r->s[0] = r->s[1] = qk_i8_half((uint32_t)dm);
    r->o[0] = r->o[1] = qk_i8_half((uint32_t)(dm >> 16));
}

#define QK_I8_OFFSET_q5_0 0

/* The code minus 16 is the nibble where its high bit is set and the nibble + 0xf0 where it is
 * clear: the clear bits, spread to 0x10 and times 15, added in one multiply-add. */
static inline QK_HD void qk_part_i8_q5_0(const uint8_t *b, int p, qk_part_i8 *r) {
    (void)p;
    const qk_legacy_layout t = qk_layout_q5_0();
    uint32_t w[5]; /* qh, then the four words of qs, which follows it */
    qk_ld32n_a2(b + t.off_qh, 5, w);
    const uint32_t clear = ~w[0];
    for (int k = 0; k < 4; k++) {
        r->q[k] = qk_leg_high_bits(clear, 4 * k) * 15u + (w[1 + k] & 0x0f0f0f0fu);
        r->q[4 + k] = qk_leg_high_bits(clear, 16 + 4 * k) * 15u + ((w[1 + k] >> 4) & 0x0f0f0f0fu);
    }
    r->s[0] = r->s[1] = qk_i8_half(qk_ld16_a2(b + QK_LEG_OFF_D));
    r->o[0] = r->o[1] = 0.0f;
}

#define QK_I8_OFFSET_q5_1 1

static inline QK_HD void qk_part_i8_q5_1(const uint8_t *b, int p, qk_part_i8 *r) {
    (void)p;
    const qk_legacy_layout t = qk_layout_q5_1();
    const uint32_t qh = qk_ld32_a4(b + t.off_qh);
    for (int k = 0; k < 4; k++) {
        const uint32_t w = qk_ld32_a4(b + t.off_qs + 4 * k);
        r->q[k] = (w & 0x0f0f0f0fu) | qk_leg_high_bits(qh, 4 * k);
        r->q[4 + k] = ((w >> 4) & 0x0f0f0f0fu) | qk_leg_high_bits(qh, 16 + 4 * k);
    }
    const uint32_t dm = qk_ld32_a4(b + QK_LEG_OFF_D); /* d, then m */
    r->s[0] = r->s[1] = qk_i8_half((uint32_t)dm);
    r->o[0] = r->o[1] = qk_i8_half((uint32_t)(dm >> 16));
}

#define QK_I8_OFFSET_q8_0 0

static inline QK_HD void qk_part_i8_q8_0(const uint8_t *b, int p, qk_part_i8 *r) {
    (void)p;
    qk_ld32n_a2(b + QK_Q8_0_OFF_QS, 8, r->q);
    r->s[0] = r->s[1] = qk_i8_half(qk_ld16_a2(b + QK_LEG_OFF_D));
    r->o[0] = r->o[1] = 0.0f;
}

#endif
