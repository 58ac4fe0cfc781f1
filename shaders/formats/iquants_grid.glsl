/* IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S on the GPU, one 256-value super-block per
 * invocation (FORMATS.md §6.1-6.5, §6.10, §9.5): the decoders of kernels/cpu/iquants_block.h
 * and the encoders of kernels/cpu/iquants_grid_block.h, statement for statement (the contract
 * is in common.glsl).
 *
 * Decoders read whole words: a part's grid indices, sign bits and scale come in one to three
 * qk_rd32 each. A sign is applied by flipping the product's sign bit, which is what the
 * reference's multiplication by -1 gives for every value but a NaN's payload. The 7-bit sign
 * codes expand by parity (ksigns_iq2xs[i] = i | parity(i) << 7) instead of a table read.
 *
 * The encoders keep the sub-block being searched in private globals (qk_iqg_*): GLSL has no
 * pointers, and the C helpers all work on that one sub-block anyway. The lattice map of the
 * type's grid is read through qk_grid_*() (common.glsl). */
#ifndef QK_IQUANTS_GRID_GLSL
#define QK_IQUANTS_GRID_GLSL

#include "quant_search.glsl"

/* byte offsets inside one block, as QK_IQ*_* of iquants_block.h */
#define QK_IQ2XXS_QS 2u

#define QK_IQ2XS_QS 2u
#define QK_IQ2XS_SCALES 66u

#define QK_IQ2S_QS 2u
#define QK_IQ2S_SIGNS 34u
#define QK_IQ2S_QH 66u
#define QK_IQ2S_SCALES 74u

#define QK_IQ3XXS_QS 2u
#define QK_IQ3XXS_SS 66u

#define QK_IQ3S_QS 2u
#define QK_IQ3S_QH 66u
#define QK_IQ3S_SIGNS 74u
#define QK_IQ3S_SCALES 106u

/* The encoder's qk_iqg_spec as constants, and the lattice map of its grid (qk_iq_grid_id):
 * NC values per group, BITS per coordinate in a code, levels 0..NMAX-1, trials -NTRY..NTRY,
 * SUB values per sub-block. REFIT: 0 all groups, 1 the off-grid ones, 2 all if one was off. */
#define QK_IQG_REFIT_ALL 0
#define QK_IQG_REFIT_OFF_GRID 1
#define QK_IQG_REFIT_ALL_IF_OFF_GRID 2

#if defined(QK_TYPE_IQ2_XXS)
#define QK_IQG_GRID 0u
#define QK_IQG_NTRY 6
#define QK_IQG_STEP 0.1
#define QK_IQG_REFIT QK_IQG_REFIT_ALL
#define QK_IQG_ON_GRID_INIT 1
#define QK_IQG_SUB 32
#elif defined(QK_TYPE_IQ2_XS)
#define QK_IQG_GRID 1u
#define QK_IQG_NTRY 9
#define QK_IQG_STEP 0.1
#define QK_IQG_REFIT QK_IQG_REFIT_OFF_GRID
#define QK_IQG_ON_GRID_INIT 1
#define QK_IQG_SUB 16
#elif defined(QK_TYPE_IQ2_S)
#define QK_IQG_GRID 2u
#define QK_IQG_NTRY 9
#define QK_IQG_STEP 0.1
#define QK_IQG_REFIT QK_IQG_REFIT_OFF_GRID
#define QK_IQG_ON_GRID_INIT 1
#define QK_IQG_SUB 16
#elif defined(QK_TYPE_IQ3_XXS)
#define QK_IQG_GRID 3u
#define QK_IQG_NTRY 15
#define QK_IQG_STEP 0.2
#define QK_IQG_REFIT QK_IQG_REFIT_OFF_GRID
#define QK_IQG_ON_GRID_INIT 1
#define QK_IQG_SUB 32
#else /* IQ3_S */
#define QK_IQG_GRID 4u
#define QK_IQG_NTRY 9
#define QK_IQG_STEP 0.2
#define QK_IQG_REFIT QK_IQG_REFIT_ALL_IF_OFF_GRID
#define QK_IQG_ON_GRID_INIT 0
#define QK_IQG_SUB 32
#endif

#if defined(QK_TYPE_IQ2_XXS) || defined(QK_TYPE_IQ2_XS) || defined(QK_TYPE_IQ2_S)
#define QK_IQG_NC 8
#define QK_IQG_BITS 2
#define QK_IQG_NMAX 3
#else
#define QK_IQG_NC 4
#define QK_IQG_BITS 3
#define QK_IQG_NMAX 8
#endif
#define QK_IQG_GROUPS (QK_IQG_SUB / QK_IQG_NC)
#define QK_IQG_NSUB (QK_BLOCK_ELEMS / QK_IQG_SUB)

/* ---- decoders --------------------------------------------------------------------------- */

/* v with its sign flipped if bit 0 of s is set: v * -1.0, exactly. */
float qk_iqg_signed(float v, uint s) { return uintBitsToFloat(floatBitsToUint(v) ^ ((s & 1u) << 31)); }

/* ksigns_iq2xs[i]: the 7 stored sign bits and their parity as bit 7. */
uint qk_iqg_ksigns(uint i) { return i | ((uint(bitCount(i)) & 1u) << 7); }

/* Eight values from the two words of a grid entry: db times its bytes, signed by the bits of s. */
void qk_iqg_put8(inout float v[32], uint o, float db, uint g0, uint g1, uint s) {
    [[unroll]] for (uint k = 0u; k < 4u; k++) {
        v[o + k] = qk_iqg_signed(db * float((g0 >> (8u * k)) & 0xffu), s >> k);
        v[o + 4u + k] = qk_iqg_signed(db * float((g1 >> (8u * k)) & 0xffu), s >> (4u + k));
    }
}

#if defined(QK_TYPE_IQ2_XXS)

void qk_dequant_part(uint base, uint p, out float v[32]) {
    float d = qk_rdh(base);
    uint q = base + QK_IQ2XXS_QS + 8u * p;
    uint idx = qk_rd32(q), aux = qk_rd32(q + 4u);
    float db = d * (0.5 + float(aux >> 28)) * 0.25;
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        uvec2 g = qk_tab_u64(QK_TAB_iq2xxs_grid, (idx >> (8u * l)) & 0xffu);
        qk_iqg_put8(v, 8u * l, db, g.x, g.y, qk_iqg_ksigns((aux >> (7u * l)) & 127u));
    }
}

#elif defined(QK_TYPE_IQ2_XS)

void qk_dequant_part(uint base, uint p, out float v[32]) {
    float d = qk_rdh(base);
    uint sc = qk_rd8(base + QK_IQ2XS_SCALES + p);
    /* qk_iq2_group_scale: groups 4p, 4p+1 take the low nibble, 4p+2, 4p+3 the high one */
    float db0 = d * (0.5 + float(sc & 15u)) * 0.25, db1 = d * (0.5 + float(sc >> 4)) * 0.25;
    uint q = base + QK_IQ2XS_QS + 8u * p;
    uint w0 = qk_rd32(q), w1 = qk_rd32(q + 4u);
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        uint e = (l < 2u ? w0 : w1) >> (16u * (l & 1u));
        uvec2 g = qk_tab_u64(QK_TAB_iq2xs_grid, e & 511u);
        qk_iqg_put8(v, 8u * l, l < 2u ? db0 : db1, g.x, g.y, qk_iqg_ksigns((e >> 9) & 127u));
    }
}

#elif defined(QK_TYPE_IQ2_S)

void qk_dequant_part(uint base, uint p, out float v[32]) {
    float d = qk_rdh(base);
    uint sc = qk_rd8(base + QK_IQ2S_SCALES + p);
    float db0 = d * (0.5 + float(sc & 15u)) * 0.25, db1 = d * (0.5 + float(sc >> 4)) * 0.25;
    uint qs = qk_rd32(base + QK_IQ2S_QS + 4u * p), signs = qk_rd32(base + QK_IQ2S_SIGNS + 4u * p);
    uint qh = qk_rd8(base + QK_IQ2S_QH + p);
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        uint idx = ((qs >> (8u * l)) & 0xffu) | (((qh >> (2u * l)) & 3u) << 8);
        uvec2 g = qk_tab_u64(QK_TAB_iq2s_grid, idx);
        qk_iqg_put8(v, 8u * l, l < 2u ? db0 : db1, g.x, g.y, signs >> (8u * l));
    }
}

#elif defined(QK_TYPE_IQ3_XXS)

void qk_dequant_part(uint base, uint p, out float v[32]) {
    float d = qk_rdh(base);
    uint aux = qk_rd32(base + QK_IQ3XXS_SS + 4u * p);
    float db = d * (0.5 + float(aux >> 28)) * 0.5;
    uint q = base + QK_IQ3XXS_QS + 8u * p;
    uint w0 = qk_rd32(q), w1 = qk_rd32(q + 4u);
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        uint two = (l < 2u ? w0 : w1) >> (16u * (l & 1u));
        uint g0 = qk_tab_u32(QK_TAB_iq3xxs_grid, two & 0xffu), g1 = qk_tab_u32(QK_TAB_iq3xxs_grid, (two >> 8) & 0xffu);
        qk_iqg_put8(v, 8u * l, db, g0, g1, qk_iqg_ksigns((aux >> (7u * l)) & 127u));
    }
}

#else /* IQ3_S */

void qk_dequant_part(uint base, uint p, out float v[32]) {
    float d = qk_rdh(base);
    uint sc = (qk_rd8(base + QK_IQ3S_SCALES + (p >> 1)) >> (4u * (p & 1u))) & 15u;
    float db = d * float(1u + 2u * sc);
    uint q = base + QK_IQ3S_QS + 8u * p;
    uint w0 = qk_rd32(q), w1 = qk_rd32(q + 4u);
    uint qh = qk_rd8(base + QK_IQ3S_QH + p);
    /* the chunk's 32 sign bits: element j of the chunk is bit j */
    uint signs = qk_rd32(base + QK_IQ3S_SIGNS + 4u * p);
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        uint two = (l < 2u ? w0 : w1) >> (16u * (l & 1u));
        uint i0 = (two & 0xffu) | (((qh >> (2u * l)) & 1u) << 8);
        uint i1 = ((two >> 8) & 0xffu) | (((qh >> (2u * l + 1u)) & 1u) << 8);
        qk_iqg_put8(v, 8u * l, db, qk_tab_u32(QK_TAB_iq3s_grid, i0), qk_tab_u32(QK_TAB_iq3s_grid, i1),
                    signs >> (8u * l));
    }
}

#endif

/* ---- the shared search (§6.10, §9.5) ----------------------------------------------------- */

/* The sub-block being encoded (qk_iqg_sub_block): working magnitudes, weights, sqrt(w) (the
 * weights of the neighbour choice), the chosen levels; n = QK_IQG_SUB of QK_QS_MAX. */
float qk_iqg_xval[QK_QS_MAX];
float qk_iqg_w[QK_QS_MAX];
float qk_iqg_waux[QK_QS_MAX];
int qk_iqg_L[QK_QS_MAX];
/* the levels being projected (Ltry of the trials, the refit's copy of L) and their flags */
int qk_iqg_Lp[QK_QS_MAX];
int qk_iqg_on_grid_p[QK_IQG_GROUPS];

#define QK_IQG_NB_RUN 8u

int qk_iqg_level_of(float id, float x) { return qk_clampi(qk_nearest_int(0.5 * (id * x - 1.0)), 0, QK_IQG_NMAX - 1); }

/* Snaps the levels qk_iqg_Lp[o..o+NC-1] to the grid (§9.5): a grid point stays; otherwise the
 * listed neighbour with the least sum waux*(scale*(2g+1) - xval)^2 (first on ties) replaces
 * them. Returns 1 if they were already on the grid. Each term is computed once per
 * (coordinate, level), and every neighbour's distance sums NC of them in coordinate order,
 * as the reference does. */
int qk_iqg_snap_group(uint o, float scale) {
    uint u = 0u;
    [[unroll]] for (uint k = 0u; k < uint(QK_IQG_NC); k++) u |= uint(qk_iqg_Lp[o + k]) << (uint(QK_IQG_BITS) * k);
    int m = qk_grid_map(QK_IQG_GRID, u);
    if (m >= 0) return 1;
    float term[QK_IQG_NC][QK_IQG_NMAX];
    [[unroll]] for (int k = 0; k < QK_IQG_NC; k++)
        [[unroll]] for (int l = 0; l < QK_IQG_NMAX; l++) {
            float diff = scale * float(2 * l + 1) - qk_iqg_xval[o + uint(k)];
            term[k][l] = qk_iqg_waux[o + uint(k)] * diff * diff;
        }
    /* the list: count, then `count` grid indices (qk_iq_grid_neighbours) */
    const uint nbs = qk_grid_field(QK_IQG_GRID, 7u), codes = qk_grid_field(QK_IQG_GRID, 5u);
    const uint nb = uint(-1 - m) + 1u, count = qk_tab_u16(nbs, nb - 1u);
    const uint mask = (1u << QK_IQG_BITS) - 1u;
    float best = 3.40282346638528859812e+38; /* FLT_MAX */
    uint best_code = qk_tab_u16(codes, qk_tab_u16(nbs, nb));
    /* in runs of QK_IQG_NB_RUN (unrolled), in list order: lavapipe ends every loop of a shader
     * invocation once their iterations add up to 65535, and these lists run to 292 entries */
    for (uint j0 = 0u; j0 < count; j0 += QK_IQG_NB_RUN) {
        [[unroll]] for (uint jj = 0u; jj < QK_IQG_NB_RUN; jj++) {
            if (j0 + jj < count) {
                uint code = qk_tab_u16(codes, qk_tab_u16(nbs, nb + j0 + jj));
                float d2 = 0.0;
                [[unroll]] for (uint k = 0u; k < uint(QK_IQG_NC); k++) d2 += term[k][(code >> (uint(QK_IQG_BITS) * k)) & mask];
                if (d2 < best) {
                    best = d2;
                    best_code = code;
                }
            }
        }
    }
    [[unroll]] for (uint k = 0u; k < uint(QK_IQG_NC); k++)
        qk_iqg_Lp[o + k] = int((best_code >> (uint(QK_IQG_BITS) * k)) & mask);
    return 0;
}

/* qk_iqg_project into qk_iqg_Lp / qk_iqg_on_grid_p: rounds every value to a level at 1/id and
 * snaps each group at `scale`; only groups with redo[k] set are touched. */
void qk_iqg_project(float id, float scale, in bool redo[QK_IQG_GROUPS]) {
    for (int k = 0; k < QK_IQG_GROUPS; k++) {
        if (!redo[k]) continue;
        uint o = uint(QK_IQG_NC * k);
        [[unroll]] for (uint i = 0u; i < uint(QK_IQG_NC); i++) qk_iqg_Lp[o + i] = qk_iqg_level_of(id, qk_iqg_xval[o + i]);
        qk_iqg_on_grid_p[k] = qk_iqg_snap_group(o, scale);
    }
}

/* Sum w*x*q and sum w*q^2 over qk_iqg_Lp with q = 2l+1, in element order. */
void qk_iqg_ls_sums(out float sumqx, out float sumq2) {
    float sx = 0.0, s2 = 0.0;
    [[unroll]] for (int i = 0; i < QK_IQG_SUB; i++) {
        float q = float(2 * qk_iqg_Lp[i] + 1);
        sx += qk_iqg_w[i] * qk_iqg_xval[i] * q;
        s2 += qk_iqg_w[i] * q * q;
    }
    sumqx = sx;
    sumq2 = s2;
}

/* The trial-scale search and final refit of one sub-block (qk_iqg_search_sub_block, §6.10):
 * leaves grid-point levels in qk_iqg_L and returns the scale, possibly negative. */
float qk_iqg_search_sub_block(float range, float scale) {
    int on_grid[QK_IQG_GROUPS];
    bool redo[QK_IQG_GROUPS];
    float best = 0.0;
    [[unroll]] for (int i = 0; i < QK_QS_MAX; i++) qk_iqg_L[i] = 0;
    [[unroll]] for (int k = 0; k < QK_IQG_GROUPS; k++) {
        on_grid[k] = QK_IQG_ON_GRID_INIT;
        redo[k] = true;
    }

    for (int is = -QK_IQG_NTRY; is <= QK_IQG_NTRY; is++) {
        float id = qk_div(float(2 * QK_IQG_NMAX - 1) + float(is) * QK_IQG_STEP, range);
        qk_iqg_project(id, qk_div(1.0, id), redo);
        float sumqx, sumq2;
        qk_iqg_ls_sums(sumqx, sumq2);
        if (sumq2 > 0.0 && sumqx * sumqx > best * sumq2) {
            scale = qk_div(sumqx, sumq2);
            best = scale * sumqx;
            [[unroll]] for (int i = 0; i < QK_IQG_SUB; i++) qk_iqg_L[i] = qk_iqg_Lp[i];
            [[unroll]] for (int k = 0; k < QK_IQG_GROUPS; k++) on_grid[k] = qk_iqg_on_grid_p[k];
        }
    }

    bool any = false;
    /* not [[unroll]]: glslc 2023.2 -O then crashes (spirv-opt's block merge pass) */
    for (int k = 0; k < QK_IQG_GROUPS; k++) {
        redo[k] = QK_IQG_REFIT != QK_IQG_REFIT_OFF_GRID || on_grid[k] == 0;
        any = any || on_grid[k] == 0;
    }
    /* 1/scale ahead of its test (the same value): glslc 2023.2 -O crashes on it inside */
    const float inv_scale = qk_div(1.0, scale);
    if (qk_lt(0.0, scale) && (QK_IQG_REFIT == QK_IQG_REFIT_ALL || any)) { /* a subnormal scale too */
        [[unroll]] for (int i = 0; i < QK_IQG_SUB; i++) qk_iqg_Lp[i] = qk_iqg_L[i];
        qk_iqg_project(inv_scale, scale, redo);
        [[unroll]] for (int i = 0; i < QK_IQG_SUB; i++) qk_iqg_L[i] = qk_iqg_Lp[i];
        float sumqx, sumq2;
        qk_iqg_ls_sums(sumqx, sumq2);
        if (sumq2 > 0.0) scale = qk_div(sumqx, sumq2);
    }
    return scale;
}

/* The grid index of group k's levels in qk_iqg_L (a grid point by construction). */
uint qk_iqg_group_index(int k) {
    uint u = 0u;
    [[unroll]] for (int i = 0; i < QK_IQG_NC; i++) u |= uint(qk_iqg_L[QK_IQG_NC * k + i]) << uint(QK_IQG_BITS * i);
    int m = qk_grid_map(QK_IQG_GRID, u);
    return m >= 0 ? uint(m) : 0u;
}

/* ---- shared per-block steps ------------------------------------------------------------- */

float qk_iqg_sum_squares(in float x[QK_BLOCK_ELEMS]) {
    float s = 0.0;
    [[unroll]] for (int i = 0; i < QK_BLOCK_ELEMS; i++) s += x[i] * x[i];
    return s;
}

/* What a quantizer weighs by when it has no imatrix (qk_iqg_no_imatrix). */
#define QK_IQG_W_SIGMA_UNIT 0
#define QK_IQG_W_X2 1
#define QK_IQG_W_QUARTER_SIGMA_X2 2
#if defined(QK_TYPE_IQ2_XXS) || defined(QK_TYPE_IQ2_XS)
#define QK_IQG_FALLBACK QK_IQG_W_SIGMA_UNIT
#elif defined(QK_TYPE_IQ2_S)
#define QK_IQG_FALLBACK QK_IQG_W_QUARTER_SIGMA_X2
#else
#define QK_IQG_FALLBACK QK_IQG_W_X2
#endif
/* 7 stored sign bits with the parity fix (IQ2_XXS, IQ2_XS, IQ3_XXS) or 8 explicit ones */
#if defined(QK_TYPE_IQ2_S) || defined(QK_TYPE_IQ3_S)
#define QK_IQG_SIGNS7 0
#define QK_IQG_SIGN_MASK 255u
#else
#define QK_IQG_SIGNS7 1
#define QK_IQG_SIGN_MASK 127u
#endif

/* qk_iqg_begin_sub_block: loads the SUB values at x[off..] with their weights (qw unless
 * has_qw is false), folds their signs into signs[0..SUB/8-1] and returns the largest
 * magnitude. */
float qk_iqg_begin_sub_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, int off,
                             float sigma2, out uint signs[4]) {
    /* qk_iqg_fill_weights */
    [[unroll]] for (int i = 0; i < QK_IQG_SUB; i++) {
        float xi = x[off + i];
        if (has_qw)
            qk_iqg_w[i] = qw[off + i] * qk_sqrt(sigma2 + xi * xi);
        else if (QK_IQG_FALLBACK == QK_IQG_W_SIGMA_UNIT)
            qk_iqg_w[i] = qk_sqrt(sigma2 + xi * xi);
        else if (QK_IQG_FALLBACK == QK_IQG_W_X2)
            qk_iqg_w[i] = xi * xi;
        else
            qk_iqg_w[i] = 0.25 * sigma2 + xi * xi;
    }
    [[unroll]] for (int i = 0; i < QK_IQG_SUB; i++) qk_iqg_waux[i] = qk_sqrt(qk_iqg_w[i]);

    [[unroll]] for (int g = 0; g < 4; g++) signs[g] = 0u;
    [[unroll]] for (int g = 0; g < QK_IQG_SUB / 8; g++) {
        /* qk_iqg_fold_signs8 */
        uint s = 0u;
        [[unroll]] for (int k = 0; k < 8; k++) {
            /* on the bits: a subnormal's sign and magnitude survive a driver that flushes them */
            float xk = x[off + 8 * g + k];
            if (!qk_lt(xk, 0.0)) {
                qk_iqg_xval[8 * g + k] = xk;
            } else {
                qk_iqg_xval[8 * g + k] = qk_absf(xk);
                s |= 1u << k;
            }
        }
#if QK_IQG_SIGNS7
        /* qk_iqg_fold_signs7: an odd count of negatives gives up the least important one */
        if ((bitCount(s) & 1) != 0) {
            int imin = 0;
            float x0 = x[off + 8 * g];
            float mn = qk_iqg_w[8 * g] * x0 * x0;
            [[unroll]] for (int k = 1; k < 8; k++) {
                float xk = x[off + 8 * g + k];
                float a = qk_iqg_w[8 * g + k] * xk * xk;
                if (a < mn) {
                    mn = a;
                    imin = k;
                }
            }
            qk_iqg_xval[8 * g + imin] = -qk_iqg_xval[8 * g + imin];
            s ^= 1u << imin;
        }
        s &= 127u;
#endif
        signs[g] = s;
    }

    /* qk_iqg_max_of */
    float m = qk_iqg_xval[0];
    [[unroll]] for (int i = 1; i < QK_IQG_SUB; i++) m = qk_lt(m, qk_iqg_xval[i]) ? qk_iqg_xval[i] : m;
    return m;
}

/* A negative least-squares scale (should not happen) becomes positive with every stored sign
 * flipped, so the decoded values stay the same. */
float qk_iqg_positive_scale(float scale, inout uint signs[4]) {
    if (scale >= 0.0) return scale;
    [[unroll]] for (int g = 0; g < QK_IQG_SUB / 8; g++) signs[g] = ~signs[g] & QK_IQG_SIGN_MASK;
    return -scale;
}

/* 4-bit sub-block scale code for scale s, id = 1/d. */
uint qk_iqg_scale_code(float id, float s) { return uint(qk_clampi(qk_nearest_int(0.5 * (id * s - 1.0)), 0, 15)); }

/* ---- encoders --------------------------------------------------------------------------- */

#if defined(QK_TYPE_IQ2_XXS)

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    uint q2[16];
    float scales[8];
    float max_scale = 0.0;
    const float sigma2 = qk_iqg_sum_squares(x) * 0.00390625; /* / QK_K, exact either way */
    [[unroll]] for (int i = 0; i < 16; i++) q2[i] = 0u;

    for (int c = 0; c < 8; c++) {
        uint signs[4];
        const float mx = qk_iqg_begin_sub_block(x, qw, has_qw, 32 * c, sigma2, signs);
        scales[c] = 0.0;
        if (mx < QKC_GROUP_MAX_EPS) continue;

        /* make_qp only estimates the range that the trials scan */
        int Lqp[QK_QS_MAX];
        const float qp_scale = qk_hd_make_qp(32, 4, qk_iqg_xval, Lqp, qk_iqg_w);
        const float eff_max = qp_scale * 3.0;
        if (!(eff_max > 0.0)) continue;
        const float scale = qk_iqg_positive_scale(qk_iqg_search_sub_block(eff_max, qp_scale), signs);
        [[unroll]] for (int k = 0; k < 4; k++) {
            q2[2 * c] |= qk_iqg_group_index(k) << (8 * k);
            q2[2 * c + 1] |= signs[k] << (7 * k);
        }
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    if (!(max_scale > 0.0)) return;
    const float d = qk_div(max_scale, 31.0);
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
    const float id = qk_div(1.0, d);
    [[unroll]] for (int c = 0; c < 8; c++) {
        q2[2 * c + 1] |= qk_iqg_scale_code(id, scales[c]) << 28;
        qk_blk_set32(blk, QK_IQ2XXS_QS + 8u * uint(c), q2[2 * c]);
        qk_blk_set32(blk, QK_IQ2XXS_QS + 8u * uint(c) + 4u, q2[2 * c + 1]);
    }
}

#elif defined(QK_TYPE_IQ2_XS)

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    uint q2[32];
    float scales[16];
    float max_scale = 0.0;
    const float sigma2 = qk_iqg_sum_squares(x) * 0.00390625;
    [[unroll]] for (int i = 0; i < 32; i++) q2[i] = 0u;

    for (int s = 0; s < 16; s++) {
        uint signs[4];
        const float mx = qk_iqg_begin_sub_block(x, qw, has_qw, 16 * s, sigma2, signs);
        scales[s] = 0.0;
        if (mx < QKC_GROUP_MAX_EPS) continue;

        const float scale = qk_iqg_positive_scale(qk_iqg_search_sub_block(mx, qk_div(mx, 5.0)), signs);
        [[unroll]] for (int k = 0; k < 2; k++) q2[2 * s + k] = qk_iqg_group_index(k) | (signs[k] << 9);
        scales[s] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    if (!(max_scale > 0.0)) return;
    const float d = qk_div(max_scale, 31.0);
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d));
    const float id = qk_div(1.0, d);
    [[unroll]] for (int e = 0; e < 32; e++) qk_blk_set16(blk, QK_IQ2XS_QS + 2u * uint(e), q2[e]);
    [[unroll]] for (int s = 0; s < 16; s++)
        qk_blk_or8(blk, QK_IQ2XS_SCALES + uint(s / 2), qk_iqg_scale_code(id, scales[s]) << (4 * (s % 2)));
}

#elif defined(QK_TYPE_IQ2_S)

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float scales[16];
    float max_scale = 0.0;
    const float sigma2 = 2.0 * qk_iqg_sum_squares(x) * 0.00390625;

    for (int s = 0; s < 16; s++) {
        uint signs[4];
        const float mx = qk_iqg_begin_sub_block(x, qw, has_qw, 16 * s, sigma2, signs);
        scales[s] = 0.0;
        if (mx < QKC_GROUP_MAX_EPS_IQ2_S) continue;

        const float scale = qk_iqg_positive_scale(qk_iqg_search_sub_block(mx, qk_div(mx, 5.0)), signs);
        [[unroll]] for (int k = 0; k < 2; k++) {
            const uint e = uint(2 * s + k), idx = qk_iqg_group_index(k);
            qk_blk_set8(blk, QK_IQ2S_QS + e, idx);
            qk_blk_or8(blk, QK_IQ2S_QH + e / 4u, (idx >> 8) << (2u * (e % 4u)));
            qk_blk_set8(blk, QK_IQ2S_SIGNS + e, signs[k]);
        }
        scales[s] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    /* bytes written above stay, as the reference writes them before this test */
    if (!(max_scale > 0.0)) return;
    /* the stored scale carries ggml's fudge factor; the 4-bit codes use the plain one */
    const float d = qk_div(max_scale, 31.0);
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d * QKC_IQ2_S_STORED_SCALE_FACTOR));
    const float id = qk_div(1.0, d);
    [[unroll]] for (int s = 0; s < 16; s++)
        qk_blk_or8(blk, QK_IQ2S_SCALES + uint(s / 2), qk_iqg_scale_code(id, scales[s]) << (4 * (s % 2)));
}

#elif defined(QK_TYPE_IQ3_XXS)

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    uint q3[64];
    uint ss[8];
    float scales[8];
    float max_scale = 0.0;
    const float sigma2 = 2.0 * qk_iqg_sum_squares(x) * 0.00390625;
    [[unroll]] for (int i = 0; i < 64; i++) q3[i] = 0u;
    [[unroll]] for (int c = 0; c < 8; c++) ss[c] = 0u;

    for (int c = 0; c < 8; c++) {
        uint signs[4];
        const float mx = qk_iqg_begin_sub_block(x, qw, has_qw, 32 * c, sigma2, signs);
        scales[c] = 0.0;
        if (mx < QKC_GROUP_MAX_EPS_IQ3_XXS) continue;

        const float scale = qk_iqg_positive_scale(qk_iqg_search_sub_block(mx, qk_div(mx, 15.0)), signs);
        [[unroll]] for (int k = 0; k < 8; k++) q3[8 * c + k] = qk_iqg_group_index(k);
        ss[c] = signs[0] | (signs[1] << 7) | (signs[2] << 14) | (signs[3] << 21);
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    if (!(max_scale > 0.0)) return;
    const float d = qk_div(max_scale, 31.0);
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d * QKC_IQ3_XXS_STORED_SCALE_FACTOR));
    const float id = qk_div(1.0, d);
    [[unroll]] for (int i = 0; i < 64; i++) qk_blk_set8(blk, QK_IQ3XXS_QS + uint(i), q3[i]);
    [[unroll]] for (int c = 0; c < 8; c++)
        qk_blk_set32(blk, QK_IQ3XXS_SS + 4u * uint(c), ss[c] | (qk_iqg_scale_code(id, scales[c]) << 28));
}

#else /* IQ3_S */

/* Unlike ggml (§6.10 "ggml bug"), an all-zero chunk keeps its own qs/signs slots (left zero),
 * so the chunks after it stay where the decoder looks for them. */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    float scales[8];
    float max_scale = 0.0;
    const float sigma2 = 2.0 * qk_iqg_sum_squares(x) * 0.00390625;

    for (int c = 0; c < 8; c++) {
        uint signs[4];
        const float mx = qk_iqg_begin_sub_block(x, qw, has_qw, 32 * c, sigma2, signs);
        scales[c] = 0.0;
        if (qk_eq(mx, 0.0)) continue; /* a subnormal mx goes on, as in the reference */

        const float scale = qk_iqg_positive_scale(qk_iqg_search_sub_block(mx, qk_div(mx, 15.0)), signs);
        [[unroll]] for (int k = 0; k < 8; k++) {
            const uint q = uint(8 * c + k), idx = qk_iqg_group_index(k);
            qk_blk_set8(blk, QK_IQ3S_QS + q, idx);
            qk_blk_or8(blk, QK_IQ3S_QH + q / 8u, (idx >> 8) << (q % 8u));
        }
        [[unroll]] for (int k = 0; k < 4; k++) qk_blk_set8(blk, QK_IQ3S_SIGNS + uint(4 * c + k), signs[k]);
        scales[c] = scale;
        max_scale = max_scale > scale ? max_scale : scale;
    }

    /* bytes written above stay, as the reference writes them before this test */
    if (!(max_scale > 0.0)) return;
    const float d = qk_div(max_scale, 31.0);
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d * QKC_IQ3_S_STORED_SCALE_FACTOR));
    const float id = qk_div(1.0, d);
    [[unroll]] for (int c = 0; c < 8; c++)
        qk_blk_or8(blk, QK_IQ3S_SCALES + uint(c / 2), qk_iqg_scale_code(id, scales[c]) << (4 * (c % 2)));
}

#endif

#endif
