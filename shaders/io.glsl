/* Loads and stores of the main shaders: float values of the three source types, and writes
 * of whole or partial 32-bit words (blocks and 16-bit values need not align with words; a
 * word shared with a neighbouring invocation is merged with atomics, never overwritten). */
#ifndef QK_IO_GLSL
#define QK_IO_GLSL

#include "qk_format_ids.glsl" /* the float types' ids, QK_ID_F32, QK_ID_F16, QK_ID_BF16 */

/* Value i of a source of type t starting at byte `base` of QK_SRC_WORD. */
float qk_load_value(uint t, uint base, uint i) {
    if (t == QK_ID_F32) return uintBitsToFloat(qk_rd32(base + 4u * i));
    uint h = qk_rd16(base + 2u * i);
    return t == QK_ID_F16 ? qk_fp16_to_f32(h) : qk_bf16_to_f32(h);
}

/* The raw bits of value i, for the non-finite check: exponent all ones is NaN or Inf. */
bool qk_value_nonfinite(uint t, uint base, uint i) {
    if (t == QK_ID_F32) return (qk_rd32(base + 4u * i) & 0x7f800000u) == 0x7f800000u;
    uint h = qk_rd16(base + 2u * i);
    return t == QK_ID_F16 ? (h & 0x7c00u) == 0x7c00u : (h & 0x7f80u) == 0x7f80u;
}

#ifdef QK_DST_WORDS
/* Bytes `mask` of word w of QK_DST_WORDS take those of `v`: a plain store when the word is
 * entirely ours, otherwise two atomics that leave the other bytes alone. */
void qk_store_bytes(uint w, uint v, uint mask) {
    if (mask == 0u) return;
    if (mask == 0xffffffffu) {
        QK_DST_WORDS[w] = v;
    } else {
        atomicAnd(QK_DST_WORDS[w], ~mask);
        atomicOr(QK_DST_WORDS[w], v & mask);
    }
}

/* Writes n bytes, given as little-endian words `bytes_at(k)` of a local array, at byte
 * offset `off` of QK_DST_WORDS. */
#define QK_STORE_SPAN(off, n, WORDS)                                                                 \
    {                                                                                                \
        uint s_ = ((off) & 3u) * 8u, w0_ = (off) >> 2, nw_ = ((off & 3u) + (n) + 3u) >> 2;           \
        for (uint k_ = 0u; k_ < nw_; k_++) {                                                         \
            uint lo_ = k_ < (((n) + 3u) >> 2) ? WORDS[k_] : 0u;                                      \
            uint prev_ = k_ > 0u && k_ - 1u < (((n) + 3u) >> 2) ? WORDS[k_ - 1u] : 0u;              \
            uint v_ = s_ == 0u ? lo_ : (lo_ << s_) | (prev_ >> (32u - s_));                          \
            uint first_ = k_ == 0u ? ((off) & 3u) : 0u;                                              \
            uint end_ = min(4u, ((off) & 3u) + (n) - 4u * k_);                                       \
            uint m_ = 0u;                                                                            \
            for (uint b_ = first_; b_ < end_; b_++) m_ |= 0xffu << (8u * b_);                        \
            qk_store_bytes(w0_ + k_, v_, m_);                                                        \
        }                                                                                            \
    }
#endif

#endif
