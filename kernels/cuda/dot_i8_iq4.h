/* 8-bit part decoders (dot_i8.h) of IQ4_NL and IQ4_XS: 4-bit indices into kvalues_iq4nl, whose
 * int8 levels are the codes. Layouts in iquants_block.h (FORMATS.md §6.8, §6.9). IQ4_NL's
 * 18-byte blocks are 2-byte aligned, IQ4_XS's 136-byte ones 4-byte aligned. */
#ifndef QK_DOT_I8_IQ4_H
#define QK_DOT_I8_IQ4_H

#include "dot_i8.h"
#include "iquants_block.h"

/* The 16 levels as four words; constant-index reads of the table, which nvcc folds to immediates. */
typedef struct qk_iq4_tab {
    uint32_t w[4];
} qk_iq4_tab;

static inline QK_HD qk_iq4_tab qk_iq4_tab_words(void) {
    const uint8_t *kv = (const uint8_t *)QK_TAB(qk_kvalues_iq4nl);
    qk_iq4_tab t;
    for (int k = 0; k < 4; k++) t.w[k] = qk_rd32(kv + 4 * k);
    return t;
}

/* Eight half-split indices (w: 4 bytes, low nibble of byte j = value j, high = value j + 16) to
 * their levels: the low 3 bits of an index pick from levels 0-7 and from 8-15, its bit 3 picks
 * between the two, then the bytes are sorted into low-nibble and high-nibble words. */
static inline QK_HD void qk_iq4_levels(const qk_iq4_tab *t, uint32_t w, uint32_t *lo, uint32_t *hi) {
    const uint32_t upper = 0x32103210u | ((w & 0x88888888u) >> 1);
    const uint32_t s = w & 0x77777777u; /* once here, so that __byte_perm's own masking folds away */
    uint32_t v[2];
    for (int i = 0; i < 2; i++) {
        const uint32_t a = qk_byte_perm(t->w[0], t->w[1], s >> 16 * i);
        const uint32_t c = qk_byte_perm(t->w[2], t->w[3], s >> 16 * i);
        v[i] = qk_byte_perm(a, c, upper >> 16 * i);
    }
    *lo = qk_byte_perm(v[0], v[1], 0x6420u);
    *hi = qk_byte_perm(v[0], v[1], 0x7531u);
}

#define QK_I8_OFFSET_iq4_nl 0

static inline QK_HD void qk_part_i8_iq4_nl(const uint8_t *b, int p, qk_part_i8 *r) {
    (void)p;
    const qk_iq4_tab t = qk_iq4_tab_words();
    uint32_t w[4];
    qk_ld32n_a2(b + QK_IQ4NL_QS, 4, w);
    for (int k = 0; k < 4; k++) qk_iq4_levels(&t, w[k], &r->q[k], &r->q[4 + k]);
    r->s[0] = r->s[1] = qk_i8_half(qk_ld16_a2(b + QK_IQ4NL_D));
    r->o[0] = r->o[1] = 0.0f;
}

#define QK_I8_OFFSET_iq4_xs 0

static inline QK_HD void qk_part_i8_iq4_xs(const uint8_t *b, int p, qk_part_i8 *r) {
    const qk_iq4_tab t = qk_iq4_tab_words();
    const uint8_t *qs = b + QK_IQ4XS_QS + (QK_IQ4_BLK / 2) * p;
    for (int k = 0; k < 4; k++) qk_iq4_levels(&t, qk_ld32_a4(qs + 4 * k), &r->q[k], &r->q[4 + k]);
    const uint32_t dh = qk_ld32_a4(b + QK_IQ4XS_D); /* d, then the high scale bits */
    const uint32_t ls = ((qk_ld32_a4(b + QK_IQ4XS_SCL) >> 4 * p) & 15u) | ((dh >> (16 + 2 * p)) & 3u) << 4;
    r->s[0] = r->s[1] = qk_i8_half(dh) * (float)((int)ls - 32);
    r->o[0] = r->o[1] = 0.0f;
}

#endif
