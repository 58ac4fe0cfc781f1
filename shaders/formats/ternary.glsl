/* TQ1_0 and TQ2_0 (FORMATS.md §8): ternary values {-1, 0, +1} * d, 256 per block; a GLSL port
 * of kernels/cpu/ternary_block.h. Neither encoder takes an imatrix.
 * TQ1_0 (54 bytes): 48 bytes of 5 trits (base-3 fixed point), 4 bytes of 4 trits, fp16 d.
 * TQ2_0 (66 bytes): 64 bytes of 2-bit codes, fp16 d. */
#ifndef QK_TERNARY_GLSL
#define QK_TERNARY_GLSL

#define QK_BLOCK_ELEMS 256

#if defined(QK_TYPE_TQ1_0)

#define QK_BLOCK_BYTES 54
#define QK_BLOCK_WORDS 14
#define QK_TQ1_QH 48
#define QK_TQ1_D  52

/* Trit of a base-3 fixed-point byte q, given pow3 = 3^n: multiply up (keeping 8 bits) and
 * read the top trit. */
int qk_tq1_trit(uint q, uint pow3) { return int((((q * pow3) & 0xffu) * 3u) >> 8); }

uint qk_tq1_pow3(uint n) { return qk_tab_u8(QK_TAB_tq1_0_pow3, n); }

void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base + uint(QK_TQ1_D));
    if (p < 5u) { /* values 32p + j: byte j, trit p */
        const uint m = qk_tq1_pow3(p);
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            uint w = qk_rd32(base + 4u * j);
            [[unroll]] for (uint k = 0u; k < 4u; k++)
                v[4u * j + k] = float(qk_tq1_trit((w >> (8u * k)) & 0xffu, m) - 1) * d;
        }
    } else if (p < 7u) { /* r = i - 160 - 32(p-5): byte 32 + r%16, trit 2(p-5) + r/16 */
        const uint m0 = qk_tq1_pow3(2u * (p - 5u)), m1 = qk_tq1_pow3(2u * (p - 5u) + 1u);
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint w = qk_rd32(base + 32u + 4u * j);
            [[unroll]] for (uint k = 0u; k < 4u; k++) {
                uint q = (w >> (8u * k)) & 0xffu;
                v[4u * j + k] = float(qk_tq1_trit(q, m0) - 1) * d;
                v[4u * j + k + 16u] = float(qk_tq1_trit(q, m1) - 1) * d;
            }
        }
    } else { /* values 224..239: byte 32 + r, trit 4; 240..255: byte 48 + r%4, trit r/4 */
        const uint m4 = qk_tq1_pow3(4u);
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint w = qk_rd32(base + 32u + 4u * j);
            [[unroll]] for (uint k = 0u; k < 4u; k++) v[4u * j + k] = float(qk_tq1_trit((w >> (8u * k)) & 0xffu, m4) - 1) * d;
        }
        uint wh = qk_rd32(base + uint(QK_TQ1_QH));
        [[unroll]] for (uint t = 0u; t < 4u; t++) {
            const uint m = qk_tq1_pow3(t);
            [[unroll]] for (uint k = 0u; k < 4u; k++) v[16u + 4u * t + k] = float(qk_tq1_trit((wh >> (8u * k)) & 0xffu, m) - 1) * d;
        }
    }
}

/* Element i -> (byte offset, trit number) in a TQ1_0 block. */
void qk_tq1_position(int i, out int byte_, out int trit) {
    if (i < 160) {
        byte_ = i % 32;
        trit = i / 32;
    } else if (i < 240) {
        byte_ = 32 + (i - 160) % 16;
        trit = (i - 160) / 16;
    } else {
        byte_ = QK_TQ1_QH + (i - 240) % 4;
        trit = (i - 240) / 4;
    }
}

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float amax = 0.0;
    for (int i = 0; i < 256; i++) amax = max(amax, abs(x[i]));
    const float d = amax, id = d != 0.0 ? qk_div(1.0, d) : 0.0;
    /* q = sum of trits as base-3 digits, most significant first; qh bytes hold 4 trits and a
     * zero fifth */
    int q[52];
    for (int k = 0; k < 52; k++) q[k] = 0;
    for (int i = 0; i < 256; i++) {
        int byte_, trit;
        qk_tq1_position(i, byte_, trit);
        int t = qk_lround_int(x[i] * id) + 1;
        int pw = 1;
        for (int k = trit; k < 4; k++) pw *= 3;
        q[byte_] += t * pw;
    }
    for (int k = 0; k < 52; k++) qk_blk_or8(blk, uint(k), uint((q[k] * 256 + 242) / 243));
    qk_blk_set16(blk, uint(QK_TQ1_D), qk_f32_to_fp16(d));
}

#elif defined(QK_TYPE_TQ2_0)

#define QK_BLOCK_BYTES 66
#define QK_BLOCK_WORDS 17
#define QK_TQ2_D 64

/* Value i: bits 2*((i%128)/32) of byte 32*(i/128) + i%32; so part p is the 32 bytes at
 * 32*(p/4) shifted by 2*(p%4). */
void qk_dequant_part(uint base, uint p, out float v[32]) {
    const float d = qk_rdh(base + uint(QK_TQ2_D));
    const uint off = base + 32u * (p >> 2), s = 2u * (p & 3u);
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        uint w = qk_rd32(off + 4u * j) >> s;
        [[unroll]] for (uint k = 0u; k < 4u; k++) v[4u * j + k] = float(int((w >> (8u * k)) & 3u) - 1) * d;
    }
}

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float amax = 0.0;
    for (int i = 0; i < 256; i++) amax = max(amax, abs(x[i]));
    const float d = amax, id = d != 0.0 ? qk_div(1.0, d) : 0.0;
    for (int i = 0; i < 256; i++) {
        int q = qk_lround_int(x[i] * id) + 1;
        qk_blk_or8(blk, uint(32 * (i / 128) + i % 32), uint(q << (2 * ((i % 128) / 32))));
    }
    qk_blk_set16(blk, uint(QK_TQ2_D), qk_f32_to_fp16(d));
}

#else
#error "ternary.glsl: not a ternary type"
#endif

#endif
