/* K-quants on the GPU: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, one 256-element super-block per
 * invocation. A port of kernels/cpu/kquants_block.h (FORMATS.md §5): the decoders give the
 * reference's floats bit for bit, the encoders its bytes (the contract is in common.glsl).
 *
 * Decoders read a part of 32 values as eight whole words of codes: every part of these
 * layouts is one run of 32 code bytes (each holding this part's bits at one shift), plus a
 * run of 32 high-bit bytes for Q3_K, Q5_K and Q6_K. Their results are `precise`, so that a
 * driver never fuses the reference's separate multiply and subtract. */
#ifndef QK_KQUANTS_GLSL
#define QK_KQUANTS_GLSL

#include "quant_search.glsl"

/* byte offsets inside one block, as QK_Q*K_* of kquants_block.h */
#define QK_Q2K_SCALES 0u
#define QK_Q2K_QS 16u
#define QK_Q2K_D 80u
#define QK_Q2K_DMIN 82u

#define QK_Q3K_HMASK 0u
#define QK_Q3K_QS 32u
#define QK_Q3K_SCALES 96u
#define QK_Q3K_D 108u

#define QK_Q4K_D 0u
#define QK_Q4K_DMIN 2u
#define QK_Q4K_SCALES 4u
#define QK_Q4K_QS 16u

#define QK_Q5K_D 0u
#define QK_Q5K_DMIN 2u
#define QK_Q5K_SCALES 4u
#define QK_Q5K_QH 16u
#define QK_Q5K_QS 48u

#define QK_Q6K_QL 0u
#define QK_Q6K_QH 128u
#define QK_Q6K_SCALES 192u
#define QK_Q6K_D 208u


/* ---- decoders --------------------------------------------------------------------------- */

/* The 8 words (32 bytes) at byte offset `off`, any alignment: 9 source words at most. */
void qk_kq_rd8w(uint off, out uint q[8]) {
    uint s = (off & 3u) * 8u, w0 = off >> 2;
    if (s == 0u) {
        [[unroll]] for (uint k = 0u; k < 8u; k++) q[k] = QK_SRC_WORD(w0 + k);
    } else {
        uint prev = QK_SRC_WORD(w0);
        [[unroll]] for (uint k = 0u; k < 8u; k++) {
            uint next = QK_SRC_WORD(w0 + k + 1u);
            q[k] = (prev >> s) | (next << (32u - s));
            prev = next;
        }
    }
}

/* Q4_K/Q5_K: the 6-bit (scale, min) pair of sub-block j from the 12 bytes at `off`. */
void qk_kq_scale_min6_rd(uint off, uint j, out uint sc, out uint mn) {
    if (j < 4u) {
        sc = qk_rd8(off + j) & 63u;
        mn = qk_rd8(off + j + 4u) & 63u;
    } else {
        uint hi = qk_rd8(off + j + 4u);
        sc = (hi & 15u) | ((qk_rd8(off + j - 4u) >> 6) << 4);
        mn = (hi >> 4) | ((qk_rd8(off + j) >> 6) << 4);
    }
}

#if defined(QK_TYPE_Q2_K)

void qk_dequant_part(uint base, uint p, out float v[32]) {
    uint dm = qk_rd32(base + QK_Q2K_D);
    float d = qk_fp16_to_f32(dm & 0xffffu), dmin = qk_fp16_to_f32(dm >> 16);
    uint sc = qk_rd16(base + QK_Q2K_SCALES + 2u * p);
    float dl0 = d * float(sc & 15u), ml0 = dmin * float((sc >> 4) & 15u);
    float dl1 = d * float((sc >> 8) & 15u), ml1 = dmin * float(sc >> 12);
    uint qw[8], sh = 2u * (p & 3u);
    qk_kq_rd8w(base + QK_Q2K_QS + 32u * (p >> 2), qw);
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = qw[w] >> sh;
        float dl = w < 4u ? dl0 : dl1, ml = w < 4u ? ml0 : ml1;
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            precise float r = dl * float((q >> (8u * k)) & 3u) - ml;
            v[4u * w + k] = r;
        }
    }
}

#elif defined(QK_TYPE_Q3_K)

void qk_dequant_part(uint base, uint p, out float v[32]) {
    float d = qk_rdh(base + QK_Q3K_D);
    /* sub-blocks 2p, 2p+1: low nibbles in bytes 2(p%4), +1 (high nibbles from p = 4), high
     * pairs in bytes 8 + 2(p%2), +1 at bit 2(p/2) */
    uint lo = qk_rd16(base + QK_Q3K_SCALES + 2u * (p & 3u)) >> (p >= 4u ? 4u : 0u);
    uint hi = qk_rd16(base + QK_Q3K_SCALES + 8u + 2u * (p & 1u)) >> (2u * (p >> 1));
    float dl0 = d * float(int((lo & 15u) | ((hi & 3u) << 4)) - 32);
    float dl1 = d * float(int(((lo >> 8) & 15u) | (((hi >> 8) & 3u) << 4)) - 32);
    uint qw[8], hw[8], sh = 2u * (p & 3u);
    qk_kq_rd8w(base + QK_Q3K_QS + 32u * (p >> 2), qw);
    qk_kq_rd8w(base + QK_Q3K_HMASK, hw);
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = qw[w] >> sh;
        uint hm = hw[w] >> p;
        float dl = w < 4u ? dl0 : dl1;
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            uint c = ((q >> (8u * k)) & 3u) | (((hm >> (8u * k)) & 1u) << 2);
            v[4u * w + k] = dl * float(int(c) - 4);
        }
    }
}

#elif defined(QK_TYPE_Q4_K) || defined(QK_TYPE_Q5_K)

void qk_dequant_part(uint base, uint s, out float v[32]) {
    uint dm = qk_rd32(base);
    float d = qk_fp16_to_f32(dm & 0xffffu), dmin = qk_fp16_to_f32(dm >> 16);
    uint sc, mn;
    qk_kq_scale_min6_rd(base + QK_Q4K_SCALES, s, sc, mn);
    float d1 = d * float(sc), m1 = dmin * float(mn);
    uint qw[8], sh = 4u * (s & 1u);
#if defined(QK_TYPE_Q4_K)
    qk_kq_rd8w(base + QK_Q4K_QS + 32u * (s >> 1), qw);
#else
    uint hw[8];
    qk_kq_rd8w(base + QK_Q5K_QS + 32u * (s >> 1), qw);
    qk_kq_rd8w(base + QK_Q5K_QH, hw);
#endif
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = (qw[w] >> sh) & 0x0f0f0f0fu;
#if defined(QK_TYPE_Q5_K)
        q |= ((hw[w] >> s) & 0x01010101u) << 4;
#endif
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            precise float r = d1 * float((q >> (8u * k)) & 0xffu) - m1;
            v[4u * w + k] = r;
        }
    }
}

#else /* Q6_K */

void qk_dequant_part(uint base, uint p, out float v[32]) {
    float d = qk_rdh(base + QK_Q6K_D);
    uint sc = qk_rd16(base + QK_Q6K_SCALES + 2u * p);
    /* the reference's d * sc per element: the same product every time */
    float ds0 = d * float(int(sc << 24) >> 24), ds1 = d * float(int(sc << 16) >> 24);
    uint h = p >> 2, g = p & 3u;
    uint lw[8], hw[8], shl = 4u * (g >> 1), shh = 2u * g;
    qk_kq_rd8w(base + QK_Q6K_QL + 64u * h + 32u * (g & 1u), lw);
    qk_kq_rd8w(base + QK_Q6K_QH + 32u * h, hw);
    [[unroll]] for (uint w = 0u; w < 8u; w++) {
        uint q = ((lw[w] >> shl) & 0x0f0f0f0fu) | (((hw[w] >> shh) & 0x03030303u) << 4);
        float ds = w < 4u ? ds0 : ds1;
        [[unroll]] for (uint k = 0u; k < 4u; k++) v[4u * w + k] = ds * float(int((q >> (8u * k)) & 0xffu) - 32);
    }
}

#endif

/* fp16 field of a block being written (2-byte aligned in every K-quant). */
float qk_rdh_blk(in uint blk[QK_BLOCK_WORDS], uint off) {
    return qk_fp16_to_f32((blk[off >> 2] >> ((off & 2u) * 8u)) & 0xffffu);
}

/* Q3_K: signed scale s of the sixteen packed 6-bit codes already in blk (qk_kq_scale6x16). */
int qk_kq_scale6x16_blk(in uint blk[QK_BLOCK_WORDS], int s) {
    uint lo = s < 8 ? qk_blk_get8(blk, QK_Q3K_SCALES + uint(s)) & 15u
                    : qk_blk_get8(blk, QK_Q3K_SCALES + uint(s - 8)) >> 4;
    uint hi = (qk_blk_get8(blk, QK_Q3K_SCALES + 8u + uint(s % 4)) >> uint(2 * (s / 4))) & 3u;
    return int(lo | (hi << 4)) - 32;
}

/* ---- encoders --------------------------------------------------------------------------- */

/* The sub-block of n values at x[off..] as the searches take it (QK_QS_MAX elements). */
void qk_kq_sub(in float x[QK_BLOCK_ELEMS], int off, int n, out float xs[QK_QS_MAX]) {
    for (int i = 0; i < QK_QS_MAX; i++) xs[i] = i < n ? x[off + i] : 0.0;
}

float qk_kq_sum_squares(in float x[QK_BLOCK_ELEMS], int off, int n) {
    float s = 0.0;
    for (int i = 0; i < n; i++) s += x[off + i] * x[off + i];
    return s;
}

/* w = qw*sqrt(sigma2 + x^2) for the n values at off; returns their sum. */
float qk_kq_imatrix_weights(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], int off, float sigma2,
                            out float w[QK_QS_MAX], int n) {
    float sw = 0.0;
    for (int i = 0; i < QK_QS_MAX; i++) w[i] = i < n ? qw[off + i] * qk_sqrt(sigma2 + x[off + i] * x[off + i]) : 0.0;
    for (int i = 0; i < n; i++) sw += w[i];
    return sw;
}

/* 2-bit quarter packing of Q2_K/Q3_K codes L (0..3 used) into the 64 bytes at `off`. */
void qk_kq_pack_quarters(in int L[QK_BLOCK_ELEMS], uint off, inout uint blk[QK_BLOCK_WORDS]) {
    for (int h = 0; h < QK_BLOCK_ELEMS; h += 128)
        for (int l = 0; l < 32; l++)
            qk_blk_or8(blk, off + uint(h / 4 + l),
                       uint((L[h + l] & 3) | ((L[h + l + 32] & 3) << 2) | ((L[h + l + 64] & 3) << 4) |
                            ((L[h + l + 96] & 3) << 6)));
}

#if defined(QK_TYPE_Q2_K)

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    int L[QK_BLOCK_ELEMS];
    int sc[16];
    float scales[16], mins[16];
    float xs[QK_QS_MAX], w[QK_QS_MAX];
    int Ls[QK_QS_MAX], Laux[QK_QS_MAX];
    for (int i = 0; i < QK_QS_MAX; i++) Laux[i] = 0;
    if (!has_qw) {
        float max_scale = 0.0, max_min = 0.0;
        for (int j = 0; j < 16; j++) {
            qk_kq_sub(x, 16 * j, 16, xs);
            for (int i = 0; i < QK_QS_MAX; i++) w[i] = abs(xs[i]);
            scales[j] = qk_hd_make_qkx2(16, 3, xs, w, true, Ls, mins[j], Laux, -0.5, 0.1, 15, 1);
            for (int i = 0; i < 16; i++) L[16 * j + i] = Ls[i];
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float is = max_scale > 0.0 ? qk_div(15.0, max_scale) : 0.0;
        const float im = max_min > 0.0 ? qk_div(15.0, max_min) : 0.0;
        for (int j = 0; j < 16; j++)
            sc[j] = qk_clampi(qk_nearest_int(is * scales[j]), 0, 15) |
                    (qk_clampi(qk_nearest_int(im * mins[j]), 0, 15) << 4);
        qk_blk_set16(blk, QK_Q2K_D, qk_f32_to_fp16(max_scale > 0.0 ? qk_div(max_scale, 15.0) : 0.0));
        qk_blk_set16(blk, QK_Q2K_DMIN, qk_f32_to_fp16(max_min > 0.0 ? qk_div(max_min, 15.0) : 0.0));
    } else {
        float sw[QK_QS_MAX], xm[QK_QS_MAX];
        int Lsc[QK_QS_MAX], Lm[QK_QS_MAX];
        for (int i = 0; i < QK_QS_MAX; i++) sw[i] = 0.0;
        const float sigma2 = qk_div(qk_kq_sum_squares(x, 0, QK_BLOCK_ELEMS), float(QK_BLOCK_ELEMS));
        for (int j = 0; j < 16; j++) {
            qk_kq_sub(x, 16 * j, 16, xs);
            sw[j] = qk_kq_imatrix_weights(x, qw, 16 * j, sigma2, w, 16);
            scales[j] = qk_hd_make_qkx3(16, 3, xs, w, true, Ls, mins[j], Laux, -0.9, 0.05, 36, 0);
            for (int i = 0; i < 16; i++) L[16 * j + i] = Ls[i];
        }
        for (int i = 0; i < QK_QS_MAX; i++) {
            xs[i] = i < 16 ? scales[i] : 0.0;
            xm[i] = i < 16 ? mins[i] : 0.0;
        }
        const float d = qk_hd_make_qp(16, 15, xs, Lsc, sw);
        const float dmin = qk_hd_make_qp(16, 15, xm, Lm, sw);
        for (int j = 0; j < 16; j++) sc[j] = Lsc[j] | (Lm[j] << 4);
        qk_blk_set16(blk, QK_Q2K_D, qk_f32_to_fp16(d));
        qk_blk_set16(blk, QK_Q2K_DMIN, qk_f32_to_fp16(dmin));
    }
    const float dh = qk_fp16_to_f32(blk[QK_Q2K_D / 4u] & 0xffffu), mh = qk_fp16_to_f32(blk[QK_Q2K_DMIN / 4u] >> 16);
    for (int j = 0; j < 16; j++) {
        const float D = dh * float(sc[j] & 15);
        if (D == 0.0) continue; /* codes of the search stay; they decode to the min anyway */
        const float M = mh * float((sc[j] >> 4) & 15);
        for (int i = 0; i < 16; i++) L[16 * j + i] = qk_clampi(qk_nearest_int(qk_div(x[16 * j + i] + M, D)), 0, 3);
    }
    for (int j = 0; j < 16; j++) qk_blk_or8(blk, QK_Q2K_SCALES + uint(j), uint(sc[j]));
    qk_kq_pack_quarters(L, QK_Q2K_QS, blk);
}

#elif defined(QK_TYPE_Q3_K)

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    int L[QK_BLOCK_ELEMS];
    int ls[16];
    float scales[16];
    float d;
    float xs[QK_QS_MAX], w[QK_QS_MAX];
    int Ls[QK_QS_MAX];
    if (!has_qw) {
        float amax = 0.0, max_scale = 0.0;
        for (int j = 0; j < 16; j++) {
            qk_kq_sub(x, 16 * j, 16, xs);
            scales[j] = qk_hd_make_q3(16, 4, xs, Ls);
            for (int i = 0; i < 16; i++) L[16 * j + i] = Ls[i];
            if (abs(scales[j]) > amax) {
                amax = abs(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_scale != 0.0) {
            const float iscale = qk_div(-32.0, max_scale);
            for (int j = 0; j < 16; j++) ls[j] = qk_clampi(qk_nearest_int(iscale * scales[j]), -32, 31) + 32;
            d = qk_div(1.0, iscale);
        } else {
            for (int j = 0; j < 16; j++) ls[j] = 0; /* the zeroed scale bytes */
            d = 0.0;
        }
    } else {
        float sw[QK_QS_MAX];
        for (int i = 0; i < QK_QS_MAX; i++) sw[i] = 0.0;
        const float sigma2 = qk_div(2.0 * qk_kq_sum_squares(x, 0, QK_BLOCK_ELEMS), float(QK_BLOCK_ELEMS));
        for (int j = 0; j < 16; j++) {
            qk_kq_sub(x, 16 * j, 16, xs);
            sw[j] = qk_kq_imatrix_weights(x, qw, 16 * j, sigma2, w, 16);
            scales[j] = qk_hd_make_qx(16, 4, xs, Ls, w, true);
            for (int i = 0; i < 16; i++) L[16 * j + i] = Ls[i];
        }
        for (int i = 0; i < QK_QS_MAX; i++) xs[i] = i < 16 ? scales[i] : 0.0;
        d = qk_hd_make_qx(16, 32, xs, Ls, sw, true);
        for (int j = 0; j < 16; j++) ls[j] = Ls[j] & 0xff;
    }
    /* the 12 bytes of sixteen 6-bit codes (qk_kq_pack_scales6x16) */
    for (int s = 0; s < 16; s++) {
        qk_blk_or8(blk, QK_Q3K_SCALES + uint(s & 7), uint((ls[s] & 15) << (s < 8 ? 0 : 4)));
        qk_blk_or8(blk, QK_Q3K_SCALES + 8u + uint(s % 4), uint((ls[s] >> 4) << (2 * (s / 4))));
    }
    qk_blk_set16(blk, QK_Q3K_D, qk_f32_to_fp16(d));

    const float dh = qk_rdh_blk(blk, QK_Q3K_D);
    for (int j = 0; j < 16; j++) {
        const float D = dh * float(qk_kq_scale6x16_blk(blk, j));
        if (D == 0.0) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = qk_clampi(qk_nearest_int(qk_div(x[16 * j + i], D)), -4, 3) + 4;
    }
    /* codes 0..7: the high bit goes to hmask (set means "no -4"), the low two to qs */
    for (int i = 0; i < QK_BLOCK_ELEMS; i++) {
        int q = L[i];
        if (q > 3) {
            qk_blk_or8(blk, QK_Q3K_HMASK + uint(i % 32), 1u << uint(i / 32));
            q -= 4;
        }
        L[i] = q;
    }
    qk_kq_pack_quarters(L, QK_Q3K_QS, blk);
}

#elif defined(QK_TYPE_Q4_K) || defined(QK_TYPE_Q5_K)

/* Q4_K/Q5_K: 8 sub-blocks of 32 with a 6-bit scale and min each; fills the 12 scale bytes,
 * d and dmin (offsets 0, 2, 4 in both types) and leaves the final codes (0..nmax) in L.
 * QK_QW_BRANCHES picks which of the two searches a module holds: 1 the plain one (no imatrix),
 * 2 the weighted one, 3 both. NVIDIA's driver refuses the module holding both (vkCreateComputePipelines
 * fails with VK_ERROR_UNKNOWN) and compiles either alone, so shaders.cmake builds quant/Q4_K
 * with 1 and quant_w/Q4_K with 2, and the runtime takes quant_w where an imatrix is given. */
#ifndef QK_QW_BRANCHES
#define QK_QW_BRANCHES 3
#endif
void qk_kq_quant_scale_min_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, int nmax,
                                 float rmin, int nstep, inout uint blk[QK_BLOCK_WORDS], out int L[QK_BLOCK_ELEMS]) {
    int ls[QK_QS_MAX], lm[QK_QS_MAX], Ls[QK_QS_MAX], Laux[QK_QS_MAX];
    float scales[QK_QS_MAX], mins[QK_QS_MAX], xs[QK_QS_MAX], w[QK_QS_MAX];
    for (int i = 0; i < QK_QS_MAX; i++) {
        Laux[i] = 0;
        scales[i] = 0.0;
        mins[i] = 0.0;
    }
    if (!has_qw) {
#if (QK_QW_BRANCHES & 1) != 0
        float max_scale = 0.0, max_min = 0.0;
        for (int j = 0; j < 8; j++) {
            const float av = qk_sqrt(qk_div(qk_kq_sum_squares(x, 32 * j, 32), 32.0));
            qk_kq_sub(x, 32 * j, 32, xs);
            for (int i = 0; i < 32; i++) w[i] = av + abs(xs[i]);
            scales[j] = qk_hd_make_qkx2(32, nmax, xs, w, true, Ls, mins[j], Laux, rmin, 0.1, nstep, 0);
            for (int i = 0; i < 32; i++) L[32 * j + i] = Ls[i];
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0.0 ? qk_div(63.0, max_scale) : 0.0;
        const float inv_min = max_min > 0.0 ? qk_div(63.0, max_min) : 0.0;
        for (int j = 0; j < 8; j++) {
            ls[j] = qk_clampi(qk_nearest_int(inv_scale * scales[j]), 0, 63);
            lm[j] = qk_clampi(qk_nearest_int(inv_min * mins[j]), 0, 63);
        }
        qk_blk_set16(blk, 0u, qk_f32_to_fp16(qk_div(max_scale, 63.0)));
        qk_blk_set16(blk, 2u, qk_f32_to_fp16(qk_div(max_min, 63.0)));
#endif
    } else {
#if (QK_QW_BRANCHES & 2) != 0
        float sw[QK_QS_MAX];
        for (int i = 0; i < QK_QS_MAX; i++) sw[i] = 0.0;
        const float sigma2 = qk_div(2.0 * qk_kq_sum_squares(x, 0, QK_BLOCK_ELEMS), float(QK_BLOCK_ELEMS));
        for (int j = 0; j < 8; j++) {
            qk_kq_sub(x, 32 * j, 32, xs);
            sw[j] = qk_kq_imatrix_weights(x, qw, 32 * j, sigma2, w, 32);
            scales[j] = qk_hd_make_qkx3(32, nmax, xs, w, true, Ls, mins[j], Laux, -0.9, 0.05, 36, 0);
            for (int i = 0; i < 32; i++) L[32 * j + i] = Ls[i];
        }
        const float d = qk_hd_make_qp(8, 63, scales, ls, sw);
        const float dmin = qk_hd_make_qp(8, 63, mins, lm, sw);
        qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
        qk_blk_set16(blk, 2u, qk_f32_to_fp16(dmin));
#endif
    }
    /* qk_kq_pack_scale_min6 */
    for (int j = 0; j < 4; j++) {
        qk_blk_or8(blk, 4u + uint(j), uint(ls[j] | ((ls[j + 4] >> 4) << 6)));
        qk_blk_or8(blk, 8u + uint(j), uint(lm[j] | ((lm[j + 4] >> 4) << 6)));
        qk_blk_or8(blk, 12u + uint(j), uint((ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4)));
    }

    const float dh = qk_fp16_to_f32(blk[0] & 0xffffu), mh = qk_fp16_to_f32(blk[0] >> 16);
    for (int j = 0; j < 8; j++) {
        const float D = dh * float(ls[j]);
        if (D == 0.0) continue;
        const float M = mh * float(lm[j]);
        for (int i = 0; i < 32; i++) L[32 * j + i] = qk_clampi(qk_nearest_int(qk_div(x[32 * j + i] + M, D)), 0, nmax);
    }
}

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    int L[QK_BLOCK_ELEMS];
#if defined(QK_TYPE_Q4_K)
    qk_kq_quant_scale_min_block(x, qw, has_qw, 15, -1.0, 20, blk, L);
    const uint qs = QK_Q4K_QS;
#else
    qk_kq_quant_scale_min_block(x, qw, has_qw, 31, -0.5, 15, blk, L);
    for (int i = 0; i < QK_BLOCK_ELEMS; i++)
        if (L[i] > 15) qk_blk_or8(blk, QK_Q5K_QH + uint(i % 32), 1u << uint(i / 32));
    const uint qs = QK_Q5K_QS;
#endif
    /* qk_kq_pack_nibbles64 */
    for (int c = 0; c < QK_BLOCK_ELEMS / 64; c++)
        for (int l = 0; l < 32; l++)
            qk_blk_or8(blk, qs + uint(32 * c + l), uint((L[64 * c + l] & 15) | ((L[64 * c + 32 + l] & 15) << 4)));
}

#else /* Q6_K */

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    int L[QK_BLOCK_ELEMS];
    float scales[16];
    float xs[QK_QS_MAX], w[QK_QS_MAX];
    int Ls[QK_QS_MAX];
    float amax = 0.0, max_scale = 0.0;
    for (int j = 0; j < 16; j++) {
        /* the imatrix path weights by the imatrix alone, unlike the other K-quants */
        qk_kq_sub(x, 16 * j, 16, xs);
        qk_kq_sub(qw, 16 * j, 16, w);
        scales[j] = qk_hd_make_qx(16, 32, xs, Ls, w, has_qw);
        for (int i = 0; i < 16; i++) L[16 * j + i] = Ls[i];
        if (abs(scales[j]) > amax) {
            amax = abs(scales[j]);
            max_scale = scales[j];
        }
    }
    if (amax < QKC_GROUP_MAX_EPS) return; /* the block stays zeroed */
    const float iscale = qk_div(-128.0, max_scale);
    int sc[16];
    for (int j = 0; j < 16; j++) {
        sc[j] = qk_clampi(qk_nearest_int(iscale * scales[j]), -128, 127);
        qk_blk_or8(blk, QK_Q6K_SCALES + uint(j), uint(sc[j]));
    }
    qk_blk_set16(blk, QK_Q6K_D, qk_f32_to_fp16(qk_div(1.0, iscale)));

    const float dh = qk_rdh_blk(blk, QK_Q6K_D);
    for (int j = 0; j < 16; j++) {
        const float D = dh * float(sc[j]);
        if (D == 0.0) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = qk_clampi(qk_nearest_int(qk_div(x[16 * j + i], D)), -32, 31) + 32;
    }
    for (int h = 0; h < QK_BLOCK_ELEMS / 128; h++) {
        const int q = 128 * h;
        for (int l = 0; l < 32; l++) {
            qk_blk_or8(blk, QK_Q6K_QL + uint(64 * h + l), uint((L[q + l] & 15) | ((L[q + l + 64] & 15) << 4)));
            qk_blk_or8(blk, QK_Q6K_QL + uint(64 * h + l + 32),
                       uint((L[q + l + 32] & 15) | ((L[q + l + 96] & 15) << 4)));
            qk_blk_or8(blk, QK_Q6K_QH + uint(32 * h + l),
                       uint((L[q + l] >> 4) | ((L[q + l + 32] >> 4) << 2) | ((L[q + l + 64] >> 4) << 4) |
                            ((L[q + l + 96] >> 4) << 6)));
        }
    }
}

#endif

#endif
