/* IQ1_S and IQ1_M (FORMATS.md §6.6, §6.7, §6.10): groups of 8 values on a 2048-point
 * grid of {-1, 0, +1} patterns, shifted by ±delta, with 3-bit sub-scales.
 *
 * The encoders search the 3-level split of each chunk exhaustively: with the chunk's values
 * sorted, every choice of "lowest i1 -> -1, next i2-i1 -> 0, rest -> +1" is scored from
 * prefix sums. The sort is by (value, index), so ties order the same way everywhere. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "cpu_kernels.h"
#include "iq_grid.h"
#include "iquants_block.h"
#include "qk_float.h"

enum {
    QK = QKC_QK_K,
    /* layouts: iquants_block.h */
    GROUP = QK_IQ1_GROUP, /* values per grid index */
    S_CHUNK = QK_IQ1S_CHUNK,
    S_NC = QK_IQ1S_NC,
    S_D = QK_IQ1S_D,
    S_QS = QK_IQ1S_QS,
    S_QH = QK_IQ1S_QH,
    S_BYTES = QK_IQ1S_BYTES,
    M_CHUNK = QK_IQ1M_CHUNK,
    M_NC = QK_IQ1M_NC,
    M_QS = QK_IQ1M_QS,
    M_QH = QK_IQ1M_QH,
    M_SC = QK_IQ1M_SC,
    M_BYTES = QK_IQ1M_BYTES,
    ZERO_CODE = 0x5555, /* all eight levels 1, i.e. the pattern of zeros */
};

/* The level values of the two shifted sets: [0] = {-1,0,1} + delta, [1] = {-1,0,1} - delta. */
typedef float iq1_levels[2][3];
static const iq1_levels S_LEVELS = {{-1 + QKC_IQ1S_DELTA, QKC_IQ1S_DELTA, 1 + QKC_IQ1S_DELTA},
                                    {-1 - QKC_IQ1S_DELTA, -QKC_IQ1S_DELTA, 1 - QKC_IQ1S_DELTA}};
static const iq1_levels M_LEVELS = {{-1 + QKC_IQ1M_DELTA, QKC_IQ1M_DELTA, 1 + QKC_IQ1M_DELTA},
                                    {-1 - QKC_IQ1M_DELTA, -QKC_IQ1M_DELTA, 1 - QKC_IQ1M_DELTA}};

/* ---- dequantize: block code in iquants_block.h ---- */

void qk_cpu_dequant_iq1_s(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QK; i++) qk_dequant_block_iq1_s(b + i * S_BYTES, dst + i * QK);
}

void qk_cpu_dequant_iq1_m(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QK; i++) qk_dequant_block_iq1_m(b + i * M_BYTES, dst + i * QK);
}

/* ---- quantize: pieces shared by both types ---- */

/* order[0..n-1] = 0..n-1 sorted by (x, index) ascending (insertion sort, stable). */
static void sort_by_value(int n, const float *x, uint8_t *order) {
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
static void split_levels(int n, const uint8_t *order, int i1, int i2, int mirror, uint8_t *L) {
    for (int j = 0; j < n; j++) {
        int l = j < i1 ? 0 : (j < i2 ? 1 : 2);
        L[order[j]] = (uint8_t)(mirror ? 2 - l : l);
    }
}

/* Grid index for the 8 levels L; an off-grid pattern takes the neighbour with the least
 * sum w*(scale*lv[level] - x)^2 (first on ties) and sets *moved. */
static int project_group(const qk_iq_grid *grid, const uint8_t *L, const float *x, const float *w, float scale,
                         const float *lv, int *moved) {
    uint32_t u = 0;
    for (int k = 0; k < GROUP; k++) u |= (uint32_t)L[k] << (2 * k);
    if (grid->map[u] >= 0) return grid->map[u];
    *moved = 1;
    int count;
    const uint16_t *nb = qk_iq_grid_neighbours(grid, u, &count);
    int best = nb[0];
    float best_d2 = FLT_MAX;
    for (int j = 0; j < count; j++) {
        const uint16_t code = grid->codes[nb[j]];
        float d2 = 0.0f;
        for (int k = 0; k < GROUP; k++) {
            float diff = scale * lv[(code >> (2 * k)) & 3] - x[k];
            d2 += w[k] * diff * diff;
        }
        if (d2 < best_d2) best_d2 = d2, best = nb[j];
    }
    return best;
}

/* sum w*q*x and sum w*q*q over one group coded as grid entry idx with level values lv,
 * each q multiplied by mul; accumulated into *qx, *q2 in element order. */
static void group_sums(const qk_iq_grid *grid, int idx, const float *x, const float *w, const float *lv, float mul,
                       float *qx, float *q2) {
    const uint16_t code = grid->codes[idx];
    for (int k = 0; k < GROUP; k++) {
        float q = lv[(code >> (2 * k)) & 3] * mul;
        *qx += w[k] * q * x[k];
        *q2 += w[k] * q * q;
    }
}

static float max_abs(int n, const float *x) {
    float m = fabsf(x[0]);
    for (int i = 1; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static float super_block_sigma2(const float *x) {
    float s = 0.0f;
    for (int i = 0; i < QK; i++) s += x[i] * x[i];
    return 2.0f * s / (float)QK;
}

/* w = qw*sqrt(sigma2 + x^2) with an imatrix. Without one, or where the imatrix is zero over
 * the whole chunk (nothing to weigh, and the least squares would be 0/0), the type's plain
 * weights: x^2 (IQ1_M) or sqrt(sigma2 + x^2), i.e. qw = 1 (IQ1_S). */
static void chunk_weights(int n, const float *x, const float *qw, float sigma2, int plain_is_x2, float *w) {
    float sum = 0.0f;
    if (qw) {
        for (int i = 0; i < n; i++) sum += w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
        if (sum > 0.0f) return;
    }
    for (int i = 0; i < n; i++) w[i] = plain_is_x2 ? x[i] * x[i] : sqrtf(sigma2 + x[i] * x[i]);
}

/* ---- IQ1_S ---- */

typedef struct iq1s_chunk {
    float scale; /* >= 0 */
    int neg;     /* delta is -0.125 */
    uint16_t index[S_CHUNK / GROUP];
} iq1s_chunk;

/* The exact split search of one 32-chunk (§6.10), then grid projection and refit. */
static void iq1s_encode_chunk(const qk_iq_grid *grid, const float *x, const float *w, iq1s_chunk *out) {
    enum { N = S_CHUNK };
    uint8_t order[N], L[N];
    float sx[N + 1], sw[N + 1];
    sort_by_value(N, x, order);
    sx[0] = sw[0] = 0.0f;
    for (int j = 0; j < N; j++) {
        const int i = order[j];
        sx[j + 1] = sx[j] + w[i] * x[i];
        sw[j + 1] = sw[j] + w[i];
    }
    const float *p = S_LEVELS[0], *m = S_LEVELS[1];
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
    split_levels(N, order, bi1, bi2, mirror, L);

    const float *lv = S_LEVELS[bneg];
    int moved = 0;
    for (int k = 0; k < N / GROUP; k++)
        out->index[k] = (uint16_t)project_group(grid, L + GROUP * k, x + GROUP * k, w + GROUP * k, scale, lv, &moved);
    if (moved) {
        float qx = 0.0f, q2 = 0.0f;
        for (int k = 0; k < N / GROUP; k++)
            group_sums(grid, out->index[k], x + GROUP * k, w + GROUP * k, lv, 1.0f, &qx, &q2);
        if (qx > 0.0f && q2 > 0.0f) scale = qx / q2;
    }
    out->scale = scale;
    out->neg = bneg;
}

void qk_cpu_quant_iq1_s(const float *src, void *dst, int64_t n, const float *qw) {
    const qk_iq_grid *grid = qk_iq_grid_get(QK_IQ_GRID_1BIT_2048);
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += S_BYTES, src += QK) {
        if (!grid) { /* only if memory ran out before qk_cpu_quant_prepare; write d = 0 */
            memset(b, 0, S_BYTES);
            continue;
        }
        /* IQ1_S needs an imatrix and the runtime enforces it; without one, weigh all
         * columns alike (qw = 1) rather than fail. */
        const float *qwb = qw ? qw + QK * i : NULL;
        const float sigma2 = super_block_sigma2(src);
        iq1s_chunk ch[S_NC];
        float max_scale = 0.0f;
        for (int c = 0; c < S_NC; c++) {
            const float *x = src + S_CHUNK * c;
            float w[S_CHUNK];
            chunk_weights(S_CHUNK, x, qwb ? qwb + S_CHUNK * c : NULL, sigma2, 0, w);
            if (max_abs(S_CHUNK, x) < QKC_GROUP_MAX_EPS_IQ1_S) {
                /* scale code 0 and the all-zero pattern: decodes to +0.125*d, the closest
                 * the format gets to 0 (ggml leaves index 0 here: -0.875*d) */
                ch[c].scale = 0.0f, ch[c].neg = 0;
                for (int k = 0; k < S_CHUNK / GROUP; k++) ch[c].index[k] = (uint16_t)grid->map[ZERO_CODE];
            } else {
                iq1s_encode_chunk(grid, x, w, &ch[c]);
            }
            max_scale = fmaxf(max_scale, ch[c].scale);
        }
        if (!(max_scale > 0.0f)) { /* d = 0: every code decodes to 0; write ggml's zero block */
            memset(b, 0, S_BYTES);
            continue;
        }

        const float d = max_scale / 15.0f;
        const float id = 1.0f / d;
        qk_wrh(b + S_D, d * QKC_IQ1_S_STORED_SCALE_FACTOR);
        for (int c = 0; c < S_NC; c++) {
            uint16_t h = 0;
            for (int k = 0; k < S_CHUNK / GROUP; k++) {
                b[S_QS + 4 * c + k] = (uint8_t)(ch[c].index[k] & 255);
                h |= (uint16_t)((ch[c].index[k] >> 8) << (3 * k));
            }
            const int s = qk_clampi(qk_nearest_int(0.5f * (id * ch[c].scale - 1.0f)), 0, 7);
            h |= (uint16_t)(s << 12 | ch[c].neg << 15);
            qk_wr16(b + S_QH + 2 * c, h);
        }
    }
}

/* ---- IQ1_M ---- */

typedef struct iq1m_chunk {
    float scale; /* >= 0 */
    int shifts;  /* 0..3: bit 1 = first group's delta negative, bit 0 = second group's */
    uint16_t index[M_CHUNK / GROUP];
} iq1m_chunk;

/* The exact split search of one 16-value sub-block with a delta sign per 8-group: the four
 * sign combinations (+,+), (+,-), (-,+), (-,-) in that order at each split. */
static void iq1m_encode_chunk(const qk_iq_grid *grid, const float *x, const float *w, iq1m_chunk *out) {
    enum { N = M_CHUNK };
    uint8_t order[N], L[N];
    /* prefix sums of w*x and w over the sorted values, separately for each group */
    float sx[2][N + 1], sw[2][N + 1];
    sort_by_value(N, x, order);
    sx[0][0] = sw[0][0] = sx[1][0] = sw[1][0] = 0.0f;
    for (int j = 0; j < N; j++) {
        const int i = order[j], g = i >= GROUP, o = !g;
        sx[g][j + 1] = sx[g][j] + w[i] * x[i];
        sw[g][j + 1] = sw[g][j] + w[i];
        sx[o][j + 1] = sx[o][j];
        sw[o][j + 1] = sw[o][j];
    }
    float lv2[2][3];
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < 3; l++) lv2[s][l] = M_LEVELS[s][l] * M_LEVELS[s][l];

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
                    qx[g][s] = x0 * M_LEVELS[s][0] + x1 * M_LEVELS[s][1] + x2 * M_LEVELS[s][2];
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
    split_levels(N, order, bi1, bi2, mirror, L);

    int moved = 0;
    for (int k = 0; k < N / GROUP; k++) {
        const float *lv = M_LEVELS[k == 0 ? bk >> 1 : bk & 1];
        out->index[k] = (uint16_t)project_group(grid, L + GROUP * k, x + GROUP * k, w + GROUP * k, scale, lv, &moved);
    }
    if (moved) {
        float qx = 0.0f, q2 = 0.0f;
        for (int k = 0; k < N / GROUP; k++)
            group_sums(grid, out->index[k], x + GROUP * k, w + GROUP * k, M_LEVELS[k == 0 ? bk >> 1 : bk & 1], 1.0f,
                       &qx, &q2);
        if (qx > 0.0f && q2 > 0.0f) scale = qx / q2;
    }
    out->scale = scale;
    out->shifts = bk;
}

void qk_cpu_quant_iq1_m(const float *src, void *dst, int64_t n, const float *qw) {
    const qk_iq_grid *grid = qk_iq_grid_get(QK_IQ_GRID_1BIT_2048);
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += M_BYTES, src += QK) {
        if (!grid) { /* only if memory ran out before qk_cpu_quant_prepare; write d = 0 */
            memset(b, 0, M_BYTES);
            continue;
        }
        const float *qwb = qw ? qw + QK * i : NULL;
        const float sigma2 = super_block_sigma2(src);
        float w[QK];
        iq1m_chunk ch[M_NC];
        float max_scale = 0.0f;
        for (int c = 0; c < M_NC; c++) {
            const float *x = src + M_CHUNK * c;
            chunk_weights(M_CHUNK, x, qwb ? qwb + M_CHUNK * c : NULL, sigma2, 1, w + M_CHUNK * c);
            if (max_abs(M_CHUNK, x) < QKC_GROUP_MAX_EPS_IQ1_M) {
                ch[c].scale = 0.0f, ch[c].shifts = 0; /* the all-zero pattern, as in IQ1_S */
                for (int k = 0; k < M_CHUNK / GROUP; k++) ch[c].index[k] = (uint16_t)grid->map[ZERO_CODE];
            } else {
                iq1m_encode_chunk(grid, x, w + M_CHUNK * c, &ch[c]);
            }
            max_scale = fmaxf(max_scale, ch[c].scale);
        }
        if (!(max_scale > 0.0f)) { /* d = 0: every code decodes to 0; write ggml's zero block */
            memset(b, 0, M_BYTES);
            continue;
        }

        uint16_t sc[4] = {0, 0, 0, 0};
        float d = max_scale / 15.0f;
        const float id = 1.0f / d;
        /* with the indices, sub-scales and deltas fixed, refit the super-scale by least
         * squares over the whole block (zero chunks included: they decode to d-multiples) */
        float qx = 0.0f, q2 = 0.0f;
        for (int c = 0; c < M_NC; c++) {
            const int s = qk_clampi(qk_nearest_int(0.5f * (id * ch[c].scale - 1.0f)), 0, 7);
            sc[c / 4] |= (uint16_t)(s << (3 * (c % 4)));
            b[M_QH + c] =
                (uint8_t)((ch[c].index[0] >> 8) | (ch[c].index[1] >> 8) << 4 | qk_iq1m_shift_masks[ch[c].shifts]);
            for (int k = 0; k < M_CHUNK / GROUP; k++) {
                b[M_QS + 2 * c + k] = (uint8_t)(ch[c].index[k] & 255);
                const float *lv = M_LEVELS[k == 0 ? ch[c].shifts >> 1 : ch[c].shifts & 1];
                group_sums(grid, ch[c].index[k], src + M_CHUNK * c + GROUP * k, w + M_CHUNK * c + GROUP * k, lv,
                           (float)(2 * s + 1), &qx, &q2);
            }
        }
        if (q2 > 0.0f) d = qx / q2;
        const uint16_t dbits = qk_f32_to_fp16(d * QKC_IQ1_M_STORED_SCALE_FACTOR);
        for (int k = 0; k < 4; k++) qk_wr16(b + M_SC + 2 * k, (uint16_t)(sc[k] | ((dbits >> (4 * k)) & 15) << 12));
    }
}
