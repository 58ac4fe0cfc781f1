/* 8-bit part decoders (dot_i8.h) of the K-quants: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Layouts in
 * kquants_block.h (FORMATS.md §5); the CPU dequantizers there are the reference.
 *
 * Q2_K, Q4_K and Q5_K keep their unsigned codes and carry the min as the offset; Q3_K folds its
 * -4 and Q6_K its -32 into the codes, so their offset is 0. Blocks of 84, 144 and 176 bytes are
 * 4-byte aligned, Q3_K (110) and Q6_K (210) only 2-byte aligned. The part index is taken as
 * unsigned, so that its / and % compile to shifts and masks. */
#ifndef QK_DOT_I8_KQUANTS_H
#define QK_DOT_I8_KQUANTS_H

#include "dot_i8.h"
#include "kquants_block.h"

/* The eight words at p (2-byte aligned) shifted right by sh < 8, their top sh bits unspecified:
 * for codes masked out of the low bits of each byte. On the device nine aligned 32-bit loads
 * from p rounded down to 4 and one funnel shift per word, where qk_ld32_a2 takes sixteen 16-bit
 * loads and a shift. Each aligned word holds a byte of the 32 at p, and its other bytes lie in
 * the block as long as the 32 bytes do not end it, or are the 2 bytes before a block at 2 mod 4
 * (inside the allocation, which is 4-byte aligned). */
static inline QK_HD void qk_kq_ld32x8_a2_shr(const uint8_t *p, unsigned sh, uint32_t *w) {
#ifdef __CUDA_ARCH__
    const unsigned mis = (unsigned)((uintptr_t)p & 3u);
    const uint32_t *a = (const uint32_t *)(p - mis); /* not through an integer: keeps it a global load */
    uint32_t v[9];
    for (int k = 0; k < 9; k++) v[k] = a[k];
    for (int k = 0; k < 8; k++) w[k] = (uint32_t)(((uint64_t)v[k + 1] << 32 | v[k]) >> (8 * mis + sh));
#else
    for (int k = 0; k < 8; k++) w[k] = qk_rd32(p + 4 * k) >> sh;
#endif
}

/* ---- Q2_K: codes 0..3 of the quarter addressing, scale and min per 16 ------------------- */

#define QK_I8_OFFSET_q2_k 1

static inline QK_HD void qk_part_i8_q2_k(const uint8_t *b, int p, qk_part_i8 *r) {
    const unsigned u = (unsigned)p;
    /* part p is quarter p % 4 of half p / 4: bit pair p % 4 of the half's 32 bytes */
    const uint8_t *qs = b + QK_Q2K_QS + 32 * (u / 4);
    const unsigned sh = 2 * (u % 4);
    for (int k = 0; k < 8; k++) r->q[k] = (qk_ld32_a4(qs + 4 * k) >> sh) & 0x03030303u;
    const uint32_t dd = qk_ld32_a4(b + QK_Q2K_D); /* d, then dmin */
    const uint32_t sc = qk_ld32_a4(b + QK_Q2K_SCALES + 4 * (u / 2)) >> 16 * (u % 2);
    const float d = qk_i8_half(dd), dmin = qk_i8_half(dd >> 16);
    for (int h = 0; h < 2; h++) {
        const uint32_t s = sc >> 8 * h;
        r->s[h] = d * (float)(s & 15u);
        r->o[h] = -(dmin * (float)((s >> 4) & 15u));
    }
}

/* ---- Q3_K: 2 low bits + hmask, 6-bit signed scale per 16 ------------------------------- */

#define QK_I8_OFFSET_q3_k 0

static inline QK_HD void qk_part_i8_q3_k(const uint8_t *b, int p, qk_part_i8 *r) {
    const unsigned u = (unsigned)p;
    const uint8_t *qs = b + QK_Q3K_QS + 32 * (u / 4);
    const unsigned sh = 2 * (u % 4);
    uint32_t q2[8], hm[8];
    qk_kq_ld32x8_a2_shr(qs, sh, q2);
    qk_kq_ld32x8_a2_shr(b + QK_Q3K_HMASK, u, hm);
    for (int k = 0; k < 8; k++) {
        const uint32_t lo = q2[k] & 0x03030303u;
        const uint32_t clear = ~hm[k] & 0x01010101u;
        /* a clear hmask bit means q2 - 4, i.e. q2 + 0xfc in its byte (no carry out of it) */
        r->q[k] = lo + clear * 0xfcu;
    }
    /* sub-blocks 2p, 2p+1: low nibbles in bytes 2p % 8 and the next (high nibbles for p >= 4),
     * top bit pairs 2 * (p / 2) of bytes 8 + 2 * (p % 2) and the next */
    const uint32_t lo4 = (qk_ld16_a2(b + QK_Q3K_SCALES + 2 * (u % 4)) >> 4 * (u / 4)) & 0x0f0fu;
    const uint32_t hi2 = (qk_ld16_a2(b + QK_Q3K_SCALES + 8 + 2 * (u % 2)) >> 2 * (u / 2)) & 0x0303u;
    const uint32_t sc = lo4 | hi2 << 4;
    const float d = qk_i8_half(qk_ld16_a2(b + QK_Q3K_D));
    r->s[0] = d * (float)((int)(sc & 63u) - 32);
    r->s[1] = d * (float)((int)(sc >> 8) - 32);
    r->o[0] = r->o[1] = 0.0f;
}

/* ---- Q4_K and Q5_K: one 6-bit scale and min per 32 ------------------------------------- */

/* qk_kq_scale_min6 without a branch on j, from the scales' three words (bytes 0-3, 4-7, 8-11):
 * S[j % 4], S[4 + j % 4] and S[8 + j % 4] hold everything sub-block j needs. */
static inline QK_HD void qk_kq_scale_min6_i8(const uint32_t *S, unsigned j, uint32_t *sc, uint32_t *mn) {
    const unsigned sh = 8 * (j % 4);
    const uint32_t a = S[0] >> sh, m = S[1] >> sh, c = S[2] >> sh;
    *sc = j < 4 ? a & 63u : (c & 15u) | ((a >> 2) & 0x30u);
    *mn = j < 4 ? m & 63u : ((c >> 4) & 15u) | ((m >> 2) & 0x30u);
}

/* Q4_K's and Q5_K's scale and offset of part u from the block's first 16 bytes (h: d and dmin as
 * fp16, then the 12 bytes of scales): d * scale, -dmin * min. */
static inline QK_HD void qk_kq_part_scale_min(const uint32_t *h, unsigned u, qk_part_i8 *r) {
    uint32_t sc, mn;
    qk_kq_scale_min6_i8(h + 1, u, &sc, &mn);
    r->s[0] = r->s[1] = qk_i8_half(h[0]) * (float)sc;
    r->o[0] = r->o[1] = -(qk_i8_half(h[0] >> 16) * (float)mn);
}

/* Both blocks (144 and 176 bytes) are multiples of 16 bytes, read 16 at a time (QK_I8_ALIGN). */
#if QK_Q4K_D != 0 || QK_Q4K_SCALES != 4 || QK_Q4K_QS % 16 || QK_Q5K_D != 0 || QK_Q5K_SCALES != 4 || QK_Q5K_QH % 16 ||  \
    QK_Q5K_QS % 16
#error "Q4_K/Q5_K: the decoders read d, dmin and the scales as the block's first 16 bytes"
#endif

#define QK_I8_OFFSET_q4_k 1

static inline QK_HD void qk_part_i8_q4_k(const uint8_t *b, int p, qk_part_i8 *r) {
    const unsigned u = (unsigned)p;
    /* part p: nibble p % 2 of 64-value chunk p / 2 */
    const uint8_t *qs = b + QK_Q4K_QS + 32 * (u / 2);
    const unsigned sh = 4 * (u % 2);
    uint32_t h[4], q[8];
    qk_ld32x4_a16(b, h);
    qk_ld32x4_a16(qs, q);
    qk_ld32x4_a16(qs + 16, q + 4);
    for (int k = 0; k < 8; k++) r->q[k] = (q[k] >> sh) & 0x0f0f0f0fu;
    qk_kq_part_scale_min(h, u, r);
}

#define QK_I8_OFFSET_q5_k 1

static inline QK_HD void qk_part_i8_q5_k(const uint8_t *b, int p, qk_part_i8 *r) {
    const unsigned u = (unsigned)p;
    const uint8_t *qs = b + QK_Q5K_QS + 32 * (u / 2);
    const unsigned sh = 4 * (u % 2);
    uint32_t h[4], q[8], qh[8];
    qk_ld32x4_a16(b, h);
    qk_ld32x4_a16(qs, q);
    qk_ld32x4_a16(qs + 16, q + 4);
    qk_ld32x4_a16(b + QK_Q5K_QH, qh);
    qk_ld32x4_a16(b + QK_Q5K_QH + 16, qh + 4);
    for (int k = 0; k < 8; k++) r->q[k] = ((q[k] >> sh) & 0x0f0f0f0fu) + (((qh[k] >> u) & 0x01010101u) << 4);
    qk_kq_part_scale_min(h, u, r);
}

/* ---- Q6_K: 4 low bits + 2 high bits, int8 scale per 16 --------------------------------- */

#define QK_I8_OFFSET_q6_k 0

static inline QK_HD void qk_part_i8_q6_k(const uint8_t *b, int p, qk_part_i8 *r) {
    const unsigned u = (unsigned)p;
    /* part p = 32-group g = p % 4 of 128-half p / 4: nibble g / 2 of ql bytes 32 * (g % 2) on,
     * bit pair g of the half's qh bytes */
    const uint8_t *ql = b + QK_Q6K_QL + 64 * (u / 4) + 32 * (u % 2);
    const uint8_t *qh = b + QK_Q6K_QH + 32 * (u / 4);
    const unsigned shl = 4 * ((u % 4) / 2), shh = 2 * (u % 4);
    uint32_t l4[8], h2[8];
    qk_kq_ld32x8_a2_shr(ql, shl, l4);
    qk_kq_ld32x8_a2_shr(qh, shh, h2);
    for (int k = 0; k < 8; k++) {
        const uint32_t lo = l4[k] & 0x0f0f0f0fu;
        const uint32_t hi = h2[k] & 0x03030303u;
        /* q - 32 per byte for q in 0..63: q + 0x60 stays in its byte (0x60..0x9f), and flipping
         * bit 7 of that is adding 0x80 modulo 256 */
        r->q[k] = (lo + (hi << 4) + 0x60606060u) ^ 0x80808080u;
    }
    const uint32_t sc = qk_ld16_a2(b + QK_Q6K_SCALES + 2 * u);
    const float d = qk_i8_half(qk_ld16_a2(b + QK_Q6K_D));
    r->s[0] = d * (float)(int8_t)(uint8_t)sc;
    r->s[1] = d * (float)(int8_t)(uint8_t)(sc >> 8);
    r->o[0] = r->o[1] = 0.0f;
}

#endif
