/* The scale searches of FORMATS.md §9: a GLSL port of kernels/cpu/quant_search_block.h,
 * statement for statement (same sums in the same order, same products left to right, qk_div
 * for every division), so an encoder shader that calls these writes the CPU reference's bytes.
 * Include it from a family file after common.glsl; it may be included several times.
 *
 * Interface (GLSL has no pointers):
 * - Every array is a fixed QK_QS_MAX (32) elements, used at indices 0..n-1 (n <= 32: every
 *   C caller passes 8, 16 or 32). A caller working on `x + 16*j` copies those n values into a
 *   local float[QK_QS_MAX] first, and copies the codes back out afterwards.
 * - Codes are int arrays for both the C int8_t and uint8_t arrays (every value fits).
 *   L (and Laux, l_out) are `inout`: entries n..31 keep what the caller had there.
 * - A C `w` that may be NULL becomes `w` plus `bool has_w` right after it (false = NULL,
 *   meaning x^2; w is then not read, pass any array).
 * - Scalars the C writes through pointers (amax_out, sxl, sll, the_min) are `out float`
 *   parameters in the same position; the return value is the C return value.
 * - int flags (use_mad, strict_degenerate) stay int as in C, so calls port unchanged. */
#ifndef QK_QUANT_SEARCH_GLSL
#define QK_QUANT_SEARCH_GLSL

#define QK_QS_MAX 32

/* Codes of §9.1 for one inverse scale and their weighted sums; has_w false means x^2. */
void qk_qx_codes(int n, int nmax, float iscale, in float x[QK_QS_MAX], in float w[QK_QS_MAX], bool has_w,
                 inout int l_out[QK_QS_MAX], out float sxl, out float sll) {
    float sumlx = 0.0, suml2 = 0.0;
    for (int i = 0; i < n; i++) {
        int l = qk_clampi(qk_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        float wi = has_w ? w[i] : x[i] * x[i];
        l_out[i] = l;
        sumlx += wi * x[i] * float(l);
        suml2 += wi * float(l) * float(l);
    }
    sxl = sumlx;
    sll = suml2;
}

float qk_abs_max_signed(int n, in float x[QK_QS_MAX], out float amax_out) {
    float amax = 0.0, mx = 0.0;
    for (int i = 0; i < n; i++) {
        float ax = abs(x[i]);
        if (ax > amax) {
            amax = ax;
            mx = x[i];
        }
    }
    amax_out = amax;
    return mx;
}

float qk_hd_make_qx(int n, int nmax, in float x[QK_QS_MAX], inout int L[QK_QS_MAX], in float w[QK_QS_MAX], bool has_w) {
    float amax;
    const float mx = qk_abs_max_signed(n, x, amax);
    if (amax < QKC_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0;
    }
    int cand[QK_QS_MAX];
    float sumlx, suml2;
    qk_qx_codes(n, nmax, qk_div(float(-nmax), mx), x, w, has_w, L, sumlx, suml2);
    float scale = suml2 != 0.0 ? qk_div(sumlx, suml2) : 0.0;
    float best = scale * sumlx;
    for (int t = -9; t <= 9; t++) {
        if (t == 0) continue;
        float iscale = qk_div(-(float(nmax) + 0.1 * float(t)), mx);
        qk_qx_codes(n, nmax, iscale, x, w, has_w, cand, sumlx, suml2);
        if (suml2 > 0.0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = cand[i];
            scale = qk_div(sumlx, suml2);
            best = scale * sumlx;
        }
    }
    for (int i = 0; i < n; i++) L[i] = L[i] + nmax; /* in [0, 2*nmax-1]: no int8_t wrap for nmax <= 64 */
    return scale;
}

float qk_hd_make_q3(int n, int nmax, in float x[QK_QS_MAX], inout int L[QK_QS_MAX]) {
    float amax;
    const float mx = qk_abs_max_signed(n, x, amax);
    if (amax < QKC_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0;
    }
    float sumlx, suml2;
    qk_qx_codes(n, nmax, qk_div(float(-nmax), mx), x, x, false, L, sumlx, suml2);
    for (int round = 0; round < 5; round++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float wi = x[i] * x[i];
            float li = float(L[i]);
            float slx = sumlx - wi * x[i] * li;
            if (slx > 0.0) {
                float sl2 = suml2 - wi * li * li;
                int nl = qk_clampi(qk_nearest_int(qk_div(x[i] * sl2, slx)), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += wi * x[i] * float(nl);
                    sl2 += wi * float(nl) * float(nl);
                    if (sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (changed == 0) break;
    }
    for (int i = 0; i < n; i++) L[i] = L[i] + nmax;
    return suml2 != 0.0 ? qk_div(sumlx, suml2) : 0.0;
}

/* §9.3, both variants. has_w false means x^2 (only make_qkx3 allows it); strict_degenerate
 * selects qkx2's `max == min` test instead of qkx3's `max <= min`. The offset -min comes back
 * in the_min. */
float qk_qkx_search(int n, int nmax, in float x[QK_QS_MAX], in float w[QK_QS_MAX], bool has_w, inout int L[QK_QS_MAX],
                    out float the_min, inout int Laux[QK_QS_MAX], float rmin, float rdelta, int nstep, int use_mad,
                    int strict_degenerate) {
    float mn = x[0], mx = x[0];
    float sum_w = has_w ? w[0] : x[0] * x[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        float wi = has_w ? w[i] : x[i] * x[i];
        sum_w += wi;
        sum_x += wi * x[i];
    }
    if (mn > 0.0) mn = 0.0;
    if (strict_degenerate != 0 ? mx == mn : mx <= mn) {
        for (int i = 0; i < n; i++) L[i] = 0;
        the_min = -mn;
        return 0.0;
    }
    float iscale = qk_div(float(nmax), mx - mn);
    float scale = qk_div(1.0, iscale);
    float best = 0.0;
    for (int i = 0; i < n; i++) {
        int l = qk_clampi(qk_nearest_int(iscale * (x[i] - mn)), 0, nmax);
        L[i] = l;
        float diff = scale * float(l) + mn - x[i];
        diff = use_mad != 0 ? abs(diff) : diff * diff;
        float wi = has_w ? w[i] : x[i] * x[i];
        best += wi * diff;
    }
    for (int i = 0; i < n; i++) Laux[i] = L[i];
    if (nstep < 1) {
        the_min = -mn;
        return scale;
    }
    for (int t = 0; t <= nstep; t++) {
        iscale = qk_div(rmin + rdelta * float(t) + float(nmax), mx - mn);
        /* a repeat of the previous candidate's codes can never be strictly better: skip it */
        bool same = true;
        for (int i = 0; i < n; i++) {
            int l = qk_clampi(qk_nearest_int(iscale * (x[i] - mn)), 0, nmax);
            same = same && Laux[i] == l;
            Laux[i] = l;
        }
        if (same && t > 0) continue;
        float sum_l = 0.0, sum_l2 = 0.0, sum_xl = 0.0;
        for (int i = 0; i < n; i++) {
            float l = float(Laux[i]);
            float wi = has_w ? w[i] : x[i] * x[i];
            sum_l += wi * l;
            sum_l2 += wi * l * l;
            sum_xl += wi * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0) {
            float this_scale = qk_div(sum_w * sum_xl - sum_x * sum_l, D);
            float this_min = qk_div(sum_l2 * sum_x - sum_l * sum_xl, D);
            if (this_min > 0.0) {
                this_min = 0.0;
                this_scale = qk_div(sum_xl, sum_l2);
            }
            float err = 0.0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * float(Laux[i]) + this_min - x[i];
                diff = use_mad != 0 ? abs(diff) : diff * diff;
                float wi = has_w ? w[i] : x[i] * x[i];
                err += wi * diff;
            }
            if (err < best) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    the_min = -mn;
    return scale;
}

float qk_hd_make_qkx2(int n, int nmax, in float x[QK_QS_MAX], in float w[QK_QS_MAX], bool has_w, inout int L[QK_QS_MAX],
                      out float the_min, inout int Laux[QK_QS_MAX], float rmin, float rdelta, int nstep, int use_mad) {
    return qk_qkx_search(n, nmax, x, w, has_w, L, the_min, Laux, rmin, rdelta, nstep, use_mad, 1);
}

float qk_hd_make_qkx3(int n, int nmax, in float x[QK_QS_MAX], in float w[QK_QS_MAX], bool has_w, inout int L[QK_QS_MAX],
                      out float the_min, inout int Laux[QK_QS_MAX], float rmin, float rdelta, int nstep, int use_mad) {
    return qk_qkx_search(n, nmax, x, w, has_w, L, the_min, Laux, rmin, rdelta, nstep, use_mad, 0);
}

/* Codes of §9.4 for one inverse scale: non-negative, at most nmax. */
int qk_qp_code(float iscale, float v, int nmax) { return qk_clampi(qk_nearest_int(iscale * v), 0, nmax); }

/* w is always given (no NULL case in C). */
float qk_hd_make_qp(int n, int nmax, in float x[QK_QS_MAX], inout int L[QK_QS_MAX], in float w[QK_QS_MAX]) {
    float mx = 0.0;
    for (int i = 0; i < n; i++) mx = max(mx, x[i]); /* fmaxf; finite input */
    if (mx < QKC_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0;
    }
    float iscale = qk_div(float(nmax), mx);
    float scale = qk_div(1.0, iscale);
    float best = 0.0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * float(qk_qp_code(iscale, x[i], nmax));
        best += w[i] * diff * diff;
    }
    for (int t = -4; t <= 4; t++) {
        if (t == 0) continue;
        float iscale_t = qk_div(0.1 * float(t) + float(nmax), mx);
        float scale_t = qk_div(1.0, iscale_t);
        float err = 0.0;
        for (int i = 0; i < n; i++) {
            float diff = x[i] - scale_t * float(qk_qp_code(iscale_t, x[i], nmax));
            err += w[i] * diff * diff;
        }
        if (err < best) {
            best = err;
            iscale = iscale_t;
        }
    }
    float sumlx = 0.0, suml2 = 0.0;
    for (int i = 0; i < n; i++) {
        int l = qk_qp_code(iscale, x[i], nmax);
        L[i] = l;
        sumlx += w[i] * x[i] * float(l);
        suml2 += w[i] * float(l) * float(l);
    }
    for (int round = 0; round < 5; round++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float li = float(L[i]);
            float slx = sumlx - w[i] * x[i] * li;
            float sl2 = suml2 - w[i] * li * li;
            if (slx > 0.0 && sl2 > 0.0) {
                int nl = qk_clampi(qk_nearest_int(qk_div(x[i] * sl2, slx)), 0, nmax);
                if (nl != L[i]) {
                    slx += w[i] * x[i] * float(nl);
                    sl2 += w[i] * float(nl) * float(nl);
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (changed == 0) break;
    }
    return suml2 != 0.0 ? qk_div(sumlx, suml2) : 0.0;
}

#endif
