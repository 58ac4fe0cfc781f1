/* The body of §9.3's min/scale search (kernels/cpu/quant_search_block.h), included by
 * quant_search.glsl once per kind of arithmetic: QKX_FN names the function, and QKX_MUL, QKX_ADD,
 * QKX_SUB, QKX_ABS, QKX_NEG, QKX_LT, QKX_LE and QKX_EQ are the float operations, either the plain ones
 * or common.glsl's subnormal-keeping ones. Every product, sum and compare of the C code is one
 * of them, in the C code's order. No include guard: it is meant to be included more than once,
 * and it undefines those parameters at its end, ready for the next. */

float QKX_FN(int n, int nmax, in float x[QK_QS_MAX], in float w[QK_QS_MAX], bool has_w, inout int L[QK_QS_MAX],
             out float the_min, inout int Laux[QK_QS_MAX], float rmin, float rdelta, int nstep, int use_mad,
             int strict_degenerate) {
    float mn = x[0], mx = x[0];
    float sum_w = has_w ? w[0] : QKX_MUL(x[0], x[0]);
    float sum_x = QKX_MUL(sum_w, x[0]);
    for (int i = 1; i < n; i++) {
        if (QKX_LT(x[i], mn)) mn = x[i];
        if (QKX_LT(mx, x[i])) mx = x[i];
        float wi = has_w ? w[i] : QKX_MUL(x[i], x[i]);
        sum_w = QKX_ADD(sum_w, wi);
        sum_x = QKX_ADD(sum_x, QKX_MUL(wi, x[i]));
    }
    if (QKX_LT(0.0, mn)) mn = 0.0;
    if (strict_degenerate != 0 ? QKX_EQ(mx, mn) : QKX_LE(mx, mn)) {
        for (int i = 0; i < n; i++) L[i] = 0;
        the_min = QKX_NEG(mn);
        return 0.0;
    }
    float iscale = qk_div(float(nmax), QKX_SUB(mx, mn));
    float scale = qk_div(1.0, iscale);
    float best = 0.0;
    for (int i = 0; i < n; i++) {
        int l = qk_clampi(qk_nearest_int(QKX_MUL(iscale, QKX_SUB(x[i], mn))), 0, nmax);
        L[i] = l;
        float diff = QKX_SUB(QKX_ADD(QKX_MUL(scale, float(l)), mn), x[i]);
        diff = use_mad != 0 ? QKX_ABS(diff) : QKX_MUL(diff, diff);
        float wi = has_w ? w[i] : QKX_MUL(x[i], x[i]);
        best = QKX_ADD(best, QKX_MUL(wi, diff));
    }
    for (int i = 0; i < n; i++) Laux[i] = L[i];
    if (nstep < 1) {
        the_min = QKX_NEG(mn);
        return scale;
    }
    for (int t = 0; t <= nstep; t++) {
        iscale = qk_div(QKX_ADD(QKX_ADD(rmin, QKX_MUL(rdelta, float(t))), float(nmax)), QKX_SUB(mx, mn));
        /* a repeat of the previous candidate's codes can never be strictly better: skip it */
        bool same = true;
        for (int i = 0; i < n; i++) {
            int l = qk_clampi(qk_nearest_int(QKX_MUL(iscale, QKX_SUB(x[i], mn))), 0, nmax);
            same = same && Laux[i] == l;
            Laux[i] = l;
        }
        if (same && t > 0) continue;
        float sum_l = 0.0, sum_l2 = 0.0, sum_xl = 0.0;
        for (int i = 0; i < n; i++) {
            float l = float(Laux[i]);
            float wi = has_w ? w[i] : QKX_MUL(x[i], x[i]);
            sum_l = QKX_ADD(sum_l, QKX_MUL(wi, l));
            sum_l2 = QKX_ADD(sum_l2, QKX_MUL(QKX_MUL(wi, l), l));
            sum_xl = QKX_ADD(sum_xl, QKX_MUL(QKX_MUL(wi, l), x[i]));
        }
        float D = QKX_SUB(QKX_MUL(sum_w, sum_l2), QKX_MUL(sum_l, sum_l));
        if (QKX_LT(0.0, D)) {
            float this_scale = qk_div(QKX_SUB(QKX_MUL(sum_w, sum_xl), QKX_MUL(sum_x, sum_l)), D);
            float this_min = qk_div(QKX_SUB(QKX_MUL(sum_l2, sum_x), QKX_MUL(sum_l, sum_xl)), D);
            if (QKX_LT(0.0, this_min)) {
                this_min = 0.0;
                this_scale = qk_div(sum_xl, sum_l2);
            }
            float err = 0.0;
            for (int i = 0; i < n; i++) {
                float diff = QKX_SUB(QKX_ADD(QKX_MUL(this_scale, float(Laux[i])), this_min), x[i]);
                diff = use_mad != 0 ? QKX_ABS(diff) : QKX_MUL(diff, diff);
                float wi = has_w ? w[i] : QKX_MUL(x[i], x[i]);
                err = QKX_ADD(err, QKX_MUL(wi, diff));
            }
            if (QKX_LT(err, best)) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    the_min = QKX_NEG(mn);
    return scale;
}

#undef QKX_FN
#undef QKX_MUL
#undef QKX_ADD
#undef QKX_SUB
#undef QKX_ABS
#undef QKX_NEG
#undef QKX_LT
#undef QKX_LE
#undef QKX_EQ
