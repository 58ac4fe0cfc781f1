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
/* qk_qkx_search: §9.3 in plain float arithmetic */
#define QKX_FN         qk_qkx_search
#define QKX_MUL(a, b)  ((a) * (b))
#define QKX_ADD(a, b)  ((a) + (b))
#define QKX_SUB(a, b)  ((a) - (b))
#define QKX_ABS(a)     abs(a)
#define QKX_NEG(a)     (-(a))
#define QKX_LT(a, b)   ((a) < (b))
#define QKX_LE(a, b)   ((a) <= (b))
#define QKX_EQ(a, b)   ((a) == (b))
#include "qkx_search_body.glsl"

#ifdef QK_QKX_SEARCH_EXACT
/* qk_qkx_search_exact: the same in common.glsl's subnormal-keeping arithmetic, for blocks whose
 * values are so small that the plain one's intermediates can be subnormal (legacy.glsl) */
#define QKX_FN         qk_qkx_search_exact
#define QKX_MUL(a, b)  qk_mul(a, b)
#define QKX_ADD(a, b)  qk_add(a, b)
#define QKX_SUB(a, b)  qk_sub(a, b)
#define QKX_ABS(a)     qk_absf(a)
#define QKX_NEG(a)     uintBitsToFloat(floatBitsToUint(a) ^ 0x80000000u)
#define QKX_LT(a, b)   qk_lt(a, b)
#define QKX_LE(a, b)   qk_le(a, b)
#define QKX_EQ(a, b)   qk_eq(a, b)
#include "qkx_search_body.glsl"
#endif

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
