/* IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S encoders (FORMATS.md §6.1-6.5, §6.10, §9.5), one
 * 256-value super-block at a time: per group of 8 (IQ2) or 4 (IQ3) values, an index into a
 * fixed codebook of magnitudes, sign bits, 4-bit sub-block scales and one fp16 super-block
 * scale. Shared by iquants_grid.c and the CUDA kernels; layouts and decoders are in
 * iquants_block.h.
 *
 * The encoders read the lattice map of their grid (iq_grid.h) through the `g` they are given:
 * the host's map on the CPU, its device copy in a CUDA thread. Scratch is fixed-size and on
 * the stack. */
#ifndef QK_IQUANTS_GRID_BLOCK_H
#define QK_IQUANTS_GRID_BLOCK_H

#include <float.h>
#include <string.h>

#include "iq_grid.h"
#include "iquants_block.h"
#include "qk_float.h"
#include "quant_search_block.h"

/* ---- the shared search (§6.10, §9.5) ----------------------------------------------------- */

#define QK_IQG_MAX_SUB    32
#define QK_IQG_MAX_GROUPS 8

/* After the trial search, which groups are projected again at the final scale:
 * IQ2_XXS all of them whenever the scale is positive; IQ2_XS, IQ2_S and IQ3_XXS only those
 * that were off the grid; IQ3_S all of them as soon as one was. */
typedef enum qk_iqg_refit_rule {
    QK_IQG_REFIT_ALL,
    QK_IQG_REFIT_OFF_GRID,
    QK_IQG_REFIT_ALL_IF_OFF_GRID
} qk_iqg_refit_rule;

typedef struct qk_iqg_spec {
    int nc;     /* values per group: 8 (2-bit codes) or 4 (3-bit codes) */
    int bits;   /* bits per coordinate in a lattice code */
    int nmax;   /* levels 0..nmax-1, standing for 2l+1 */
    int ntry;   /* trial steps is = -ntry..ntry */
    float step; /* trial id = (2*nmax-1 + step*is) / range */
    qk_iqg_refit_rule refit;
    int on_grid_init; /* what the off-grid flags say if no trial is accepted */
} qk_iqg_spec;

/* One sub-block being encoded: working magnitudes, weights and the chosen levels. */
typedef struct qk_iqg_sub_block {
    int n; /* 16 or 32 values */
    float xval[QK_IQG_MAX_SUB];
    float w[QK_IQG_MAX_SUB];
    float waux[QK_IQG_MAX_SUB]; /* sqrt(w): the weights of the neighbour choice */
    int8_t L[QK_IQG_MAX_SUB];
} qk_iqg_sub_block;

/* The search below is instantiated once per lattice shape (8 x 2-bit, 4 x 3-bit) so that
 * the group loops have constant bounds; the arithmetic is the same either way. nvcc decides
 * its own inlining. */
#if defined(__CUDACC__)
#define QK_IQG_LATTICE static inline QK_HD
#elif defined(__GNUC__)
#define QK_IQG_LATTICE static inline __attribute__((always_inline))
#else
#define QK_IQG_LATTICE static inline
#endif

QK_IQG_LATTICE int qk_iqg_level_of(float id, float x, int nmax) {
    return qk_clampi(qk_nearest_int(0.5f * (id * x - 1)), 0, nmax - 1);
}

/* Snaps the levels L of one group to the grid (§9.5): a grid point stays; otherwise the
 * listed neighbour with the least sum waux*(scale*(2g+1) - xval)^2 (first on ties) replaces
 * L. Returns 1 if L was already on the grid.
 * Each term waux*(scale*q - x)^2 depends only on (coordinate, level), so the terms are
 * computed once per group and every neighbour's distance sums nc of them in coordinate
 * order: the same fp32 operations as evaluating the formula per neighbour, far fewer. */
QK_IQG_LATTICE int qk_iqg_snap_group(const qk_iq_grid *g, int nc, int bits, int nmax, int8_t *L, const float *xval,
                                     const float *waux, float scale) {
    uint32_t u = 0;
    for (int k = 0; k < nc; k++) u |= (uint32_t)L[k] << (bits * k);
    if (g->map[u] >= 0) return 1;
    float term[8][8];
    for (int k = 0; k < nc; k++)
        for (int l = 0; l < nmax; l++) {
            const float diff = scale * (float)(2 * l + 1) - xval[k];
            term[k][l] = waux[k] * diff * diff;
        }
    int count;
    const uint16_t *nb = qk_iq_grid_neighbours(g, u, &count);
    const uint32_t mask = (1u << bits) - 1;
    float best = FLT_MAX;
    uint32_t best_code = g->codes[nb[0]];
    for (int j = 0; j < count; j++) {
        const uint32_t code = g->codes[nb[j]];
        float d2 = 0;
        for (int k = 0; k < nc; k++) d2 += term[k][(code >> (bits * k)) & mask];
        if (d2 < best) {
            best = d2;
            best_code = code;
        }
    }
    for (int k = 0; k < nc; k++) L[k] = (int8_t)((best_code >> (bits * k)) & mask);
    return 0;
}

/* Rounds every value to a level at 1/id and snaps each group at `scale`; on_grid[k] says
 * which groups needed no snapping. Only groups with redo[k] set (all if redo is NULL) are
 * touched. */
QK_IQG_LATTICE void qk_iqg_project(const qk_iq_grid *g, int nc, int bits, int nmax, const qk_iqg_sub_block *sb,
                                   int8_t *L, float id, float scale, int *on_grid, const int *redo) {
    for (int k = 0; k < sb->n / nc; k++) {
        if (redo && !redo[k]) continue;
        const int o = nc * k;
        for (int i = 0; i < nc; i++) L[o + i] = (int8_t)qk_iqg_level_of(id, sb->xval[o + i], nmax);
        on_grid[k] = qk_iqg_snap_group(g, nc, bits, nmax, L + o, sb->xval + o, sb->waux + o, scale);
    }
}

/* Sum w*x*q and sum w*q^2 with q = 2l+1, in element order. */
QK_IQG_LATTICE void qk_iqg_ls_sums(const qk_iqg_sub_block *sb, const int8_t *L, float *sumqx, float *sumq2) {
    float sx = 0, s2 = 0;
    for (int i = 0; i < sb->n; i++) {
        const float q = (float)(2 * L[i] + 1);
        sx += sb->w[i] * sb->xval[i] * q;
        s2 += sb->w[i] * q * q;
    }
    *sumqx = sx;
    *sumq2 = s2;
}

QK_IQG_LATTICE float qk_iqg_search_lattice(const qk_iq_grid *g, const qk_iqg_spec *sp, int nc, int bits, int nmax,
                                           qk_iqg_sub_block *sb, float range, float scale) {
    const int ngroups = sb->n / nc;
    int on_grid[QK_IQG_MAX_GROUPS], on_grid_try[QK_IQG_MAX_GROUPS];
    int8_t Ltry[QK_IQG_MAX_SUB];
    float best = 0;
    memset(sb->L, 0, sizeof sb->L);
    for (int k = 0; k < ngroups; k++) on_grid[k] = sp->on_grid_init;

    for (int is = -sp->ntry; is <= sp->ntry; is++) {
        const float id = ((float)(2 * nmax - 1) + (float)is * sp->step) / range;
        qk_iqg_project(g, nc, bits, nmax, sb, Ltry, id, 1 / id, on_grid_try, NULL);
        float sumqx, sumq2;
        qk_iqg_ls_sums(sb, Ltry, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(sb->L, Ltry, (size_t)sb->n);
            memcpy(on_grid, on_grid_try, sizeof(int) * (size_t)ngroups);
        }
    }

    int redo[QK_IQG_MAX_GROUPS], any = 0;
    for (int k = 0; k < ngroups; k++) {
        redo[k] = sp->refit != QK_IQG_REFIT_OFF_GRID || !on_grid[k];
        any |= !on_grid[k];
    }
    if (scale > 0 && (sp->refit == QK_IQG_REFIT_ALL || any)) {
        qk_iqg_project(g, nc, bits, nmax, sb, sb->L, 1 / scale, scale, on_grid, redo);
        float sumqx, sumq2;
        qk_iqg_ls_sums(sb, sb->L, &sumqx, &sumq2);
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    return scale;
}

/* The trial-scale search and final refit of one sub-block (§6.10). Trial `is` rounds every
 * value to a level at id = (2*nmax-1 + step*is)/range, snaps each group to the grid at
 * 1/id, and keeps the trial's least-squares scale if it explains more weighted energy.
 * `range` is max |x| (or IQ2_XXS's effective max), `scale` the result if no trial is
 * accepted. Leaves grid-point levels in sb->L (all level 0, itself a grid point, if no
 * trial was accepted and nothing was refitted) and returns the scale, possibly negative. */
static inline QK_HD float qk_iqg_search_sub_block(const qk_iq_grid *g, const qk_iqg_spec *sp, qk_iqg_sub_block *sb,
                                                  float range, float scale) {
    /* sp's lattice numbers, passed as constants */
    if (sp->bits == 2) return qk_iqg_search_lattice(g, sp, 8, 2, 3, sb, range, scale);
    return qk_iqg_search_lattice(g, sp, 4, 3, 8, sb, range, scale);
}

/* The grid index of group k's levels (a grid point by construction). */
static inline QK_HD int qk_iqg_group_index(const qk_iq_grid *g, const qk_iqg_spec *sp, const int8_t *L, int k) {
    uint32_t u = 0;
    for (int i = 0; i < sp->nc; i++) u |= (uint32_t)L[sp->nc * k + i] << (sp->bits * i);
    const int32_t m = g->map[u];
    return m >= 0 ? m : 0;
}

/* ---- shared per-block steps ------------------------------------------------------------- */

static inline QK_HD float qk_iqg_sum_squares(const float *x) {
    float s = 0;
    for (int i = 0; i < QKC_QK_K; i++) s += x[i] * x[i];
    return s;
}

/* What a quantizer weighs by when it has no imatrix. */
typedef enum qk_iqg_no_imatrix { QK_IQG_W_SIGMA_UNIT, QK_IQG_W_X2, QK_IQG_W_QUARTER_SIGMA_X2 } qk_iqg_no_imatrix;

/* w = qw*sqrt(sigma2 + x^2) with an imatrix; without one sqrt(sigma2 + x^2) (qw taken as 1),
 * x^2, or 0.25*sigma2 + x^2. */
static inline QK_HD void qk_iqg_fill_weights(qk_iqg_sub_block *sb, const float *x, const float *qw, float sigma2,
                                             qk_iqg_no_imatrix fallback) {
    for (int i = 0; i < sb->n; i++) {
        if (qw)
            sb->w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
        else if (fallback == QK_IQG_W_SIGMA_UNIT)
            sb->w[i] = sqrtf(sigma2 + x[i] * x[i]);
        else if (fallback == QK_IQG_W_X2)
            sb->w[i] = x[i] * x[i];
        else
            sb->w[i] = 0.25f * sigma2 + x[i] * x[i];
    }
    for (int i = 0; i < sb->n; i++) sb->waux[i] = sqrtf(sb->w[i]);
}

/* Magnitudes of one 8-group into xval; returns its 8 sign bits (bit k: x[k] < 0). */
static inline QK_HD uint8_t qk_iqg_fold_signs8(const float *x, float *xval) {
    uint8_t s = 0;
    for (int k = 0; k < 8; k++) {
        if (x[k] >= 0) {
            xval[k] = x[k];
        } else {
            xval[k] = -x[k];
            s |= (uint8_t)(1 << k);
        }
    }
    return s;
}

/* 7-bit signs: the stored sign byte must have an even number of set bits, so an odd count of
 * negatives gives up the least important one (least w*x^2, first on ties), whose working
 * value is negated instead. Returns the low 7 sign bits. */
static inline QK_HD uint8_t qk_iqg_fold_signs7(const float *x, const float *w, float *xval) {
    uint8_t s = qk_iqg_fold_signs8(x, xval);
    int nneg = 0;
    for (int k = 0; k < 8; k++) nneg += (s >> k) & 1;
    if (nneg & 1) {
        int imin = 0;
        float min = w[0] * x[0] * x[0];
        for (int k = 1; k < 8; k++) {
            const float a = w[k] * x[k] * x[k];
            if (a < min) {
                min = a;
                imin = k;
            }
        }
        xval[imin] = -xval[imin];
        s ^= (uint8_t)(1 << imin);
    }
    return s & 127;
}

static inline QK_HD float qk_iqg_max_of(const qk_iqg_sub_block *sb) {
    float m = sb->xval[0];
    for (int i = 1; i < sb->n; i++) m = sb->xval[i] > m ? sb->xval[i] : m;
    return m;
}

/* 4-bit sub-block scale code for scale s, id = 1/d. */
static inline QK_HD int qk_iqg_scale_code(float id, float s) {
    return qk_clampi(qk_nearest_int(0.5f * (id * s - 1)), 0, 15);
}

/* ---- per-sub-block steps shared by every encoder ------------------------------------------ */

typedef enum qk_iqg_sign_rule { QK_IQG_SIGNS7, QK_IQG_SIGNS8 } qk_iqg_sign_rule;

/* Loads n values at x into sb with their weights, folds their signs into signs[n/8] (7 stored
 * bits with the parity fix, or 8 explicit bits) and returns the largest magnitude. */
static inline QK_HD float qk_iqg_begin_sub_block(qk_iqg_sub_block *sb, int n, const float *x, const float *qw,
                                                 float sigma2, qk_iqg_no_imatrix fallback, qk_iqg_sign_rule rule,
                                                 uint8_t *signs) {
    sb->n = n;
    qk_iqg_fill_weights(sb, x, qw, sigma2, fallback);
    for (int k = 0; k < n / 8; k++)
        signs[k] = rule == QK_IQG_SIGNS7 ? qk_iqg_fold_signs7(x + 8 * k, sb->w + 8 * k, sb->xval + 8 * k)
                                         : qk_iqg_fold_signs8(x + 8 * k, sb->xval + 8 * k);
    return qk_iqg_max_of(sb);
}

/* A negative least-squares scale (should not happen) becomes positive with every stored sign
 * flipped, so the decoded values stay the same. */
static inline QK_HD float qk_iqg_positive_scale(float scale, uint8_t *signs, int groups, qk_iqg_sign_rule rule) {
    if (scale >= 0) return scale;
    for (int k = 0; k < groups; k++) signs[k] = (uint8_t)(~signs[k] & (rule == QK_IQG_SIGNS7 ? 127 : 255));
    return -scale;
}

/* ---- IQ2_XXS ----------------------------------------------------------------------------- */

/* g: the QK_IQ_GRID_2BIT_256 map. */
static inline QK_HD void qk_quant_block_iq2_xxs(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    const qk_iqg_spec spec = {8, 2, 3, 6, 0.1f, QK_IQG_REFIT_ALL, 1};
    uint32_t q2[2 * (QKC_QK_K / 32)];
    float scales[QKC_QK_K / 32];
    float max_scale = 0;
    const float sigma2 = qk_iqg_sum_squares(x) / QKC_QK_K;
    memset(q2, 0, sizeof q2);

    for (int c = 0; c < QKC_QK_K / 32; c++) {
        qk_iqg_sub_block sb;
        uint8_t signs[4];
        const float max = qk_iqg_begin_sub_block(&sb, 32, x + 32 * c, qw ? qw + 32 * c : NULL, sigma2,
                                                 QK_IQG_W_SIGMA_UNIT, QK_IQG_SIGNS7, signs);
        scales[c] = 0;
        if (max < QKC_GROUP_MAX_EPS) continue;

        /* make_qp only estimates the range that the trials scan */
        uint8_t Lqp[32];
        const float qp_scale = qk_hd_make_qp(32, 4, sb.xval, Lqp, sb.w);
        const float eff_max = qp_scale * 3;
        if (!(eff_max > 0)) continue;
        const float scale =
            qk_iqg_positive_scale(qk_iqg_search_sub_block(g, &spec, &sb, eff_max, qp_scale), signs, 4, QK_IQG_SIGNS7);
        for (int k = 0; k < 4; k++) {
            q2[2 * c] |= (uint32_t)qk_iqg_group_index(g, &spec, sb.L, k) << (8 * k);
            q2[2 * c + 1] |= (uint32_t)signs[k] << (7 * k);
        }
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    memset(y, 0, QK_BYTES_iq2_xxs);
    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d);
    const float id = 1 / d;
    for (int c = 0; c < QKC_QK_K / 32; c++) {
        q2[2 * c + 1] |= (uint32_t)qk_iqg_scale_code(id, scales[c]) << 28;
        qk_wr32(y + QK_IQ2XXS_QS + 8 * c, q2[2 * c]);
        qk_wr32(y + QK_IQ2XXS_QS + 8 * c + 4, q2[2 * c + 1]);
    }
}

/* ---- IQ2_XS ------------------------------------------------------------------------------ */

/* g: the QK_IQ_GRID_2BIT_512 map. */
static inline QK_HD void qk_quant_block_iq2_xs(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    const qk_iqg_spec spec = {8, 2, 3, 9, 0.1f, QK_IQG_REFIT_OFF_GRID, 1};
    uint16_t q2[QKC_QK_K / 8];
    float scales[QKC_QK_K / 16];
    float max_scale = 0;
    const float sigma2 = qk_iqg_sum_squares(x) / QKC_QK_K;
    memset(q2, 0, sizeof q2);

    for (int s = 0; s < QKC_QK_K / 16; s++) {
        qk_iqg_sub_block sb;
        uint8_t signs[2];
        const float max = qk_iqg_begin_sub_block(&sb, 16, x + 16 * s, qw ? qw + 16 * s : NULL, sigma2,
                                                 QK_IQG_W_SIGMA_UNIT, QK_IQG_SIGNS7, signs);
        scales[s] = 0;
        if (max < QKC_GROUP_MAX_EPS) continue;

        const float scale =
            qk_iqg_positive_scale(qk_iqg_search_sub_block(g, &spec, &sb, max, max / 5), signs, 2, QK_IQG_SIGNS7);
        for (int k = 0; k < 2; k++) q2[2 * s + k] = (uint16_t)(qk_iqg_group_index(g, &spec, sb.L, k) | signs[k] << 9);
        scales[s] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    memset(y, 0, QK_BYTES_iq2_xs);
    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d);
    const float id = 1 / d;
    for (int e = 0; e < QKC_QK_K / 8; e++) qk_wr16(y + QK_IQ2XS_QS + 2 * e, q2[e]);
    for (int s = 0; s < QKC_QK_K / 16; s++)
        y[QK_IQ2XS_SCALES + s / 2] |= (uint8_t)(qk_iqg_scale_code(id, scales[s]) << (4 * (s % 2)));
}

/* ---- IQ2_S ------------------------------------------------------------------------------- */

/* g: the QK_IQ_GRID_2BIT_1024 map. */
static inline QK_HD void qk_quant_block_iq2_s(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    const qk_iqg_spec spec = {8, 2, 3, 9, 0.1f, QK_IQG_REFIT_OFF_GRID, 1};
    float scales[QKC_QK_K / 16];
    float max_scale = 0;
    const float sigma2 = 2 * qk_iqg_sum_squares(x) / QKC_QK_K;
    memset(y, 0, QK_BYTES_iq2_s);

    for (int s = 0; s < QKC_QK_K / 16; s++) {
        qk_iqg_sub_block sb;
        uint8_t signs[2];
        const float max = qk_iqg_begin_sub_block(&sb, 16, x + 16 * s, qw ? qw + 16 * s : NULL, sigma2,
                                                 QK_IQG_W_QUARTER_SIGMA_X2, QK_IQG_SIGNS8, signs);
        scales[s] = 0;
        if (max < QKC_GROUP_MAX_EPS_IQ2_S) continue;

        const float scale =
            qk_iqg_positive_scale(qk_iqg_search_sub_block(g, &spec, &sb, max, max / 5), signs, 2, QK_IQG_SIGNS8);
        for (int k = 0; k < 2; k++) {
            const int e = 2 * s + k, idx = qk_iqg_group_index(g, &spec, sb.L, k);
            y[QK_IQ2S_QS + e] = (uint8_t)idx;
            y[QK_IQ2S_QH + e / 4] |= (uint8_t)((idx >> 8) << (2 * (e % 4)));
            y[QK_IQ2S_SIGNS + e] = signs[k];
        }
        scales[s] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    if (!(max_scale > 0)) return;
    /* the stored scale carries ggml's fudge factor; the 4-bit codes use the plain one */
    const float d = max_scale / 31;
    qk_wrh(y, d * QKC_IQ2_S_STORED_SCALE_FACTOR);
    const float id = 1 / d;
    for (int s = 0; s < QKC_QK_K / 16; s++)
        y[QK_IQ2S_SCALES + s / 2] |= (uint8_t)(qk_iqg_scale_code(id, scales[s]) << (4 * (s % 2)));
}

/* ---- IQ3_XXS ----------------------------------------------------------------------------- */

/* g: the QK_IQ_GRID_3BIT_256 map. */
static inline QK_HD void qk_quant_block_iq3_xxs(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    const qk_iqg_spec spec = {4, 3, 8, 15, 0.2f, QK_IQG_REFIT_OFF_GRID, 1};
    uint8_t q3[QKC_QK_K / 4];
    uint32_t ss[QKC_QK_K / 32];
    float scales[QKC_QK_K / 32];
    float max_scale = 0;
    const float sigma2 = 2 * qk_iqg_sum_squares(x) / QKC_QK_K;
    memset(q3, 0, sizeof q3);
    memset(ss, 0, sizeof ss);

    for (int c = 0; c < QKC_QK_K / 32; c++) {
        qk_iqg_sub_block sb;
        uint8_t signs[4];
        const float max = qk_iqg_begin_sub_block(&sb, 32, x + 32 * c, qw ? qw + 32 * c : NULL, sigma2, QK_IQG_W_X2,
                                                 QK_IQG_SIGNS7, signs);
        scales[c] = 0;
        if (max < QKC_GROUP_MAX_EPS_IQ3_XXS) continue;

        const float scale =
            qk_iqg_positive_scale(qk_iqg_search_sub_block(g, &spec, &sb, max, max / 15), signs, 4, QK_IQG_SIGNS7);
        for (int k = 0; k < 8; k++) q3[8 * c + k] = (uint8_t)qk_iqg_group_index(g, &spec, sb.L, k);
        ss[c] = (uint32_t)signs[0] | (uint32_t)signs[1] << 7 | (uint32_t)signs[2] << 14 | (uint32_t)signs[3] << 21;
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    memset(y, 0, QK_BYTES_iq3_xxs);
    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d * QKC_IQ3_XXS_STORED_SCALE_FACTOR);
    const float id = 1 / d;
    memcpy(y + QK_IQ3XXS_QS, q3, sizeof q3);
    for (int c = 0; c < QKC_QK_K / 32; c++)
        qk_wr32(y + QK_IQ3XXS_SS + 4 * c, ss[c] | (uint32_t)qk_iqg_scale_code(id, scales[c]) << 28);
}

/* ---- IQ3_S ------------------------------------------------------------------------------- */

/* g: the QK_IQ_GRID_3BIT_512 map.
 * Unlike ggml (§6.10 "ggml bug"), an all-zero chunk keeps its own qs/signs slots (left zero),
 * so the chunks after it stay where the decoder looks for them. */
static inline QK_HD void qk_quant_block_iq3_s(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    const qk_iqg_spec spec = {4, 3, 8, 9, 0.2f, QK_IQG_REFIT_ALL_IF_OFF_GRID, 0};
    float scales[QKC_QK_K / 32];
    float max_scale = 0;
    const float sigma2 = 2 * qk_iqg_sum_squares(x) / QKC_QK_K;
    memset(y, 0, QK_BYTES_iq3_s);

    for (int c = 0; c < QKC_QK_K / 32; c++) {
        qk_iqg_sub_block sb;
        uint8_t signs[4];
        const float max = qk_iqg_begin_sub_block(&sb, 32, x + 32 * c, qw ? qw + 32 * c : NULL, sigma2, QK_IQG_W_X2,
                                                 QK_IQG_SIGNS8, signs);
        scales[c] = 0;
        if (max == 0) continue;

        const float scale =
            qk_iqg_positive_scale(qk_iqg_search_sub_block(g, &spec, &sb, max, max / 15), signs, 4, QK_IQG_SIGNS8);
        for (int k = 0; k < 8; k++) {
            const int q = 8 * c + k, idx = qk_iqg_group_index(g, &spec, sb.L, k);
            y[QK_IQ3S_QS + q] = (uint8_t)idx;
            y[QK_IQ3S_QH + q / 8] |= (uint8_t)((idx >> 8) << (q % 8));
        }
        for (int k = 0; k < 4; k++) y[QK_IQ3S_SIGNS + 4 * c + k] = signs[k];
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d * QKC_IQ3_S_STORED_SCALE_FACTOR);
    const float id = 1 / d;
    for (int c = 0; c < QKC_QK_K / 32; c++)
        y[QK_IQ3S_SCALES + c / 2] |= (uint8_t)(qk_iqg_scale_code(id, scales[c]) << (4 * (c % 2)));
}

#endif
