/* IQ4_NL and IQ4_XS (FORMATS.md §6.8, §6.9, §6.11): 4-bit codes into the non-linear table
 * kvalues_iq4nl, one fp16 scale per 32 values (IQ4_NL) or 6-bit sub-scales under one fp16
 * scale per 256 values (IQ4_XS). Ports of kernels/cpu/iquants_block.h (decoders) and
 * kernels/cpu/iquants_iq4_block.h (encoders); the contract is in common.glsl. */
#ifndef QK_IQUANTS_IQ4_GLSL
#define QK_IQUANTS_IQ4_GLSL

/* IQ4_NL: d, 16 nibble bytes; IQ4_XS: d, scales_h, 4 bytes scales_l, 128 nibble bytes. */
#define QK_IQ4_BLK     32
#define QK_IQ4NL_QS    2u
#define QK_IQ4XS_SCH   2u
#define QK_IQ4XS_SCL   4u
#define QK_IQ4XS_QS    8u
#define QK_IQ4XS_NB    8
#define QK_IQ4_NTRY    7 /* ggml_quantize_chunk's scale search width for both types */

/* ---- decoder ---------------------------------------------------------------------------- */

/* kvalues_iq4nl as its 4 words; entry n as a float. */
uvec4 qk_iq4_kv_words() {
    return uvec4(qk_tab[QK_TAB_kvalues_iq4nl], qk_tab[QK_TAB_kvalues_iq4nl + 1u], qk_tab[QK_TAB_kvalues_iq4nl + 2u],
                 qk_tab[QK_TAB_kvalues_iq4nl + 3u]);
}
float qk_iq4_kv_of(uvec4 kw, uint n) { return float(int(kw[n >> 2] << (24u - 8u * (n & 3u))) >> 24); }

/* 32 codes at byte offset qs, half-split: byte j holds element j (low nibble) and element
 * j+16 (high). */
void qk_iq4_unpack_nibbles(uint qs, float dl, out float v[32]) {
    const uvec4 kw = qk_iq4_kv_words();
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint q = qk_rd32(qs + 4u * j);
        [[unroll]] for (uint b = 0u; b < 4u; b++) {
            v[4u * j + b] = dl * qk_iq4_kv_of(kw, (q >> (8u * b)) & 15u);
            v[4u * j + b + 16u] = dl * qk_iq4_kv_of(kw, (q >> (8u * b + 4u)) & 15u);
        }
    }
}

#if defined(QK_TYPE_IQ4_NL)
void qk_dequant_part(uint base, uint p, out float v[32]) { qk_iq4_unpack_nibbles(base + QK_IQ4NL_QS, qk_rdh(base), v); }
#else
void qk_dequant_part(uint base, uint p, out float v[32]) {
    const uint w0 = qk_rd32(base); /* d, then scales_h */
    const float d = qk_fp16_to_f32(w0 & 0xffffu);
    /* the low nibble of sub-block p is nibble p of the 4 scales_l bytes */
    const uint ls = ((qk_rd32(base + QK_IQ4XS_SCL) >> (4u * p)) & 15u) | (((w0 >> (16u + 2u * p)) & 3u) << 4);
    const float dl = d * float(int(ls) - 32);
    qk_iq4_unpack_nibbles(base + QK_IQ4XS_QS + 16u * p, dl, v);
}
#endif

/* ---- encoder ---------------------------------------------------------------------------- */

float qk_iq4_kv[16]; /* kvalues_iq4nl, loaded by qk_quant_block */

/* Index of the table value nearest to v; ties go to the upper neighbour. */
int qk_iq4_nearest_code(float v) {
    if (v <= qk_iq4_kv[0]) return 0;
    if (v >= qk_iq4_kv[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < qk_iq4_kv[mid])
            hi = mid;
        else
            lo = mid;
    }
    return v - qk_iq4_kv[hi - 1] < qk_iq4_kv[hi] - v ? hi - 1 : hi;
}

/* The codes of one 32-block, packed half-split at byte offset qs of blk. */
void qk_iq4_codes_pack(in float x[32], float id, inout uint blk[QK_BLOCK_WORDS], uint qs) {
    for (int j = 0; j < QK_IQ4_BLK / 2; j++) {
        const uint lo = uint(qk_iq4_nearest_code(id * x[j]));
        const uint hi = uint(qk_iq4_nearest_code(id * x[j + QK_IQ4_BLK / 2]));
        qk_blk_set8(blk, qs + uint(j), lo | (hi << 4));
    }
}

/* The encoder's weights for one 32-block: qw*sqrt(sigma2 + x^2), or x^2 without an imatrix
 * (or where the imatrix is all zero over the block). */
void qk_iq4_block_weights(in float x[32], in float qw[32], bool has_qw, float sigma2, out float w[32]) {
    float sum = 0.0;
    if (has_qw) {
        for (int j = 0; j < QK_IQ4_BLK; j++) {
            w[j] = qw[j] * qk_sqrt(sigma2 + x[j] * x[j]);
            sum += w[j];
        }
        if (sum > 0.0) return;
    }
    for (int j = 0; j < QK_IQ4_BLK; j++) w[j] = x[j] * x[j];
}

/* §6.11 scale search over one 32-block (see qk_iq4_block_scale in the C). */
float qk_iq4_block_scale(in float x[32], in float w[32]) {
    float amax = 0.0, mx = 0.0;
    for (int j = 0; j < QK_IQ4_BLK; j++) {
        const float ax = abs(x[j]);
        if (ax > amax) {
            amax = ax;
            mx = x[j];
        }
    }
    if (amax < QKC_GROUP_MAX_EPS) return 0.0;

    float id = qk_div(1.0, qk_div(-mx, qk_iq4_kv[0]));
    float sumqx = 0.0, sumq2 = 0.0;
    for (int j = 0; j < QK_IQ4_BLK; j++) {
        const float q = qk_iq4_kv[qk_iq4_nearest_code(id * x[j])];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    float d = qk_div(sumqx, sumq2);
    float best = d * sumqx;
    for (int t = -QK_IQ4_NTRY; t <= QK_IQ4_NTRY; t++) {
        id = qk_div(float(t) + qk_iq4_kv[0], mx); /* (float)(t + kv[0]): an exact small integer */
        sumqx = 0.0;
        sumq2 = 0.0;
        for (int j = 0; j < QK_IQ4_BLK; j++) {
            const float q = qk_iq4_kv[qk_iq4_nearest_code(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0.0 && sumqx * sumqx > best * sumq2) {
            d = qk_div(sumqx, sumq2);
            best = d * sumqx;
        }
    }
    return d;
}

void qk_iq4_load_kv() {
    const uvec4 kw = qk_iq4_kv_words();
    for (uint n = 0u; n < 16u; n++) qk_iq4_kv[n] = qk_iq4_kv_of(kw, n);
}

#if defined(QK_TYPE_IQ4_NL)
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    qk_iq4_load_kv();
    float s = 0.0;
    for (int j = 0; j < QK_IQ4_BLK; j++) s += x[j] * x[j];
    const float sigma2 = s * (2.0 / 32.0);
    float w[32];
    qk_iq4_block_weights(x, qw, has_qw, sigma2, w);
    const float d = qk_iq4_block_scale(x, w);
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
    /* codes from the unrounded scale, as ggml_quantize_chunk does */
    qk_iq4_codes_pack(x, d != 0.0 ? qk_div(1.0, d) : 0.0, blk, QK_IQ4NL_QS);
}
#else
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    qk_iq4_load_kv();
    float s = 0.0;
    for (int j = 0; j < QK_BLOCK_ELEMS; j++) s += x[j] * x[j];
    const float sigma2 = s * (2.0 / 256.0);
    float scales[QK_IQ4XS_NB];
    float max_scale = 0.0, amax_scale = 0.0;
    for (int c = 0; c < QK_IQ4XS_NB; c++) {
        float xc[32], qc[32], w[32];
        for (int j = 0; j < QK_IQ4_BLK; j++) {
            xc[j] = x[QK_IQ4_BLK * c + j];
            qc[j] = qw[QK_IQ4_BLK * c + j];
        }
        qk_iq4_block_weights(xc, qc, has_qw, sigma2, w);
        scales[c] = qk_iq4_block_scale(xc, w);
        if (abs(scales[c]) > amax_scale) {
            amax_scale = abs(scales[c]);
            max_scale = scales[c];
        }
    }
    /* the largest block gets sub-scale -32, so D carries the opposite sign of its scale */
    const float d = qk_div(-max_scale, 32.0);
    const float id = d != 0.0 ? qk_div(1.0, d) : 0.0;
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
    uint sh = 0u;
    for (int c = 0; c < QK_IQ4XS_NB; c++) {
        float xc[32];
        for (int j = 0; j < QK_IQ4_BLK; j++) xc[j] = x[QK_IQ4_BLK * c + j];
        const int l = qk_clampi(qk_nearest_int(id * scales[c]), -32, 31);
        const float dl = d * float(l);
        qk_iq4_codes_pack(xc, dl != 0.0 ? qk_div(1.0, dl) : 0.0, blk, QK_IQ4XS_QS + 16u * uint(c));
        const uint ls = uint(l + 32);
        qk_blk_or8(blk, QK_IQ4XS_SCL + uint(c / 2), (ls & 15u) << (4u * uint(c % 2)));
        sh |= (ls >> 4) << (2u * uint(c));
    }
    qk_blk_set16(blk, QK_IQ4XS_SCH, sh);
}
#endif

#endif
