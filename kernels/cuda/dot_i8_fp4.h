/* 8-bit part decoders (dot_i8.h) of MXFP4 and NVFP4. Layouts in fp4_block.h (FORMATS.md §7); its
 * dequantizers are the reference.
 *
 * The codes are kvalues_mxfp4's levels, twice the E2M1 values (-12..12), and the scales the half
 * values the reference multiplies them by, so every value is the reference's product exactly.
 * MXFP4's 17-byte blocks are only 1-byte aligned; NVFP4's 36-byte ones 4-byte aligned. */
#ifndef QK_DOT_I8_FP4_H
#define QK_DOT_I8_FP4_H

#include "dot_i8.h"
#include "fp4_block.h"

/* The eight E2M1 codes in the nibbles of w to their levels: lo gets the low nibbles' in bytes 0..3,
 * hi the high nibbles'. Computed in nibble lanes (no level needs more than 4 bits of magnitude):
 * magnitude code m (0..7) -> 0,1,2,3,4,6,8,12 is m, plus m & 3 from 4 on, plus 2 more for 7. A
 * negative level is 256 - v, i.e. 16 - v in its nibble and 0xf above; -0 (code 8) gives +0. */
static inline QK_HD void qk_fp4_levels(uint32_t w, uint32_t *lo, uint32_t *hi) {
    const uint32_t m = w & 0x77777777u;
    const uint32_t ge4 = (m >> 2) & 0x11111111u;
    const uint32_t v = m + (m & ge4 * 3u) + ((m & (m >> 1) & ge4) << 1);
    /* bit 0 of a nibble: sign set and magnitude nonzero (m + 7 reaches bit 3 from m = 1 on) */
    const uint32_t neg = (w & (m + 0x77777777u) & 0x88888888u) >> 3;
    const uint32_t fill = neg * 15u;     /* 0xf per negative nibble */
    const uint32_t n = (v ^ fill) + neg; /* 16 - v where negative: v >= 1 there, so no carry */
    *lo = (n & 0x0f0f0f0fu) | ((fill << 4) & 0xf0f0f0f0u);
    *hi = ((n >> 4) & 0x0f0f0f0fu) | (fill & 0xf0f0f0f0u);
}

/* Half-split nibbles: word k of qs (bytes 4k..4k+3) holds values 4k..4k+3 in its low nibbles and
 * 16 + 4k.. in its high ones. */
#define QK_I8_OFFSET_mxfp4 0

static inline QK_HD void qk_part_i8_mxfp4(const uint8_t *b, int p, qk_part_i8 *r) {
    (void)p;
    for (int k = 0; k < 4; k++) qk_fp4_levels(qk_ld32_a1(b + QK_MXFP4_OFF_QS + 4 * k), &r->q[k], &r->q[4 + k]);
    r->s[0] = r->s[1] = qk_e8m0_to_f32_half(b[0]);
    r->o[0] = r->o[1] = 0.0f;
}

/* Part p is sub-blocks 2p and 2p + 1, one per half, each with its own scale byte. A sub-block's
 * 8 bytes hold its values 0..7 in their low nibbles and 8..15 in their high ones. */
#define QK_I8_OFFSET_nvfp4 0

static inline QK_HD void qk_part_i8_nvfp4(const uint8_t *b, int p, qk_part_i8 *r) {
    const int half_bytes = QKC_QK_NVFP4_SUB / 2;
    const uint8_t *qs = b + QK_NVFP4_OFF_QS + 2 * half_bytes * p;
    const uint32_t sc = qk_ld32_a4(b + QK_NVFP4_OFF_D) >> 16 * p; /* the four scale bytes */
    for (int h = 0; h < 2; h++) {
        uint32_t *q = r->q + 4 * h;
        qk_fp4_levels(qk_ld32_a4(qs + half_bytes * h), &q[0], &q[2]);
        qk_fp4_levels(qk_ld32_a4(qs + half_bytes * h + 4), &q[1], &q[3]);
        r->s[h] = qk_ue4m3_to_f32_half((uint8_t)(sc >> 8 * h));
    }
    r->o[0] = r->o[1] = 0.0f;
}

#endif
