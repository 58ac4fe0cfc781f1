/* 8-bit part decoders (dot_i8.h) of the ternary and 1/2-bit formats: TQ1_0, TQ2_0, Q1_0, Q2_0.
 * Layouts in ternary_block.h (FORMATS.md §8); its dequantizers are the reference.
 *
 * Every value is (code - 1) * d, or +-d for Q1_0: the codes carry the -1 (or the sign), the scale
 * is d, and the offset 0. All four blocks (54, 66, 18, 18 bytes) are 2-byte aligned. */
#ifndef QK_DOT_I8_TERNARY_H
#define QK_DOT_I8_TERNARY_H

#include "dot_i8.h"
#include "ternary_block.h"

/* Per byte x - 1 for bytes 0..127: x + 0x7f stays in its byte, and flipping bit 7 takes the
 * 0x80 back off modulo 256. */
static inline QK_HD uint32_t qk_tern_minus1(uint32_t x) { return (x + 0x7f7f7f7fu) ^ 0x80808080u; }

/* The fp16 d that ends a block. */
static inline QK_HD float qk_tern_last_d(const uint8_t *b, int off) { return qk_i8_half(qk_ld16_a2(b + off)); }

/* ---- TQ1_0: five trits per byte, base-3 fixed point -------------------------------------- */

/* Trit n of each byte of w, minus 1, with pow = 3^n: (uint8)(q * pow) * 3 >> 8 (qk_tq1_trit).
 * The products need 16 bits, so the even and the odd bytes go through 16-bit lanes apart; the
 * trits come out at bits 8 and 24 of each. */
static inline QK_HD uint32_t qk_tern_tq1_trits(uint32_t w, uint32_t pow) {
    const uint32_t e = (((w & 0x00ff00ffu) * pow) & 0x00ff00ffu) * 3u;
    const uint32_t o = ((((w >> 8) & 0x00ff00ffu) * pow) & 0x00ff00ffu) * 3u;
    return qk_tern_minus1(((e >> 8) & 0x00030003u) | (o & 0x03000300u));
}

#define QK_I8_OFFSET_tq1_0 0

/* Parts 0..4 are trit p of qs bytes 0..31. Parts 5..7 read qs bytes 32..47 twice, trits 2(p - 5)
 * and 2(p - 5) + 1, except that part 7's second half is qh: its 4 bytes, trits 0..3. Selects
 * rather than branches, as neighbouring lanes decode different parts. */
static inline QK_HD void qk_part_i8_tq1_0(const uint8_t *b, int p, qk_part_i8 *r) {
    const int head = p < 5, tail = p == 7;
    const uint32_t pow0 = QK_TAB(qk_tq1_0_pow3)[head ? p : 2 * p - 10];
    const uint32_t pow1 = QK_TAB(qk_tq1_0_pow3)[head ? p : 2 * p - 9];
    const uint8_t *q0 = b + QK_TQ1_QS + (head ? 0 : 32), *q1 = b + QK_TQ1_QS + (head ? 16 : 32);
    const uint32_t qh = qk_ld32_a2(b + QK_TQ1_QH);
    uint32_t w0[4], w1[4];
    qk_ld32n_a2(q0, 4, w0);
    qk_ld32n_a2(q1, 4, w1);
    for (int k = 0; k < 4; k++) {
        r->q[k] = qk_tern_tq1_trits(w0[k], pow0);
        r->q[4 + k] = qk_tern_tq1_trits(tail ? qh : w1[k], tail ? (uint32_t)QK_TAB(qk_tq1_0_pow3)[k] : pow1);
    }
    r->s[0] = r->s[1] = qk_tern_last_d(b, QK_TQ1_D);
    r->o[0] = r->o[1] = 0.0f;
}

/* ---- TQ2_0: 2-bit codes, quarter addressing ---------------------------------------------- */

#define QK_I8_OFFSET_tq2_0 0

/* Part p: bit pair p % 4 of the 32 bytes of half p / 4. */
static inline QK_HD void qk_part_i8_tq2_0(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint8_t *qs = b + QK_TQ2_QS + 32 * (p >> 2);
    const int sh = 2 * (p & 3);
    uint32_t w[8];
    qk_ld32n_a2(qs, 8, w);
    for (int k = 0; k < 8; k++) r->q[k] = qk_tern_minus1((w[k] >> sh) & 0x03030303u);
    r->s[0] = r->s[1] = qk_tern_last_d(b, QK_TQ2_D);
    r->o[0] = r->o[1] = 0.0f;
}

/* ---- Q1_0: one sign bit per value ------------------------------------------------------- */

#define QK_I8_OFFSET_q1_0 0

/* Part p is qs word p, inverted: bits 4k..4k+3 go to bit 1 of bytes 0..3 (the multiply moves bit
 * j to 8j + 1, its other partial products fall outside the mask without carries), and 2 * 0x7f + 1
 * is -1, 0 + 1 is +1 (one multiply-add). Spreading the bits by byte permutes instead (three a
 * word, as Q2_0 below) took 1.03x the time on an H100 at 1 to 32 tokens (dd0db60), where Q2_0's
 * took 0.97x its multiplications'. */
static inline QK_HD void qk_part_i8_q1_0(const uint8_t *b, int p, qk_part_i8 *r) {
    uint32_t w;
    qk_ld32n_a2(b + QK_Q1_0_QS + 4 * p, 1, &w);
    const uint32_t clear = ~w;
    for (int k = 0; k < 8; k++) r->q[k] = (((clear >> 4 * k) & 15u) * 0x00408102u & 0x02020202u) * 0x7fu + 0x01010101u;
    r->s[0] = r->s[1] = qk_i8_half(qk_ld16_a2(b + QK_Q1_0_D));
    r->o[0] = r->o[1] = 0.0f;
}

/* ---- Q2_0: 2-bit codes in sequence ------------------------------------------------------ */

#define QK_I8_OFFSET_q2_0 0

/* Part p is qs bytes 8p..8p+7, byte j holding values 4j..4j+3. Two bytes at a time, each in a
 * 16-bit lane: its four codes spread to the lane's four nibbles (two shift-and-masks), which then
 * select code - 1 from the table 0x020100ff (0xff, 0, 1, 2), one byte permute a word. */
static inline QK_HD void qk_part_i8_q2_0(const uint8_t *b, int p, qk_part_i8 *r) {
    const uint8_t *qs = b + QK_Q2_0_QS + (QKC_QK2_0 / 8) * p;
    uint32_t w[2];
    qk_ld32n_a2(qs, 2, w);
    for (int h = 0; h < 2; h++) {
        for (int j = 0; j < 4; j += 2) {
            uint32_t x = qk_byte_perm(w[h], 0u, j ? 0x4342u : 0x4140u); /* bytes j, j + 1 in two lanes */
            x = (x | x << 4) & 0x0f0f0f0fu;
            x = (x | x << 2) & 0x33333333u;
            r->q[4 * h + j] = qk_byte_perm(0x020100ffu, 0u, x);
            r->q[4 * h + j + 1] = qk_byte_perm(0x020100ffu, 0u, x >> 16);
        }
    }
    r->s[0] = r->s[1] = qk_i8_half(qk_ld16_a2(b + QK_Q2_0_D));
    r->o[0] = r->o[1] = 0.0f;
}

#endif
