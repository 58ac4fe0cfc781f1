/* The scale searches of FORMATS.md §9 as QK_HD code, in the reference operation order;
 * the block encoders of every family inline them (CPU and CUDA alike).
 *
 * Every sum runs in element order in fp32, every product is written left to right as the
 * format reference states it (w*x*l means (w*x)*l), and nothing is fused, so a GPU thread
 * running the same statements reproduces these bytes. No state outlives a call: the IQ
 * encoders call these from several threads at once. n <= 256 everywhere. */
#ifndef QK_QUANT_SEARCH_BLOCK_H
#define QK_QUANT_SEARCH_BLOCK_H

#include "qk_float.h"

/* Codes of §9.1 for one inverse scale and their weighted sums; w NULL means x^2. */
static inline QK_HD void qk_qx_codes(int n, int nmax, float iscale, const float *x, const float *w, int8_t *l_out,
                                     float *sxl, float *sll) {
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = qk_clampi(qk_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        float wi = w ? w[i] : x[i] * x[i];
        l_out[i] = (int8_t)l;
        sumlx += wi * x[i] * (float)l;
        suml2 += wi * (float)l * (float)l;
    }
    *sxl = sumlx;
    *sll = suml2;
}

static inline QK_HD float qk_abs_max_signed(int n, const float *x, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

static inline QK_HD float qk_hd_make_qx(int n, int nmax, const float *x, int8_t *L, const float *w) {
    float amax;
    const float max = qk_abs_max_signed(n, x, &amax);
    if (amax < QKC_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    int8_t cand[256];
    float sumlx, suml2;
    qk_qx_codes(n, nmax, (float)-nmax / max, x, w, L, &sumlx, &suml2);
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int t = -9; t <= 9; t++) {
        if (t == 0) continue;
        float iscale = -((float)nmax + 0.1f * (float)t) / max;
        qk_qx_codes(n, nmax, iscale, x, w, cand, &sumlx, &suml2);
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = cand[i];
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return scale;
}

static inline QK_HD float qk_hd_make_q3(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = qk_abs_max_signed(n, x, &amax);
    if (amax < QKC_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float sumlx, suml2;
    qk_qx_codes(n, nmax, (float)-nmax / max, x, NULL, L, &sumlx, &suml2);
    for (int round = 0; round < 5; round++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float wi = x[i] * x[i];
            float li = (float)L[i];
            float slx = sumlx - wi * x[i] * li;
            if (slx > 0.0f) {
                float sl2 = suml2 - wi * li * li;
                int nl = qk_clampi(qk_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += wi * x[i] * (float)nl;
                    sl2 += wi * (float)nl * (float)nl;
                    if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 != 0.0f ? sumlx / suml2 : 0.0f;
}

/* §9.3, both variants. `w` NULL means x^2 (only make_qkx3 allows it); `strict_degenerate`
 * selects qkx2's `max == min` test instead of qkx3's `max <= min` (they agree on finite
 * input, but the reference spells them differently). */
static inline QK_HD float qk_qkx_search(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                                        uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad,
                                        int strict_degenerate) {
    float min = x[0], max = x[0];
    float sum_w = w ? w[0] : x[0] * x[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float wi = w ? w[i] : x[i] * x[i];
        sum_w += wi;
        sum_x += wi * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (strict_degenerate ? max == min : max <= min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = qk_clampi(qk_nearest_int(iscale * (x[i] - min)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * (float)l + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        float wi = w ? w[i] : x[i] * x[i];
        best += wi * diff;
    }
    for (int i = 0; i < n; i++) Laux[i] = L[i]; /* defined contents for the repeat test */
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int t = 0; t <= nstep; t++) {
        iscale = (rmin + rdelta * (float)t + (float)nmax) / (max - min);
        /* Everything below depends on the codes alone, and a repeat of the previous
         * candidate's codes can never be strictly better than it was: skip it. */
        int same = 1;
        for (int i = 0; i < n; i++) {
            uint8_t l = (uint8_t)qk_clampi(qk_nearest_int(iscale * (x[i] - min)), 0, nmax);
            same &= Laux[i] == l;
            Laux[i] = l;
        }
        if (same && t > 0) continue;
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            float l = (float)Laux[i];
            float wi = w ? w[i] : x[i] * x[i];
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                float wi = w ? w[i] : x[i] * x[i];
                err += wi * diff;
            }
            if (err < best) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static inline QK_HD float qk_hd_make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                                          uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    return qk_qkx_search(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad, 1);
}

static inline QK_HD float qk_hd_make_qkx3(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                                          uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    return qk_qkx_search(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad, 0);
}

/* Codes of §9.4 for one inverse scale: non-negative, at most nmax. */
static inline QK_HD int qk_qp_code(float iscale, float v, int nmax) {
    return qk_clampi(qk_nearest_int(iscale * v), 0, nmax);
}

static inline QK_HD float qk_hd_make_qp(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float max = 0.0f;
    for (int i = 0; i < n; i++) max = fmaxf(max, x[i]);
    if (max < QKC_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = (float)nmax / max;
    float scale = 1.0f / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * (float)qk_qp_code(iscale, x[i], nmax);
        best += w[i] * diff * diff;
    }
    for (int t = -4; t <= 4; t++) {
        if (t == 0) continue;
        float iscale_t = (0.1f * (float)t + (float)nmax) / max;
        float scale_t = 1.0f / iscale_t;
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float diff = x[i] - scale_t * (float)qk_qp_code(iscale_t, x[i], nmax);
            err += w[i] * diff * diff;
        }
        if (err < best) {
            best = err;
            iscale = iscale_t;
        }
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = qk_qp_code(iscale, x[i], nmax);
        L[i] = (uint8_t)l;
        sumlx += w[i] * x[i] * (float)l;
        suml2 += w[i] * (float)l * (float)l;
    }
    for (int round = 0; round < 5; round++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float li = (float)L[i];
            float slx = sumlx - w[i] * x[i] * li;
            float sl2 = suml2 - w[i] * li * li;
            if (slx > 0.0f && sl2 > 0.0f) {
                int nl = qk_clampi(qk_nearest_int(x[i] * sl2 / slx), 0, nmax);
                if (nl != L[i]) {
                    slx += w[i] * x[i] * (float)nl;
                    sl2 += w[i] * (float)nl * (float)nl;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 != 0.0f ? sumlx / suml2 : 0.0f;
}

#endif
