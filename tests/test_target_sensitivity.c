/* A size target's per-tensor sensitivity (target_sensitivity.h): the factor predicts how much of
 * a tensor's output error reaches the residual stream. Checked against a Monte Carlo on synthetic
 * blocks (the seed is printed; QK_TEST_SEED replays one):
 * - a SwiGLU FFN (d 64, n_ff 128, rows and input channels of random scales, inputs with a mean
 *   offset): the imatrix statistics from 20000 sampled inputs, then a small random error of W_up
 *   (W_gate) whose rows scale like the weights; the residual's mean squared error over fresh
 *   inputs, ||W_down (silu(g) * (E x))||^2 (for the gate up * silu'(g) * (E x), first order),
 *   against the factor times the error the matrix holds for E, sum over rows of E[(E_r . x)^2];
 * - grouped-query attention (4 query heads on 2 kv heads, head size 16, 16 tokens, random
 *   attention weights): an error of W_v through the average and W_o, the same way.
 * The tolerances come from the measured spread (check_ratios says how): the up and v predictions
 * are exact up to the independence of the inputs' columns and of an error from its multiplier,
 * the gate's rests on E[silu'(g)^2] ~ E[silu(g)^2] / E[g^2] as well. Then the
 * rules that need no Monte Carlo: the fallbacks to 1 and their reasons, the token embedding's
 * 1 / rows, experts summed (an expert never routed left out), a fused attn_qkv's v rows, and a
 * read failure passed on. */
#include "target_sensitivity.h"
#include "test_util.h"

static tu_rng rng;

static float *gauss_array(size_t n) {
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = tu_gauss(&rng);
    return a;
}

static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)tu_u01(&rng); }

/* rows x cols weights, row r scaled by a random factor in [0.5, 2] / sqrt(cols); the scales into
 * row_scale when not NULL. */
static float *weights(int64_t rows, int64_t cols, float *row_scale) {
    float *w = gauss_array((size_t)(rows * cols));
    for (int64_t r = 0; r < rows; r++) {
        const float s = uniform(0.5f, 2.0f) / sqrtf((float)cols);
        if (row_scale) row_scale[r] = s;
        for (int64_t i = 0; i < cols; i++) w[r * cols + i] *= s;
    }
    return w;
}

/* An error of relative size 1e-2 whose rows scale like the weights'. */
static float *error_like(int64_t rows, int64_t cols, const float *row_scale) {
    float *e = gauss_array((size_t)(rows * cols));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < cols; i++) e[r * cols + i] *= 1e-2f * row_scale[r];
    return e;
}

static void matvec(const float *W, int64_t rows, int64_t cols, const float *x, double *y) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (int64_t i = 0; i < cols; i++) s += (double)W[r * cols + i] * x[i];
        y[r] = s;
    }
}

static double silu(double g) { return g / (1.0 + exp(-g)); }
static double silu_grad(double g) {
    const double s = 1.0 / (1.0 + exp(-g));
    return s * (1.0 + g * (1.0 - s));
}

/* Inputs: channel i is mean[i] + scale[i] * N(0, 1). */
typedef struct source {
    int64_t d;
    float *mean, *scale;
} source;

static source new_source(int64_t d) {
    source s = {d, malloc((size_t)d * sizeof(float)), malloc((size_t)d * sizeof(float))};
    for (int64_t i = 0; i < d; i++) {
        s.scale[i] = uniform(0.3f, 3.0f);
        s.mean[i] = 0.5f * tu_gauss(&rng);
    }
    return s;
}

static void draw(const source *s, float *x) {
    for (int64_t i = 0; i < s->d; i++) x[i] = s->mean[i] + s->scale[i] * tu_gauss(&rng);
}

/* Running imatrix statistics of one input: mean square and mean per column. */
typedef struct stats {
    int64_t n;
    double *sum2, *sum;
    float *w, *a;
    long count;
} stats;

static stats new_stats(int64_t n) {
    stats s = {n,
               calloc((size_t)n, sizeof(double)),
               calloc((size_t)n, sizeof(double)),
               malloc((size_t)n * sizeof(float)),
               malloc((size_t)n * sizeof(float)),
               0};
    return s;
}

static void add_stats(stats *s, const double *v) {
    for (int64_t i = 0; i < s->n; i++) {
        s->sum2[i] += v[i] * v[i];
        s->sum[i] += v[i];
    }
    s->count++;
}

static void close_stats(stats *s) {
    for (int64_t i = 0; i < s->n; i++) {
        s->w[i] = (float)(s->sum2[i] / (double)s->count);
        s->a[i] = (float)(s->sum[i] / (double)s->count);
    }
}

static void free_stats(stats *s) {
    free(s->sum2);
    free(s->sum);
    free(s->w);
    free(s->a);
}

/* Tensors in memory for qk_target_sensitivities: data[i] holds tensor i's rows. */
typedef struct memory_model {
    const qk_sens_tensor *t;
    const float *const *data;
    int fail_at; /* reading this tensor fails (-1: none) */
} memory_model;

static qk_status read_memory(void *user, size_t i, int64_t row, int64_t n_rows, float *out) {
    const memory_model *m = user;
    if ((int)i == m->fail_at) return QK_ERR_IO;
    memcpy(out, m->data[i] + row * m->t[i].ne[0], (size_t)(n_rows * m->t[i].ne[0]) * sizeof *out);
    return QK_OK;
}

/* The factors of all n tensors, sens and why poisoned first; chunks of 1000 floats, so that
 * tensors are read in several. */
static qk_status factors(const qk_sens_tensor *t, size_t n, const float *const *data, int64_t n_head, int64_t n_head_kv,
                         double *sens, const char **why, int fail_at) {
    unsigned char want[16];
    for (size_t i = 0; i < n; i++) {
        want[i] = 1;
        sens[i] = NAN;
        why[i] = "poison";
    }
    memory_model m = {t, data, fail_at};
    return qk_target_sensitivities(t, n, want, n_head, n_head_kv, read_memory, &m, 1000, sens, why);
}

enum { D = 64, FF = 128, N_STATS = 20000, N_MC = 10000, DRAWS = 8 };

/* Measured / predicted over the error draws: their mean within [mean_lo, mean_hi], each within
 * [lo, hi]. The bands, from 41 seeds of 8 draws each (QK_TEST_SEED 6, 11 to 50): means 0.88 to
 * 1.07 (up), 0.89 to 1.15 (gate), 0.82 to 1.26 (v); single draws 0.83 to 1.15, 0.85 to 1.21, 0.64
 * to 1.52. A draw's error rows meet the inputs' mean offset at random angles, which moves a draw
 * (most for v: 32 rows of 64 values); the model itself moves a seed's mean (the columns'
 * independence; for the gate E[silu'(g)^2] ~ E[silu(g)^2] / E[g^2]). A factor wrong by 2 (the
 * group size divided out: v's means would be 1.64 to 2.5; a squared norm missed) falls outside
 * the bands of the means. */
static void check_ratios(const char *what, const double *r, double mean_lo, double mean_hi, double lo, double hi) {
    double mean = 0.0, mn = INFINITY, mx = 0.0;
    for (int k = 0; k < DRAWS; k++) {
        mean += r[k] / DRAWS;
        mn = fmin(mn, r[k]);
        mx = fmax(mx, r[k]);
    }
    printf("%s: measured / predicted mean %.4f, draws %.4f to %.4f\n", what, mean, mn, mx);
    CHECK(mean >= mean_lo && mean <= mean_hi, "%s: measured / predicted %.4f on average, outside [%g, %g]", what, mean,
          mean_lo, mean_hi);
    CHECK(mn >= lo && mx <= hi, "%s: measured / predicted %.4f to %.4f, outside [%g, %g]", what, mn, mx, lo, hi);
}

/* ---- the FFN ---------------------------------------------------------------------------------- */

static void test_ffn_gains_match_monte_carlo(void) {
    source src = new_source(D);
    float up_scale[FF], gate_scale[FF];
    float *up = weights(FF, D, up_scale), *gate = weights(FF, D, gate_scale), *down = weights(D, FF, NULL);
    stats sx = new_stats(D), sact = new_stats(FF);
    float x[D];
    double xd[D], u[FF], g[FF], act[FF];
    for (int k = 0; k < N_STATS; k++) {
        draw(&src, x);
        for (int i = 0; i < D; i++) xd[i] = x[i];
        matvec(up, FF, D, x, u);
        matvec(gate, FF, D, x, g);
        for (int j = 0; j < FF; j++) act[j] = silu(g[j]) * u[j];
        add_stats(&sx, xd);
        add_stats(&sact, act);
    }
    close_stats(&sx);
    close_stats(&sact);
    const qk_sens_tensor t[3] = {{"blk.0.ffn_up.weight", {D, FF, 1, 1}, sx.w, sx.a},
                                 {"blk.0.ffn_gate.weight", {D, FF, 1, 1}, sx.w, sx.a},
                                 {"blk.0.ffn_down.weight", {FF, D, 1, 1}, sact.w, NULL}};
    const float *data[3] = {up, gate, down};
    double sens[3];
    const char *why[3];
    CHECK(factors(t, 3, data, 0, 0, sens, why, -1) == QK_OK, "the factors of an FFN");
    CHECK(!why[0] && !why[1] && !why[2], "the FFN's factors fell back: %s / %s / %s", why[0] ? why[0] : "-",
          why[1] ? why[1] : "-", why[2] ? why[2] : "-");
    CHECK(sens[2] == 1.0, "ffn_down writes into the residual: factor %g", sens[2]);
    printf("ffn: s_up %.4g, s_gate %.4g\n", sens[0], sens[1]);

    double r_up[DRAWS], r_gate[DRAWS];
    double y[D], dy[D], du[FF], dg[FF], pu[FF], pg[FF];
    for (int k = 0; k < DRAWS; k++) {
        float *eu = error_like(FF, D, up_scale), *eg = error_like(FF, D, gate_scale);
        double actual_up = 0.0, actual_gate = 0.0;
        for (int s = 0; s < N_MC; s++) {
            draw(&src, x);
            matvec(up, FF, D, x, u);
            matvec(gate, FF, D, x, g);
            matvec(eu, FF, D, x, du);
            matvec(eg, FF, D, x, dg);
            for (int j = 0; j < FF; j++) {
                pu[j] = silu(g[j]) * du[j];
                pg[j] = u[j] * silu_grad(g[j]) * dg[j];
            }
            float fu[FF], fg[FF];
            for (int j = 0; j < FF; j++) {
                fu[j] = (float)pu[j];
                fg[j] = (float)pg[j];
            }
            matvec(down, D, FF, fu, y);
            matvec(down, D, FF, fg, dy);
            for (int i = 0; i < D; i++) {
                actual_up += y[i] * y[i];
                actual_gate += dy[i] * dy[i];
            }
        }
        actual_up /= N_MC;
        actual_gate /= N_MC;
        /* what the error matrix holds for these errors, times the factor */
        const double pred_up = sens[0] * qk_sens_energy(eu, FF, D, sx.w, sx.a);
        const double pred_gate = sens[1] * qk_sens_energy(eg, FF, D, sx.w, sx.a);
        r_up[k] = actual_up / pred_up;
        r_gate[k] = actual_gate / pred_gate;
        printf("ffn draw %d: measured / predicted residual error: up %.4f, gate %.4f\n", k, r_up[k], r_gate[k]);
        free(eu);
        free(eg);
    }
    check_ratios("ffn_up", r_up, 0.8, 1.2, 0.7, 1.3);
    check_ratios("ffn_gate", r_gate, 0.75, 1.3, 0.7, 1.4);
    free(up);
    free(gate);
    free(down);
    free(src.mean);
    free(src.scale);
    free_stats(&sx);
    free_stats(&sact);
}

/* ---- attention ---------------------------------------------------------------------------------- */

enum { NH = 4, NKV = 2, HD = 16, T = 16 };

/* One sample: T fresh inputs, per query head random attention weights over them (softmax of
 * N(0, 1) logits), the heads' averaged inputs xbar[h] (o's head h is W_v's kv head h / G times
 * it, as o = sum_t p_t v_t with v_t = W_v x_t). */
static void attention_sample(const source *src, float xbar[NH][D], float xs[T][D]) {
    for (int t = 0; t < T; t++) draw(src, xs[t]);
    for (int h = 0; h < NH; h++) {
        double p[T], sum = 0.0;
        for (int t = 0; t < T; t++) sum += p[t] = exp(tu_gauss(&rng));
        for (int i = 0; i < D; i++) {
            double v = 0.0;
            for (int t = 0; t < T; t++) v += p[t] / sum * xs[t][i];
            xbar[h][i] = (float)v;
        }
    }
}

/* o (NH * HD values) from the per-head averaged inputs through W (NKV * HD rows of D). */
static void attention_out(const float *W, float xbar[NH][D], float *o) {
    for (int h = 0; h < NH; h++) {
        double v[HD];
        matvec(W + (h / (NH / NKV)) * HD * D, HD, D, xbar[h], v);
        for (int r = 0; r < HD; r++) o[h * HD + r] = (float)v[r];
    }
}

static void test_attention_gain_matches_monte_carlo(void) {
    source src = new_source(D);
    float v_scale[NKV * HD];
    float *wv = weights(NKV * HD, D, v_scale), *wo = weights(D, NH * HD, NULL);
    float *wq = weights(NH * HD, D, NULL), *wk = weights(NKV * HD, D, NULL);
    stats sx = new_stats(D), so = new_stats(NH * HD);
    float xbar[NH][D], xs[T][D], o[NH * HD];
    double od[NH * HD], xd[D];
    for (int k = 0; k < N_STATS; k++) {
        attention_sample(&src, xbar, xs);
        attention_out(wv, xbar, o);
        for (int j = 0; j < NH * HD; j++) od[j] = o[j];
        add_stats(&so, od);
        for (int i = 0; i < D; i++) xd[i] = xs[0][i]; /* one token per sample: W_v's input statistics */
        add_stats(&sx, xd);
    }
    close_stats(&sx);
    close_stats(&so);
    /* blk.1 fuses q, k and v (rows in that order) before the same attn_output */
    float *qkv = malloc((size_t)(NH + 2 * NKV) * HD * D * sizeof *qkv);
    memcpy(qkv, wq, (size_t)NH * HD * D * sizeof *qkv);
    memcpy(qkv + NH * HD * D, wk, (size_t)NKV * HD * D * sizeof *qkv);
    memcpy(qkv + (NH + NKV) * HD * D, wv, (size_t)NKV * HD * D * sizeof *qkv);
    const qk_sens_tensor t[7] = {{"blk.0.attn_q.weight", {D, NH * HD, 1, 1}, sx.w, sx.a},
                                 {"blk.0.attn_k.weight", {D, NKV * HD, 1, 1}, sx.w, sx.a},
                                 {"blk.0.attn_v.weight", {D, NKV * HD, 1, 1}, sx.w, sx.a},
                                 {"blk.0.attn_output.weight", {NH * HD, D, 1, 1}, so.w, so.a},
                                 {"blk.1.attn_qkv.weight", {D, (NH + 2 * NKV) * HD, 1, 1}, sx.w, sx.a},
                                 {"blk.1.attn_output.weight", {NH * HD, D, 1, 1}, so.w, so.a},
                                 {"blk.2.attn_qkv.weight", {D, (NH + 2 * NKV) * HD, 1, 1}, sx.w, sx.a}};
    const float *data[7] = {wq, wk, wv, wo, qkv, wo, qkv};
    double sens[7];
    const char *why[7];
    CHECK(factors(t, 7, data, NH, NKV, sens, why, -1) == QK_OK, "the factors of attention");
    CHECK(!why[0] && !why[1] && !why[2] && !why[4], "attention's factors fell back: %s", why[2] ? why[2] : "-");
    CHECK(sens[0] == 1.0 && sens[1] == 1.0 && sens[2] != 1.0, "attn_q %g and attn_k %g keep 1, attn_v's factor %g",
          sens[0], sens[1], sens[2]);
    CHECK(sens[3] == 1.0, "attn_output writes into the residual: factor %g", sens[3]);
    CHECK(fabs(sens[4] - sens[2]) <= 1e-12 * sens[2], "fused attn_qkv %.17g against attn_v's %.17g", sens[4], sens[2]);
    CHECK(sens[6] == 1.0 && why[6], "attn_qkv without attn_output: factor %g, reason %s", sens[6],
          why[6] ? why[6] : "none");
    double wrong_heads[2];
    const char *wrong_why[2];
    const qk_sens_tensor qkv_alone[2] = {t[4], t[5]};
    const float *qkv_data[2] = {qkv, wo};
    CHECK(factors(qkv_alone, 2, qkv_data, NH, NH, wrong_heads, wrong_why, -1) == QK_OK && wrong_heads[0] == 1.0 &&
              wrong_why[0],
          "attn_qkv with head counts its shape does not have: factor %g", wrong_heads[0]);
    printf("attention: s_v %.4g\n", sens[2]);

    double r_v[DRAWS];
    for (int k = 0; k < DRAWS; k++) {
        float *ev = error_like(NKV * HD, D, v_scale), dout[NH * HD];
        double actual = 0.0, y[D];
        for (int s = 0; s < N_MC; s++) {
            attention_sample(&src, xbar, xs);
            attention_out(ev, xbar, dout);
            matvec(wo, D, NH * HD, dout, y);
            for (int i = 0; i < D; i++) actual += y[i] * y[i];
        }
        actual /= N_MC;
        r_v[k] = actual / (sens[2] * qk_sens_energy(ev, NKV * HD, D, sx.w, sx.a));
        printf("attention draw %d: measured / predicted residual error: v %.4f (had the factor been divided by the "
               "group size %d: %.4f)\n",
               k, r_v[k], NH / NKV, r_v[k] * (NH / NKV));
        free(ev);
    }
    check_ratios("attn_v", r_v, 0.75, 1.35, 0.5, 1.8);
    free(wv);
    free(wo);
    free(wq);
    free(wk);
    free(qkv);
    free(src.mean);
    free(src.scale);
    free_stats(&sx);
    free_stats(&so);
}

/* ---- the rules ---------------------------------------------------------------------------------- */

static void test_fallbacks_and_rules(void) {
    float *up = weights(FF, D, NULL), *down = weights(D, FF, NULL), *zero = calloc(FF * D, sizeof(float));
    float *embd = weights(1000, D, NULL);
    float w[FF], a[FF];
    for (int i = 0; i < FF; i++) w[i] = uniform(0.5f, 2.0f), a[i] = 0.1f * tu_gauss(&rng);
    double sens[6];
    const char *why[6];

    /* ffn_down without an imatrix entry: 1, with the reason; the same for no ffn_down at all */
    const qk_sens_tensor no_entry[2] = {{"blk.0.ffn_up.weight", {D, FF, 1, 1}, w, a},
                                        {"blk.0.ffn_down.weight", {FF, D, 1, 1}, NULL, NULL}};
    const float *d2[2] = {up, down};
    CHECK(factors(no_entry, 2, d2, 0, 0, sens, why, -1) == QK_OK && sens[0] == 1.0 && why[0],
          "ffn_down without an entry: ffn_up's factor %g, reason %s", sens[0], why[0] ? why[0] : "none");
    const qk_sens_tensor lonely[1] = {{"blk.0.ffn_up.weight", {D, FF, 1, 1}, w, a}};
    CHECK(factors(lonely, 1, d2, 0, 0, sens, why, -1) == QK_OK && sens[0] == 1.0 && why[0],
          "ffn_up without ffn_down: factor %g", sens[0]);
    /* up without an entry of its own: w = 1, a = 0 */
    const qk_sens_tensor up_bare[2] = {{"blk.0.ffn_up.weight", {D, FF, 1, 1}, NULL, NULL},
                                       {"blk.0.ffn_down.weight", {FF, D, 1, 1}, w, a}};
    const double bare = qk_sens_energy(down, D, FF, w, NULL) / qk_sens_energy(up, FF, D, NULL, NULL);
    CHECK(factors(up_bare, 2, d2, 0, 0, sens, why, -1) == QK_OK && fabs(sens[0] - bare) <= 1e-12 * bare && !why[0],
          "ffn_up without an entry: %.17g, expected %.17g", sens[0], bare);
    /* a zero denominator (all-zero weights): 1, with the reason, never NaN or Inf */
    const float *dz[2] = {zero, down};
    const qk_sens_tensor zero_up[2] = {{"blk.0.ffn_up.weight", {D, FF, 1, 1}, NULL, NULL},
                                       {"blk.0.ffn_down.weight", {FF, D, 1, 1}, w, a}};
    CHECK(factors(zero_up, 2, dz, 0, 0, sens, why, -1) == QK_OK && sens[0] == 1.0 && why[0],
          "all-zero ffn_up: factor %g", sens[0]);
    /* mismatched shapes */
    const qk_sens_tensor odd[2] = {{"blk.0.ffn_up.weight", {D, FF / 2, 1, 1}, NULL, NULL},
                                   {"blk.0.ffn_down.weight", {FF, D, 1, 1}, w, a}};
    CHECK(factors(odd, 2, d2, 0, 0, sens, why, -1) == QK_OK && sens[0] == 1.0 && why[0],
          "ffn_up of other width than ffn_down's input: factor %g", sens[0]);

    /* token_embd: 1 / rows without an entry, 1 with one; residual writers and the rest: 1 */
    const float wd[D] = {0};
    const qk_sens_tensor misc[5] = {{"token_embd.weight", {D, 1000, 1, 1}, NULL, NULL},
                                    {"blk.0.ssm_out.weight", {D, D, 1, 1}, NULL, NULL},
                                    {"output.weight", {D, 1000, 1, 1}, NULL, NULL},
                                    {"blk.0.ffn_down_shexp.weight", {FF, D, 1, 1}, w, NULL},
                                    {"blk.0.ssm_alpha.weight", {D, 4, 1, 1}, NULL, NULL}};
    const float *dm[5] = {embd, embd, embd, down, embd};
    CHECK(factors(misc, 5, dm, 0, 0, sens, why, -1) == QK_OK, "misc factors");
    CHECK(sens[0] == 1.0 / 1000, "token_embd without an entry: %.17g, expected 1/1000", sens[0]);
    for (int i = 1; i < 5; i++) CHECK(sens[i] == 1.0 && !why[i], "%s: factor %g", misc[i].name, sens[i]);
    const qk_sens_tensor tied[1] = {{"token_embd.weight", {D, 1000, 1, 1}, wd, NULL}};
    CHECK(factors(tied, 1, dm, 0, 0, sens, why, -1) == QK_OK && sens[0] == 1.0,
          "token_embd with an entry (tied output): %g", sens[0]);
    /* no output tensor: the embedding is the output projection too, entry or not */
    const qk_sens_tensor tied_bare[2] = {{"token_embd.weight", {D, 1000, 1, 1}, NULL, NULL},
                                         {"blk.0.ssm_out.weight", {D, D, 1, 1}, NULL, NULL}};
    CHECK(factors(tied_bare, 2, dm, 0, 0, sens, why, -1) == QK_OK && sens[0] == 1.0 && !why[0],
          "token_embd of a model without output.weight (tied): %g, expected 1", sens[0]);

    /* a failed read stops it with the reader's status */
    CHECK(factors(up_bare, 2, d2, 0, 0, sens, why, 1) == QK_ERR_IO, "a read failure is passed on");
    free(up);
    free(down);
    free(zero);
    free(embd);
}

/* Expert stacks: numerators and denominators summed over the experts; one never routed (its
 * down slice the imatrix's flat 1.0) is left out of both. */
static void test_experts_summed_unrouted_left_out(void) {
    enum { E = 2 };
    float *up = weights(E * FF, D, NULL), *down = weights(E * D, FF, NULL);
    float wx[E * D], ax[E * D], m[E * FF];
    for (int i = 0; i < E * D; i++) wx[i] = uniform(0.5f, 2.0f), ax[i] = 0.2f * tu_gauss(&rng);
    for (int j = 0; j < E * FF; j++) m[j] = uniform(0.1f, 1.0f);
    const qk_sens_tensor t[2] = {{"blk.0.ffn_up_exps.weight", {D, FF, E, 1}, wx, ax},
                                 {"blk.0.ffn_down_exps.weight", {FF, D, E, 1}, m, NULL}};
    const float *data[2] = {up, down};
    double sens[2], expect = 0.0, num = 0.0, den = 0.0;
    const char *why[2];
    for (int e = 0; e < E; e++) {
        num += qk_sens_energy(down + e * D * FF, D, FF, m + e * FF, NULL);
        den += qk_sens_energy(up + e * FF * D, FF, D, wx + e * D, ax + e * D);
    }
    expect = num / den;
    CHECK(factors(t, 2, data, 0, 0, sens, why, -1) == QK_OK && fabs(sens[0] - expect) <= 1e-12 * expect,
          "experts: %.17g, expected %.17g", sens[0], expect);
    for (int j = FF; j < 2 * FF; j++) m[j] = 1.0f; /* expert 1 never routed */
    expect = qk_sens_energy(down, D, FF, m, NULL) / qk_sens_energy(up, FF, D, wx, ax);
    CHECK(factors(t, 2, data, 0, 0, sens, why, -1) == QK_OK && fabs(sens[0] - expect) <= 1e-12 * expect,
          "an expert never routed: %.17g, expected expert 0's %.17g", sens[0], expect);
    free(up);
    free(down);
}

/* A stack larger than the factors read whole (64 experts of 1024 rows; they read 64 rows of each):
 * the estimate from the evenly spaced rows within 5% of the exact ratio. The
 * rows' scales vary by 4x and the experts' by another 4x, so a sum that left the scaling out or
 * took the wrong rows would miss by far more. */
static void test_large_stacks_sampled_within_5_percent(void) {
    enum { E = 64, R = 1024, C = 32 };
    float *up = weights(E * R, C, NULL), *down = weights(E * C, R, NULL);
    for (int e = 0; e < E; e++) { /* experts of different magnitudes */
        const float f = uniform(0.5f, 2.0f);
        for (int64_t k = 0; k < (int64_t)R * C; k++) up[e * R * C + k] *= f, down[e * C * R + k] *= f;
    }
    float *wx = malloc(sizeof(float) * E * C), *m = malloc(sizeof(float) * E * R);
    for (int i = 0; i < E * C; i++) wx[i] = uniform(0.5f, 2.0f);
    for (int j = 0; j < E * R; j++) m[j] = uniform(0.1f, 1.0f);
    const qk_sens_tensor t[2] = {{"blk.0.ffn_up_exps.weight", {C, R, E, 1}, wx, NULL},
                                 {"blk.0.ffn_down_exps.weight", {R, C, E, 1}, m, NULL}};
    const float *data[2] = {up, down};
    double num = 0.0, den = 0.0, sens[2];
    const char *why[2];
    for (int e = 0; e < E; e++) {
        num += qk_sens_energy(down + (int64_t)e * C * R, C, R, m + e * R, NULL);
        den += qk_sens_energy(up + (int64_t)e * R * C, R, C, wx + e * C, NULL);
    }
    const double exact = num / den;
    CHECK(factors(t, 2, data, 0, 0, sens, why, -1) == QK_OK, "sampled factor");
    printf("64 x 1024-row stack: sampled factor %.6g, exact %.6g (%.2f%%)\n", sens[0], exact,
           100.0 * (sens[0] / exact - 1.0));
    CHECK(fabs(sens[0] / exact - 1.0) < 0.05, "sampled factor %.6g, exact %.6g: more than 5%% apart", sens[0], exact);
    free(up);
    free(down);
    free(wx);
    free(m);
}

/* 1 for the names whose weights other tensors' factors read. */
static void test_partners_named(void) {
    const char *yes[] = {"blk.0.ffn_down.weight", "blk.12.ffn_down_exps.weight", "blk.3.ffn_down_shexp.weight",
                         "blk.3.attn_output.weight", "blk.3.attn_v.weight"};
    const char *no[] = {"blk.0.ffn_up.weight",      "token_embd.weight",   "output.weight",
                        "blk.3.attn_v_norm.weight", "blk.3.attn_q.weight", "attn_v.weight"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) CHECK(qk_sens_is_partner(yes[i]), "%s not a partner", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) CHECK(!qk_sens_is_partner(no[i]), "%s a partner", no[i]);
}

int main(void) {
    rng.s = tu_seed();
    test_ffn_gains_match_monte_carlo();
    test_attention_gain_matches_monte_carlo();
    test_fallbacks_and_rules();
    test_experts_summed_unrouted_left_out();
    test_large_stacks_sampled_within_5_percent();
    test_partners_named();
    return tu_finish();
}
