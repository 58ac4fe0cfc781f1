/* IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S (FORMATS.md §6.1-6.5; encoders §6.10, §9.5):
 * per group of 8 (IQ2) or 4 (IQ3) values, an index into a fixed codebook of magnitudes, sign
 * bits, 4-bit sub-block scales and one fp16 super-block scale.
 *
 * The encoders work on one 256-value super-block at a time with fixed-size stack arrays, so a
 * GPU thread can run the same code block by block and get the same bytes. */
#include <float.h>
#include <string.h>

#include "cpu_kernels.h"
#include "iq_grid.h"
#include "iquants_block.h"
#include "qk_float.h"
#include "quant_search.h"

enum {
    QK = QKC_QK_K,
    /* layouts: iquants_block.h */
    XXS2_QS = QK_IQ2XXS_QS,
    XXS2_BYTES = QK_IQ2XXS_BYTES,
    XS2_QS = QK_IQ2XS_QS,
    XS2_SCALES = QK_IQ2XS_SCALES,
    XS2_BYTES = QK_IQ2XS_BYTES,
    S2_QS = QK_IQ2S_QS,
    S2_SIGNS = QK_IQ2S_SIGNS,
    S2_QH = QK_IQ2S_QH,
    S2_SCALES = QK_IQ2S_SCALES,
    S2_BYTES = QK_IQ2S_BYTES,
    XXS3_QS = QK_IQ3XXS_QS,
    XXS3_SS = QK_IQ3XXS_SS,
    XXS3_BYTES = QK_IQ3XXS_BYTES,
    S3_QS = QK_IQ3S_QS,
    S3_QH = QK_IQ3S_QH,
    S3_SIGNS = QK_IQ3S_SIGNS,
    S3_SCALES = QK_IQ3S_SCALES,
    S3_BYTES = QK_IQ3S_BYTES,
};

/* ---- dequantization: block code in iquants_block.h ----------------------------------------- */

#define IQ_DEQUANT_ENTRY(T, BYTES)                                                                                     \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) {                                                  \
        const uint8_t *b = (const uint8_t *)src;                                                                       \
        for (int64_t i = 0; i < n / QK; i++) qk_dequant_block_##T(b + i * (BYTES), dst + i * QK);                      \
    }

IQ_DEQUANT_ENTRY(iq2_xxs, XXS2_BYTES)
IQ_DEQUANT_ENTRY(iq2_xs, XS2_BYTES)
IQ_DEQUANT_ENTRY(iq2_s, S2_BYTES)
IQ_DEQUANT_ENTRY(iq3_xxs, XXS3_BYTES)
IQ_DEQUANT_ENTRY(iq3_s, S3_BYTES)

/* ---- the shared search (§6.10, §9.5) ----------------------------------------------------- */

enum { MAX_SUB = 32, MAX_GROUPS = 8 };

/* After the trial search, which groups are projected again at the final scale:
 * IQ2_XXS all of them whenever the scale is positive; IQ2_XS, IQ2_S and IQ3_XXS only those
 * that were off the grid; IQ3_S all of them as soon as one was. */
typedef enum refit_rule { REFIT_ALL, REFIT_OFF_GRID, REFIT_ALL_IF_OFF_GRID } refit_rule;

typedef struct search_spec {
    int nc;     /* values per group: 8 (2-bit codes) or 4 (3-bit codes) */
    int bits;   /* bits per coordinate in a lattice code */
    int nmax;   /* levels 0..nmax-1, standing for 2l+1 */
    int ntry;   /* trial steps is = -ntry..ntry */
    float step; /* trial id = (2*nmax-1 + step*is) / range */
    refit_rule refit;
    int on_grid_init; /* what the off-grid flags say if no trial is accepted */
} search_spec;

/* One sub-block being encoded: working magnitudes, weights and the chosen levels. */
typedef struct sub_block {
    int n; /* 16 or 32 values */
    float xval[MAX_SUB];
    float w[MAX_SUB];
    float waux[MAX_SUB]; /* sqrt(w): the weights of the neighbour choice */
    int8_t L[MAX_SUB];
} sub_block;

/* The search below is instantiated once per lattice shape (8 x 2-bit, 4 x 3-bit) so that
 * the group loops have constant bounds; the arithmetic is the same either way. */
#if defined(__GNUC__)
#define LATTICE_INLINE static inline __attribute__((always_inline))
#else
#define LATTICE_INLINE static inline
#endif

LATTICE_INLINE int level_of(float id, float x, int nmax) {
    return qk_clampi(qk_nearest_int(0.5f * (id * x - 1)), 0, nmax - 1);
}

/* Snaps the levels L of one group to the grid (§9.5): a grid point stays; otherwise the
 * listed neighbour with the least sum waux*(scale*(2g+1) - xval)^2 (first on ties) replaces
 * L. Returns 1 if L was already on the grid.
 * Each term waux*(scale*q - x)^2 depends only on (coordinate, level), so the terms are
 * computed once per group and every neighbour's distance sums nc of them in coordinate
 * order: the same fp32 operations as evaluating the formula per neighbour, far fewer. */
LATTICE_INLINE int snap_group(const qk_iq_grid *g, int nc, int bits, int nmax, int8_t *L, const float *xval,
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
LATTICE_INLINE void project(const qk_iq_grid *g, int nc, int bits, int nmax, const sub_block *sb, int8_t *L, float id,
                            float scale, int *on_grid, const int *redo) {
    for (int k = 0; k < sb->n / nc; k++) {
        if (redo && !redo[k]) continue;
        const int o = nc * k;
        for (int i = 0; i < nc; i++) L[o + i] = (int8_t)level_of(id, sb->xval[o + i], nmax);
        on_grid[k] = snap_group(g, nc, bits, nmax, L + o, sb->xval + o, sb->waux + o, scale);
    }
}

/* Sum w*x*q and sum w*q^2 with q = 2l+1, in element order. */
LATTICE_INLINE void ls_sums(const sub_block *sb, const int8_t *L, float *sumqx, float *sumq2) {
    float sx = 0, s2 = 0;
    for (int i = 0; i < sb->n; i++) {
        const float q = (float)(2 * L[i] + 1);
        sx += sb->w[i] * sb->xval[i] * q;
        s2 += sb->w[i] * q * q;
    }
    *sumqx = sx;
    *sumq2 = s2;
}

LATTICE_INLINE float search_lattice(const qk_iq_grid *g, const search_spec *sp, int nc, int bits, int nmax,
                                    sub_block *sb, float range, float scale) {
    const int ngroups = sb->n / nc;
    int on_grid[MAX_GROUPS], on_grid_try[MAX_GROUPS];
    int8_t Ltry[MAX_SUB];
    float best = 0;
    memset(sb->L, 0, sizeof sb->L);
    for (int k = 0; k < ngroups; k++) on_grid[k] = sp->on_grid_init;

    for (int is = -sp->ntry; is <= sp->ntry; is++) {
        const float id = ((float)(2 * nmax - 1) + (float)is * sp->step) / range;
        project(g, nc, bits, nmax, sb, Ltry, id, 1 / id, on_grid_try, NULL);
        float sumqx, sumq2;
        ls_sums(sb, Ltry, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(sb->L, Ltry, (size_t)sb->n);
            memcpy(on_grid, on_grid_try, sizeof(int) * (size_t)ngroups);
        }
    }

    int redo[MAX_GROUPS], any = 0;
    for (int k = 0; k < ngroups; k++) {
        redo[k] = sp->refit != REFIT_OFF_GRID || !on_grid[k];
        any |= !on_grid[k];
    }
    if (scale > 0 && (sp->refit == REFIT_ALL || any)) {
        project(g, nc, bits, nmax, sb, sb->L, 1 / scale, scale, on_grid, redo);
        float sumqx, sumq2;
        ls_sums(sb, sb->L, &sumqx, &sumq2);
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
static float search_sub_block(const qk_iq_grid *g, const search_spec *sp, sub_block *sb, float range, float scale) {
    /* sp's lattice numbers, passed as constants */
    if (sp->bits == 2) return search_lattice(g, sp, 8, 2, 3, sb, range, scale);
    return search_lattice(g, sp, 4, 3, 8, sb, range, scale);
}

/* The grid index of group k's levels (a grid point by construction). */
static inline int group_index(const qk_iq_grid *g, const search_spec *sp, const int8_t *L, int k) {
    uint32_t u = 0;
    for (int i = 0; i < sp->nc; i++) u |= (uint32_t)L[sp->nc * k + i] << (sp->bits * i);
    const int32_t m = g->map[u];
    return m >= 0 ? m : 0;
}

/* ---- shared per-block steps ------------------------------------------------------------- */

static float sum_squares(const float *x) {
    float s = 0;
    for (int i = 0; i < QK; i++) s += x[i] * x[i];
    return s;
}

/* What a quantizer weighs by when it has no imatrix. */
typedef enum no_imatrix { W_SIGMA_UNIT, W_X2, W_QUARTER_SIGMA_X2 } no_imatrix;

/* w = qw*sqrt(sigma2 + x^2) with an imatrix; without one sqrt(sigma2 + x^2) (qw taken as 1),
 * x^2, or 0.25*sigma2 + x^2. */
static void fill_weights(sub_block *sb, const float *x, const float *qw, float sigma2, no_imatrix fallback) {
    for (int i = 0; i < sb->n; i++) {
        if (qw)
            sb->w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
        else if (fallback == W_SIGMA_UNIT)
            sb->w[i] = sqrtf(sigma2 + x[i] * x[i]);
        else if (fallback == W_X2)
            sb->w[i] = x[i] * x[i];
        else
            sb->w[i] = 0.25f * sigma2 + x[i] * x[i];
    }
    for (int i = 0; i < sb->n; i++) sb->waux[i] = sqrtf(sb->w[i]);
}

/* Magnitudes of one 8-group into xval; returns its 8 sign bits (bit k: x[k] < 0). */
static uint8_t fold_signs8(const float *x, float *xval) {
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
static uint8_t fold_signs7(const float *x, const float *w, float *xval) {
    uint8_t s = fold_signs8(x, xval);
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

static float max_of(const sub_block *sb) {
    float m = sb->xval[0];
    for (int i = 1; i < sb->n; i++) m = sb->xval[i] > m ? sb->xval[i] : m;
    return m;
}

/* 4-bit sub-block scale code for scale s, id = 1/d. */
static inline int scale_code(float id, float s) { return qk_clampi(qk_nearest_int(0.5f * (id * s - 1)), 0, 15); }

/* ---- per-sub-block steps shared by every encoder ------------------------------------------ */

typedef enum sign_rule { SIGNS7, SIGNS8 } sign_rule;

/* Loads n values at x into sb with their weights, folds their signs into signs[n/8] (7 stored
 * bits with the parity fix, or 8 explicit bits) and returns the largest magnitude. */
static float begin_sub_block(sub_block *sb, int n, const float *x, const float *qw, float sigma2, no_imatrix fallback,
                             sign_rule rule, uint8_t *signs) {
    sb->n = n;
    fill_weights(sb, x, qw, sigma2, fallback);
    for (int k = 0; k < n / 8; k++)
        signs[k] = rule == SIGNS7 ? fold_signs7(x + 8 * k, sb->w + 8 * k, sb->xval + 8 * k)
                                  : fold_signs8(x + 8 * k, sb->xval + 8 * k);
    return max_of(sb);
}

/* A negative least-squares scale (should not happen) becomes positive with every stored sign
 * flipped, so the decoded values stay the same. */
static float positive_scale(float scale, uint8_t *signs, int groups, sign_rule rule) {
    if (scale >= 0) return scale;
    for (int k = 0; k < groups; k++) signs[k] = (uint8_t)(~signs[k] & (rule == SIGNS7 ? 127 : 255));
    return -scale;
}

/* ---- IQ2_XXS ----------------------------------------------------------------------------- */

static const search_spec spec_iq2_xxs = {8, 2, 3, 6, 0.1f, REFIT_ALL, 1};

static void quant_block_iq2_xxs(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    uint32_t q2[2 * (QK / 32)];
    float scales[QK / 32];
    float max_scale = 0;
    const float sigma2 = sum_squares(x) / QK;
    memset(q2, 0, sizeof q2);

    for (int c = 0; c < QK / 32; c++) {
        sub_block sb;
        uint8_t signs[4];
        const float max =
            begin_sub_block(&sb, 32, x + 32 * c, qw ? qw + 32 * c : NULL, sigma2, W_SIGMA_UNIT, SIGNS7, signs);
        scales[c] = 0;
        if (max < QKC_GROUP_MAX_EPS) continue;

        /* make_qp only estimates the range that the trials scan */
        uint8_t Lqp[32];
        const float qp_scale = qk_make_qp(32, 4, sb.xval, Lqp, sb.w);
        const float eff_max = qp_scale * 3;
        if (!(eff_max > 0)) continue;
        const float scale =
            positive_scale(search_sub_block(g, &spec_iq2_xxs, &sb, eff_max, qp_scale), signs, 4, SIGNS7);
        for (int k = 0; k < 4; k++) {
            q2[2 * c] |= (uint32_t)group_index(g, &spec_iq2_xxs, sb.L, k) << (8 * k);
            q2[2 * c + 1] |= (uint32_t)signs[k] << (7 * k);
        }
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    memset(y, 0, XXS2_BYTES);
    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d);
    const float id = 1 / d;
    for (int c = 0; c < QK / 32; c++) {
        q2[2 * c + 1] |= (uint32_t)scale_code(id, scales[c]) << 28;
        qk_wr32(y + XXS2_QS + 8 * c, q2[2 * c]);
        qk_wr32(y + XXS2_QS + 8 * c + 4, q2[2 * c + 1]);
    }
}

/* ---- IQ2_XS ------------------------------------------------------------------------------ */

static const search_spec spec_iq2_xs = {8, 2, 3, 9, 0.1f, REFIT_OFF_GRID, 1};

static void quant_block_iq2_xs(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    uint16_t q2[QK / 8];
    float scales[QK / 16];
    float max_scale = 0;
    const float sigma2 = sum_squares(x) / QK;
    memset(q2, 0, sizeof q2);

    for (int s = 0; s < QK / 16; s++) {
        sub_block sb;
        uint8_t signs[2];
        const float max =
            begin_sub_block(&sb, 16, x + 16 * s, qw ? qw + 16 * s : NULL, sigma2, W_SIGMA_UNIT, SIGNS7, signs);
        scales[s] = 0;
        if (max < QKC_GROUP_MAX_EPS) continue;

        const float scale = positive_scale(search_sub_block(g, &spec_iq2_xs, &sb, max, max / 5), signs, 2, SIGNS7);
        for (int k = 0; k < 2; k++) q2[2 * s + k] = (uint16_t)(group_index(g, &spec_iq2_xs, sb.L, k) | signs[k] << 9);
        scales[s] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    memset(y, 0, XS2_BYTES);
    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d);
    const float id = 1 / d;
    for (int e = 0; e < QK / 8; e++) qk_wr16(y + XS2_QS + 2 * e, q2[e]);
    for (int s = 0; s < QK / 16; s++) y[XS2_SCALES + s / 2] |= (uint8_t)(scale_code(id, scales[s]) << (4 * (s % 2)));
}

/* ---- IQ2_S ------------------------------------------------------------------------------- */

static const search_spec spec_iq2_s = {8, 2, 3, 9, 0.1f, REFIT_OFF_GRID, 1};

static void quant_block_iq2_s(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    float scales[QK / 16];
    float max_scale = 0;
    const float sigma2 = 2 * sum_squares(x) / QK;
    memset(y, 0, S2_BYTES);

    for (int s = 0; s < QK / 16; s++) {
        sub_block sb;
        uint8_t signs[2];
        const float max =
            begin_sub_block(&sb, 16, x + 16 * s, qw ? qw + 16 * s : NULL, sigma2, W_QUARTER_SIGMA_X2, SIGNS8, signs);
        scales[s] = 0;
        if (max < QKC_GROUP_MAX_EPS_IQ2_S) continue;

        const float scale = positive_scale(search_sub_block(g, &spec_iq2_s, &sb, max, max / 5), signs, 2, SIGNS8);
        for (int k = 0; k < 2; k++) {
            const int e = 2 * s + k, idx = group_index(g, &spec_iq2_s, sb.L, k);
            y[S2_QS + e] = (uint8_t)idx;
            y[S2_QH + e / 4] |= (uint8_t)((idx >> 8) << (2 * (e % 4)));
            y[S2_SIGNS + e] = signs[k];
        }
        scales[s] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    if (!(max_scale > 0)) return;
    /* the stored scale carries ggml's fudge factor; the 4-bit codes use the plain one */
    const float d = max_scale / 31;
    qk_wrh(y, d * QKC_IQ2_S_STORED_SCALE_FACTOR);
    const float id = 1 / d;
    for (int s = 0; s < QK / 16; s++) y[S2_SCALES + s / 2] |= (uint8_t)(scale_code(id, scales[s]) << (4 * (s % 2)));
}

/* ---- IQ3_XXS ----------------------------------------------------------------------------- */

static const search_spec spec_iq3_xxs = {4, 3, 8, 15, 0.2f, REFIT_OFF_GRID, 1};

static void quant_block_iq3_xxs(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    uint8_t q3[QK / 4];
    uint32_t ss[QK / 32];
    float scales[QK / 32];
    float max_scale = 0;
    const float sigma2 = 2 * sum_squares(x) / QK;
    memset(q3, 0, sizeof q3);
    memset(ss, 0, sizeof ss);

    for (int c = 0; c < QK / 32; c++) {
        sub_block sb;
        uint8_t signs[4];
        const float max = begin_sub_block(&sb, 32, x + 32 * c, qw ? qw + 32 * c : NULL, sigma2, W_X2, SIGNS7, signs);
        scales[c] = 0;
        if (max < QKC_GROUP_MAX_EPS_IQ3_XXS) continue;

        const float scale = positive_scale(search_sub_block(g, &spec_iq3_xxs, &sb, max, max / 15), signs, 4, SIGNS7);
        for (int k = 0; k < 8; k++) q3[8 * c + k] = (uint8_t)group_index(g, &spec_iq3_xxs, sb.L, k);
        ss[c] = (uint32_t)signs[0] | (uint32_t)signs[1] << 7 | (uint32_t)signs[2] << 14 | (uint32_t)signs[3] << 21;
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    memset(y, 0, XXS3_BYTES);
    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d * QKC_IQ3_XXS_STORED_SCALE_FACTOR);
    const float id = 1 / d;
    memcpy(y + XXS3_QS, q3, sizeof q3);
    for (int c = 0; c < QK / 32; c++) qk_wr32(y + XXS3_SS + 4 * c, ss[c] | (uint32_t)scale_code(id, scales[c]) << 28);
}

/* ---- IQ3_S ------------------------------------------------------------------------------- */

static const search_spec spec_iq3_s = {4, 3, 8, 9, 0.2f, REFIT_ALL_IF_OFF_GRID, 0};

/* Unlike ggml (§6.10 "ggml bug"), an all-zero chunk keeps its own qs/signs slots (left zero),
 * so the chunks after it stay where the decoder looks for them. */
static void quant_block_iq3_s(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y) {
    float scales[QK / 32];
    float max_scale = 0;
    const float sigma2 = 2 * sum_squares(x) / QK;
    memset(y, 0, S3_BYTES);

    for (int c = 0; c < QK / 32; c++) {
        sub_block sb;
        uint8_t signs[4];
        const float max = begin_sub_block(&sb, 32, x + 32 * c, qw ? qw + 32 * c : NULL, sigma2, W_X2, SIGNS8, signs);
        scales[c] = 0;
        if (max == 0) continue;

        const float scale = positive_scale(search_sub_block(g, &spec_iq3_s, &sb, max, max / 15), signs, 4, SIGNS8);
        for (int k = 0; k < 8; k++) {
            const int q = 8 * c + k, idx = group_index(g, &spec_iq3_s, sb.L, k);
            y[S3_QS + q] = (uint8_t)idx;
            y[S3_QH + q / 8] |= (uint8_t)((idx >> 8) << (q % 8));
        }
        for (int k = 0; k < 4; k++) y[S3_SIGNS + 4 * c + k] = signs[k];
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    if (!(max_scale > 0)) return;
    const float d = max_scale / 31;
    qk_wrh(y, d * QKC_IQ3_S_STORED_SCALE_FACTOR);
    const float id = 1 / d;
    for (int c = 0; c < QK / 32; c++) y[S3_SCALES + c / 2] |= (uint8_t)(scale_code(id, scales[c]) << (4 * (c % 2)));
}

/* ---- row entry points -------------------------------------------------------------------- */

typedef void (*block_encoder)(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y);

static void quant_row(qk_iq_grid_id grid, block_encoder enc, int block_bytes, const float *src, void *dst, int64_t n,
                      const float *qw) {
    const qk_iq_grid *g = qk_iq_grid_get(grid);
    uint8_t *y = dst;
    if (!g) { /* out of memory; qk_cpu_quant_prepare reports it before any kernel runs */
        memset(dst, 0, (size_t)(n / QK) * (size_t)block_bytes);
        return;
    }
    for (int64_t i = 0; i < n / QK; i++) enc(g, src + QK * i, qw ? qw + QK * i : NULL, y + block_bytes * i);
}

/* IQ2_XXS and IQ2_XS need an imatrix (the runtime refuses them without one); given none, they
 * weigh every column 1 rather than fail: w = sqrt(sigma2 + x^2). */
void qk_cpu_quant_iq2_xxs(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_2BIT_256, quant_block_iq2_xxs, XXS2_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq2_xs(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_2BIT_512, quant_block_iq2_xs, XS2_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq2_s(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_2BIT_1024, quant_block_iq2_s, S2_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq3_xxs(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_3BIT_256, quant_block_iq3_xxs, XXS3_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq3_s(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_3BIT_512, quant_block_iq3_s, S3_BYTES, src, dst, n, qw);
}
