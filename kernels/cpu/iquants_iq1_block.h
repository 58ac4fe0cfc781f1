/* IQ1_S and IQ1_M encoders (FORMATS.md §6.6, §6.7, §6.10), one 256-value super-block at a
 * time: groups of 8 values on a 2048-point grid of {-1, 0, +1} patterns, shifted by ±delta,
 * with 3-bit sub-scales. Shared by iquants_iq1.c and the CUDA kernels; layouts and decoders
 * are in iquants_block.h.
 *
 * The encoders search the 3-level split of each chunk exhaustively: with the chunk's values
 * sorted, every choice of "lowest i1 -> -1, next i2-i1 -> 0, rest -> +1" is scored from
 * prefix sums. The sort is by (value, index), so ties order the same way everywhere.
 * The grid map `grid` (QK_IQ_GRID_1BIT_2048) is the host's on the CPU, its device copy in a
 * CUDA thread. */
#ifndef QK_IQUANTS_IQ1_BLOCK_H
#define QK_IQUANTS_IQ1_BLOCK_H

#include <float.h>

#include "iq_grid.h"
#include "iquants_block.h"
#include "qk_float.h"

#define QK_IQ1_ZERO_CODE 0x5555 /* all eight levels 1, i.e. the pattern of zeros */

/* The level values of the two shifted sets: v[0] = {-1,0,1} + delta, v[1] = {-1,0,1} - delta.
 * Built on the stack (a CUDA thread cannot read a host constant array); every value is exact. */
typedef struct qk_iq1_levels {
    float v[2][3];
} qk_iq1_levels;

static inline QK_HD qk_iq1_levels qk_iq1_levels_of(float delta) {
    qk_iq1_levels lv;
    lv.v[0][0] = -1 + delta, lv.v[0][1] = delta, lv.v[0][2] = 1 + delta;
    lv.v[1][0] = -1 - delta, lv.v[1][1] = -delta, lv.v[1][2] = 1 - delta;
    return lv;
}

/* order[0..n-1] = 0..n-1 sorted by (x, index) ascending (insertion sort, stable). */
static inline QK_HD void qk_iq1_sort_by_value(int n, const float *x, uint8_t *order) {
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && x[order[j - 1]] > x[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (uint8_t)i;
    }
}

/* Levels 0, 1, 2 of split (i1, i2) written to L by element index; mirror swaps 0 and 2. */
static inline QK_HD void qk_iq1_split_levels(int n, const uint8_t *order, int i1, int i2, int mirror, uint8_t *L) {
    for (int j = 0; j < n; j++) {
        int l = j < i1 ? 0 : (j < i2 ? 1 : 2);
        L[order[j]] = (uint8_t)(mirror ? 2 - l : l);
    }
}

/* Grid index for the 8 levels L; an off-grid pattern takes the neighbour with the least
 * sum w*(scale*lv[level] - x)^2 (first on ties) and sets *moved. */
static inline QK_HD int qk_iq1_project_group(const qk_iq_grid *grid, const uint8_t *L, const float *x, const float *w,
                                             float scale, const float *lv, int *moved) {
    uint32_t u = 0;
    for (int k = 0; k < QK_IQ1_GROUP; k++) u |= (uint32_t)L[k] << (2 * k);
    if (grid->map[u] >= 0) return grid->map[u];
    *moved = 1;
    int count;
    const uint16_t *nb = qk_iq_grid_neighbours(grid, u, &count);
    int best = nb[0];
    float best_d2 = FLT_MAX;
    for (int j = 0; j < count; j++) {
        const uint16_t code = grid->codes[nb[j]];
        float d2 = 0.0f;
        for (int k = 0; k < QK_IQ1_GROUP; k++) {
            float diff = scale * lv[(code >> (2 * k)) & 3] - x[k];
            d2 += w[k] * diff * diff;
        }
        if (d2 < best_d2) best_d2 = d2, best = nb[j];
    }
    return best;
}

/* sum w*q*x and sum w*q*q over one group coded as grid entry idx with level values lv,
 * each q multiplied by mul; accumulated into *qx, *q2 in element order. */
static inline QK_HD void qk_iq1_group_sums(const qk_iq_grid *grid, int idx, const float *x, const float *w,
                                           const float *lv, float mul, float *qx, float *q2) {
    const uint16_t code = grid->codes[idx];
    for (int k = 0; k < QK_IQ1_GROUP; k++) {
        float q = lv[(code >> (2 * k)) & 3] * mul;
        *qx += w[k] * q * x[k];
        *q2 += w[k] * q * q;
    }
}

static inline QK_HD float qk_iq1_max_abs(int n, const float *x) {
    float m = fabsf(x[0]);
    for (int i = 1; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static inline QK_HD float qk_iq1_sigma2(const float *x) {
    float s = 0.0f;
    for (int i = 0; i < QKC_QK_K; i++) s += x[i] * x[i];
    return 2.0f * s / (float)QKC_QK_K;
}

/* w = qw*sqrt(sigma2 + x^2) with an imatrix. Without one, or where the imatrix is zero over
 * the whole chunk (nothing to weigh, and the least squares would be 0/0), the type's plain
 * weights: x^2 (IQ1_M) or sqrt(sigma2 + x^2), i.e. qw = 1 (IQ1_S). */
static inline QK_HD void qk_iq1_chunk_weights(int n, const float *x, const float *qw, float sigma2, int plain_is_x2,
                                              float *w) {
    float sum = 0.0f;
    if (qw) {
        for (int i = 0; i < n; i++) sum += w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
        if (sum > 0.0f) return;
    }
    for (int i = 0; i < n; i++) w[i] = plain_is_x2 ? x[i] * x[i] : sqrtf(sigma2 + x[i] * x[i]);
}

/* ---- IQ1_S ---- */

typedef struct qk_iq1s_chunk {
    float scale; /* >= 0 */
    int neg;     /* delta is -0.125 */
    uint16_t index[QK_IQ1S_CHUNK / QK_IQ1_GROUP];
} qk_iq1s_chunk;

/* The exact split search of one 32-chunk (§6.10), then grid projection and refit. */
static inline QK_HD void qk_iq1s_encode_chunk(const qk_iq_grid *grid, const float *x, const float *w,
                                              qk_iq1s_chunk *out) {
    enum { N = QK_IQ1S_CHUNK };
    const qk_iq1_levels levels = qk_iq1_levels_of(QKC_IQ1S_DELTA);
    uint8_t order[N], L[N];
    float sx[N + 1], sw[N + 1];
    qk_iq1_sort_by_value(N, x, order);
    sx[0] = sw[0] = 0.0f;
    for (int j = 0; j < N; j++) {
        const int i = order[j];
        sx[j + 1] = sx[j] + w[i] * x[i];
        sw[j + 1] = sw[j] + w[i];
    }
    const float *p = levels.v[0], *m = levels.v[1];
    const float p2[3] = {p[0] * p[0], p[1] * p[1], p[2] * p[2]};
    const float m2[3] = {m[0] * m[0], m[1] * m[1], m[2] * m[2]};

    float best = -FLT_MAX, scale = 0.0f;
    int bi1 = 0, bi2 = 0, bneg = 0;
    for (int i1 = 0; i1 <= N; i1++) {
        const float x0 = sx[i1], w0 = sw[i1];
        const float xp0 = x0 * p[0], xm0 = x0 * m[0], wp0 = w0 * p2[0], wm0 = w0 * m2[0];
        for (int i2 = i1; i2 <= N; i2++) {
            const float x1 = sx[i2] - sx[i1], x2 = sx[N] - sx[i2];
            const float w1 = sw[i2] - sw[i1], w2 = sw[N] - sw[i2];
            float qx = xp0 + x1 * p[1] + x2 * p[2];
            float q2 = wp0 + w1 * p2[1] + w2 * p2[2];
            if (q2 > 0.0f && qx * qx > best * q2) {
                scale = qx / q2, best = scale * qx;
                bi1 = i1, bi2 = i2, bneg = 0;
            }
            qx = xm0 + x1 * m[1] + x2 * m[2];
            q2 = wm0 + w1 * m2[1] + w2 * m2[2];
            if (q2 > 0.0f && qx * qx > best * q2) {
                scale = qx / q2, best = scale * qx;
                bi1 = i1, bi2 = i2, bneg = 1;
            }
        }
    }
    /* a negative scale is the mirrored split with the opposite delta */
    const int mirror = scale < 0.0f;
    if (mirror) scale = -scale, bneg ^= 1;
    qk_iq1_split_levels(N, order, bi1, bi2, mirror, L);

    const float *lv = levels.v[bneg];
    int moved = 0;
    for (int k = 0; k < N / QK_IQ1_GROUP; k++)
        out->index[k] = (uint16_t)qk_iq1_project_group(grid, L + QK_IQ1_GROUP * k, x + QK_IQ1_GROUP * k,
                                                       w + QK_IQ1_GROUP * k, scale, lv, &moved);
    if (moved) {
        float qx = 0.0f, q2 = 0.0f;
        for (int k = 0; k < N / QK_IQ1_GROUP; k++)
            qk_iq1_group_sums(grid, out->index[k], x + QK_IQ1_GROUP * k, w + QK_IQ1_GROUP * k, lv, 1.0f, &qx, &q2);
        if (qx > 0.0f && q2 > 0.0f) scale = qx / q2;
    }
    out->scale = scale;
    out->neg = bneg;
}

/* One IQ1_S super-block. IQ1_S needs an imatrix and the runtime enforces it; given none (qw
 * NULL), all columns weigh alike (qw = 1) rather than fail. */
static inline QK_HD void qk_quant_block_iq1_s(const qk_iq_grid *grid, const float *x, const float *qw, uint8_t *b) {
    const float sigma2 = qk_iq1_sigma2(x);
    qk_iq1s_chunk ch[QK_IQ1S_NC];
    float max_scale = 0.0f;
    for (int c = 0; c < QK_IQ1S_NC; c++) {
        const float *xc = x + QK_IQ1S_CHUNK * c;
        float w[QK_IQ1S_CHUNK];
        qk_iq1_chunk_weights(QK_IQ1S_CHUNK, xc, qw ? qw + QK_IQ1S_CHUNK * c : NULL, sigma2, 0, w);
        if (qk_iq1_max_abs(QK_IQ1S_CHUNK, xc) < QKC_GROUP_MAX_EPS_IQ1_S) {
            /* scale code 0 and the all-zero pattern: decodes to +0.125*d, the closest the
             * format gets to 0 (ggml leaves index 0 here: -0.875*d) */
            ch[c].scale = 0.0f, ch[c].neg = 0;
            for (int k = 0; k < QK_IQ1S_CHUNK / QK_IQ1_GROUP; k++)
                ch[c].index[k] = (uint16_t)grid->map[QK_IQ1_ZERO_CODE];
        } else {
            qk_iq1s_encode_chunk(grid, xc, w, &ch[c]);
        }
        max_scale = fmaxf(max_scale, ch[c].scale);
    }
    if (!(max_scale > 0.0f)) { /* d = 0: every code decodes to 0; write ggml's zero block */
        memset(b, 0, QK_BYTES_iq1_s);
        return;
    }

    const float d = max_scale / 15.0f;
    const float id = 1.0f / d;
    qk_wrh(b + QK_IQ1S_D, d * QKC_IQ1_S_STORED_SCALE_FACTOR);
    for (int c = 0; c < QK_IQ1S_NC; c++) {
        uint16_t h = 0;
        for (int k = 0; k < QK_IQ1S_CHUNK / QK_IQ1_GROUP; k++) {
            b[QK_IQ1S_QS + 4 * c + k] = (uint8_t)(ch[c].index[k] & 255);
            h |= (uint16_t)((ch[c].index[k] >> 8) << (3 * k));
        }
        const int s = qk_clampi(qk_nearest_int(0.5f * (id * ch[c].scale - 1.0f)), 0, 7);
        h |= (uint16_t)(s << 12 | ch[c].neg << 15);
        qk_wr16(b + QK_IQ1S_QH + 2 * c, h);
    }
}

/* ---- IQ1_M ---- */

typedef struct qk_iq1m_chunk {
    float scale; /* >= 0 */
    int shifts;  /* 0..3: bit 1 = first group's delta negative, bit 0 = second group's */
    uint16_t index[QK_IQ1M_CHUNK / QK_IQ1_GROUP];
} qk_iq1m_chunk;

/* The exact split search of one 16-value sub-block with a delta sign per 8-group: the four
 * sign combinations (+,+), (+,-), (-,+), (-,-) in that order at each split. */
static inline QK_HD void qk_iq1m_encode_chunk(const qk_iq_grid *grid, const float *x, const float *w,
                                              qk_iq1m_chunk *out) {
    enum { N = QK_IQ1M_CHUNK };
    const qk_iq1_levels levels = qk_iq1_levels_of(QKC_IQ1M_DELTA);
    uint8_t order[N], L[N];
    /* prefix sums of w*x and w over the sorted values, separately for each group */
    float sx[2][N + 1], sw[2][N + 1];
    qk_iq1_sort_by_value(N, x, order);
    sx[0][0] = sw[0][0] = sx[1][0] = sw[1][0] = 0.0f;
    for (int j = 0; j < N; j++) {
        const int i = order[j], g = i >= QK_IQ1_GROUP, o = !g;
        sx[g][j + 1] = sx[g][j] + w[i] * x[i];
        sw[g][j + 1] = sw[g][j] + w[i];
        sx[o][j + 1] = sx[o][j];
        sw[o][j + 1] = sw[o][j];
    }
    float lv2[2][3];
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < 3; l++) lv2[s][l] = levels.v[s][l] * levels.v[s][l];

    float best = -FLT_MAX, scale = 0.0f;
    int bi1 = 0, bi2 = 0, bk = 0;
    for (int i1 = 0; i1 <= N; i1++) {
        for (int i2 = i1; i2 <= N; i2++) {
            /* per group g and sign s: qx[g][s] = sum w*q*x, q2[g][s] = sum w*q^2 */
            float qx[2][2], q2[2][2];
            for (int g = 0; g < 2; g++) {
                const float x0 = sx[g][i1], x1 = sx[g][i2] - sx[g][i1], x2 = sx[g][N] - sx[g][i2];
                const float w0 = sw[g][i1], w1 = sw[g][i2] - sw[g][i1], w2 = sw[g][N] - sw[g][i2];
                for (int s = 0; s < 2; s++) {
                    qx[g][s] = x0 * levels.v[s][0] + x1 * levels.v[s][1] + x2 * levels.v[s][2];
                    q2[g][s] = w0 * lv2[s][0] + w1 * lv2[s][1] + w2 * lv2[s][2];
                }
            }
            for (int k = 0; k < 4; k++) {
                const float sqx = qx[0][k >> 1] + qx[1][k & 1];
                const float sq2 = q2[0][k >> 1] + q2[1][k & 1];
                if (sq2 > 0.0f && sqx * sqx > best * sq2) {
                    scale = sqx / sq2, best = scale * sqx;
                    bi1 = i1, bi2 = i2, bk = k;
                }
            }
        }
    }
    const int mirror = scale < 0.0f;
    if (mirror) scale = -scale, bk = 3 - bk;
    qk_iq1_split_levels(N, order, bi1, bi2, mirror, L);

    int moved = 0;
    for (int k = 0; k < N / QK_IQ1_GROUP; k++) {
        const float *lv = levels.v[k == 0 ? bk >> 1 : bk & 1];
        out->index[k] = (uint16_t)qk_iq1_project_group(grid, L + QK_IQ1_GROUP * k, x + QK_IQ1_GROUP * k,
                                                       w + QK_IQ1_GROUP * k, scale, lv, &moved);
    }
    if (moved) {
        float qx = 0.0f, q2 = 0.0f;
        for (int k = 0; k < N / QK_IQ1_GROUP; k++)
            qk_iq1_group_sums(grid, out->index[k], x + QK_IQ1_GROUP * k, w + QK_IQ1_GROUP * k,
                              levels.v[k == 0 ? bk >> 1 : bk & 1], 1.0f, &qx, &q2);
        if (qx > 0.0f && q2 > 0.0f) scale = qx / q2;
    }
    out->scale = scale;
    out->shifts = bk;
}

/* One IQ1_M super-block; qw NULL for no imatrix. */
static inline QK_HD void qk_quant_block_iq1_m(const qk_iq_grid *grid, const float *x, const float *qw, uint8_t *b) {
    const qk_iq1_levels levels = qk_iq1_levels_of(QKC_IQ1M_DELTA);
    const float sigma2 = qk_iq1_sigma2(x);
    float w[QKC_QK_K];
    qk_iq1m_chunk ch[QK_IQ1M_NC];
    float max_scale = 0.0f;
    for (int c = 0; c < QK_IQ1M_NC; c++) {
        const float *xc = x + QK_IQ1M_CHUNK * c;
        qk_iq1_chunk_weights(QK_IQ1M_CHUNK, xc, qw ? qw + QK_IQ1M_CHUNK * c : NULL, sigma2, 1, w + QK_IQ1M_CHUNK * c);
        if (qk_iq1_max_abs(QK_IQ1M_CHUNK, xc) < QKC_GROUP_MAX_EPS_IQ1_M) {
            ch[c].scale = 0.0f, ch[c].shifts = 0; /* the all-zero pattern, as in IQ1_S */
            for (int k = 0; k < QK_IQ1M_CHUNK / QK_IQ1_GROUP; k++)
                ch[c].index[k] = (uint16_t)grid->map[QK_IQ1_ZERO_CODE];
        } else {
            qk_iq1m_encode_chunk(grid, xc, w + QK_IQ1M_CHUNK * c, &ch[c]);
        }
        max_scale = fmaxf(max_scale, ch[c].scale);
    }
    if (!(max_scale > 0.0f)) { /* d = 0: every code decodes to 0; write ggml's zero block */
        memset(b, 0, QK_BYTES_iq1_m);
        return;
    }

    uint16_t sc[4] = {0, 0, 0, 0};
    float d = max_scale / 15.0f;
    const float id = 1.0f / d;
    /* with the indices, sub-scales and deltas fixed, refit the super-scale by least squares
     * over the whole block (zero chunks included: they decode to d-multiples) */
    float qx = 0.0f, q2 = 0.0f;
    for (int c = 0; c < QK_IQ1M_NC; c++) {
        const int s = qk_clampi(qk_nearest_int(0.5f * (id * ch[c].scale - 1.0f)), 0, 7);
        sc[c / 4] |= (uint16_t)(s << (3 * (c % 4)));
        b[QK_IQ1M_QH + c] =
            (uint8_t)((ch[c].index[0] >> 8) | (ch[c].index[1] >> 8) << 4 | QK_TAB(qk_iq1m_shift_masks)[ch[c].shifts]);
        for (int k = 0; k < QK_IQ1M_CHUNK / QK_IQ1_GROUP; k++) {
            b[QK_IQ1M_QS + 2 * c + k] = (uint8_t)(ch[c].index[k] & 255);
            const float *lv = levels.v[k == 0 ? ch[c].shifts >> 1 : ch[c].shifts & 1];
            qk_iq1_group_sums(grid, ch[c].index[k], x + QK_IQ1M_CHUNK * c + QK_IQ1_GROUP * k,
                              w + QK_IQ1M_CHUNK * c + QK_IQ1_GROUP * k, lv, (float)(2 * s + 1), &qx, &q2);
        }
    }
    if (q2 > 0.0f) d = qx / q2;
    const uint16_t dbits = qk_f32_to_fp16(d * QKC_IQ1_M_STORED_SCALE_FACTOR);
    for (int k = 0; k < 4; k++) qk_wr16(b + QK_IQ1M_SC + 2 * k, (uint16_t)(sc[k] | ((dbits >> (4 * k)) & 15) << 12));
}

#endif
