/* F32, F16 and BF16 weights as pseudo-blocks of 32 values, so that the MoE shaders read float
 * weights through the same part decoder as the quantized types. Decode only: converting to
 * the float types is convert.comp's, and there is no qk_quant_block here.
 *
 * The float types have no block size (qk_type_row_bytes is k values), so a row's last part
 * may hold fewer than 32 values: qk_dequant_tail reads only those, and the callers take it
 * where QK_FLOAT_WEIGHTS is defined. Conversions are exact (qk_fp16_to_f32 keeps subnormals,
 * which unpackHalf2x16 need not). */
#ifndef QK_FLOATS_GLSL
#define QK_FLOATS_GLSL

#define QK_FLOAT_WEIGHTS 1
#define QK_BLOCK_ELEMS   32

#if defined(QK_TYPE_F32)
#define QK_FLOAT_BYTES 4u
#define QK_BLOCK_BYTES 128
#define QK_BLOCK_WORDS 32
#elif defined(QK_TYPE_F16) || defined(QK_TYPE_BF16)
#define QK_FLOAT_BYTES 2u
#define QK_BLOCK_BYTES 64
#define QK_BLOCK_WORDS 16
#else
#error "floats.glsl: not a float type"
#endif

/* The 16-bit value in the low half of h, widened. */
float qk_float16_bits(uint h) {
#if defined(QK_TYPE_F16)
    return qk_fp16_to_f32(h);
#else
    return qk_bf16_to_f32(h);
#endif
}

/* The value at byte offset `off`, at any alignment (a tensor may lie anywhere in a buffer). */
float qk_float_at(uint off) {
#if defined(QK_TYPE_F32)
    return uintBitsToFloat(qk_rd32(off));
#else
    return qk_float16_bits(qk_rd16(off));
#endif
}

/* Values 32p..32p+31 of the pseudo-block at `base`: one part per block (p = 0). Word-aligned
 * blocks are read a word at a time. */
void qk_dequant_part(uint base, uint p, out float v[32]) {
    if ((base & 3u) == 0u) {
        const uint w0 = base >> 2;
#if defined(QK_TYPE_F32)
        [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = uintBitsToFloat(QK_SRC_WORD(w0 + i));
#else
        [[unroll]] for (uint i = 0u; i < 16u; i++) {
            const uint w = QK_SRC_WORD(w0 + i);
            v[2u * i] = qk_float16_bits(w & 0xffffu);
            v[2u * i + 1u] = qk_float16_bits(w >> 16);
        }
#endif
    } else {
        [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = qk_float_at(base + i * QK_FLOAT_BYTES);
    }
}

/* The first n (< 32) values of a row's last, partial part at `base`; the rest are zero and
 * nothing past the row's end is read. */
void qk_dequant_tail(uint base, uint n, out float v[32]) {
    [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = i < n ? qk_float_at(base + i * QK_FLOAT_BYTES) : 0.0;
}

#endif
