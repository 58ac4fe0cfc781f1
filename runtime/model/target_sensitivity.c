#include "target_sensitivity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The rows a factor's sum reads of one tensor, over all its experts, and the least of each expert;
 * beyond them evenly spaced ones stand for all (energy). */
#define QK_SENS_ROWS     4096
#define QK_SENS_MIN_ROWS 8

double qk_sens_energy(const float *W, int64_t rows, int64_t cols, const float *w, const float *a) {
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = W + r * cols;
        double spread = 0.0, mean = 0.0;
        for (int64_t i = 0; i < cols; i++) {
            const double v = w ? w[i] : 1.0, m = a ? a[i] : 0.0, var = v - m * m;
            spread += (double)x[i] * x[i] * (var > 0.0 ? var : 0.0); /* rounding can make it < 0 */
            mean += (double)x[i] * m;
        }
        sum += spread + mean * mean;
    }
    return sum;
}

/* The kinds whose factor is formed, and the tensor each reads beside its own weights. */
static const struct {
    const char *kind, *partner;
} ffn_pairs[] = {
    {"ffn_up", "ffn_down"},
    {"ffn_gate", "ffn_down"},
    {"ffn_up_exps", "ffn_down_exps"},
    {"ffn_gate_exps", "ffn_down_exps"},
    {"ffn_up_shexp", "ffn_down_shexp"},
    {"ffn_gate_shexp", "ffn_down_shexp"},
};

typedef struct sens_run {
    const qk_sens_tensor *t;
    size_t n;
    qk_sens_read_fn read;
    void *user;
    float *buf;
    size_t buf_floats;
    double *memo; /* per tensor: its energy as the factors use it, NAN until read */
} sens_run;

/* "blk.N." and the kind after it ("ffn_up_exps"): the kind's start and length, 0 if none. */
static size_t name_kind(const char *name, const char **kind) {
    const char *blk = strncmp(name, "blk.", 4) ? NULL : strchr(name + 4, '.');
    if (!blk) return 0;
    *kind = blk + 1;
    const char *end = strchr(*kind, '.');
    return end ? (size_t)(end - *kind) : strlen(*kind);
}

static int kind_is(const char *kind, size_t len, const char *want) {
    return strlen(want) == len && !strncmp(kind, want, len);
}

int qk_sens_is_partner(const char *name) {
    static const char *const partners[] = {"ffn_down", "ffn_down_exps", "ffn_down_shexp", "attn_output", "attn_v"};
    const char *kind = NULL;
    const size_t len = name_kind(name, &kind);
    for (size_t k = 0; len && k < sizeof partners / sizeof partners[0]; k++)
        if (kind_is(kind, len, partners[k])) return 1;
    return 0;
}

int qk_sens_reads(const char *name, const char *other) {
    const char *kind = NULL, *other_kind = NULL;
    if (!name_kind(name, &kind) || !name_kind(other, &other_kind)) return 0;
    const size_t block = (size_t)(kind - name);
    return (size_t)(other_kind - other) == block && !strncmp(name, other, block) && qk_sens_is_partner(other);
}

/* The tensor of the same block and suffix as tensor i, of kind `partner`; n if none. */
static size_t find_partner(const sens_run *s, size_t i, const char *partner) {
    const char *name = s->t[i].name, *kind = NULL;
    const size_t len = name_kind(name, &kind);
    char want[512];
    if (!len) return s->n;
    if (snprintf(want, sizeof want, "%.*s%s%s", (int)(kind - name), name, partner, kind + len) >= (int)sizeof want)
        return s->n;
    for (size_t j = 0; j < s->n; j++)
        if (!strcmp(s->t[j].name, want)) return j;
    return s->n;
}

/* An expert that no token reached: the imatrix gives it flat 1.0 mean squares (and 0.0 means),
 * not statistics, so it stays out of a factor's sums. */
static int routed(const qk_sens_tensor *d, int64_t e) {
    if (d->ne[2] <= 1) return 1;
    const float *w = d->w + e * d->ne[0], *a = d->a ? d->a + e * d->ne[0] : NULL;
    for (int64_t j = 0; j < d->ne[0]; j++)
        if (w[j] != 1.0f || (a && a[j] != 0.0f)) return 1;
    return 0;
}

/* Tensor i's energy over rows [r0, r1) of each expert that `gate` (a tensor with an entry, or
 * NULL: all) routed, with mean squares w and means a (either NULL); memoized (every tensor is
 * asked for one energy only). Beyond QK_SENS_ROWS rows in all it is estimated from evenly
 * spaced rows of every routed expert (at least QK_SENS_MIN_ROWS each), scaled to all: a factor
 * is a ratio of two such sums, and reading every weight of a 397B model's experts on the host
 * would take minutes for a number that a few thousand rows give to a few percent (the test
 * measures it). Every expert is read, as experts differ in magnitude more than rows do. */
static qk_status energy(sens_run *s, size_t i, int64_t r0, int64_t r1, const float *w, const float *a,
                        const qk_sens_tensor *gate, double *out) {
    if (!isnan(s->memo[i])) {
        *out = s->memo[i];
        return QK_OK;
    }
    const qk_sens_tensor *t = &s->t[i];
    const int64_t cols = t->ne[0], n_mat = t->ne[2] * t->ne[3], rows = r1 - r0;
    int64_t n_routed = 0;
    for (int64_t e = 0; e < n_mat; e++) n_routed += !gate || routed(gate, e % t->ne[2]);
    int64_t per_mat = n_routed ? QK_SENS_ROWS / n_routed : rows; /* rows read of each expert */
    if (per_mat < QK_SENS_MIN_ROWS) per_mat = QK_SENS_MIN_ROWS;
    const int64_t row_stride = (rows + per_mat - 1) / per_mat; /* every row_stride-th row */
    const int64_t step = row_stride > 1 ? 1 : (int64_t)(s->buf_floats / (size_t)cols);
    double sum = 0.0;
    int64_t used_rows = 0;
    for (int64_t e = 0; e < n_mat; e++) {
        if (gate && !routed(gate, e % t->ne[2])) continue;
        const int64_t at = (e % t->ne[2]) * cols; /* the expert's imatrix slice */
        used_rows = 0;
        for (int64_t r = r0; r < r1; r += step * row_stride) {
            const int64_t k = r1 - r < step ? r1 - r : step;
            qk_status st = s->read(s->user, i, e * t->ne[1] + r, k, s->buf);
            if (st) return st;
            sum += qk_sens_energy(s->buf, k, cols, w ? w + at : NULL, a ? a + at : NULL);
            used_rows += k;
        }
    }
    if (used_rows) sum *= (double)rows / (double)used_rows;
    *out = s->memo[i] = sum;
    return QK_OK;
}

static double ratio(double num, double den, const char **why) {
    if (!(den > 0.0) || !isfinite(den)) {
        *why = "its outputs' expected energy is zero or not finite";
        return 1.0;
    }
    if (!(num > 0.0) || !isfinite(num)) {
        *why = "no activation reaches the next tensor per the imatrix (zero or not finite)";
        return 1.0;
    }
    const double r = num / den;
    if (!(r > 0.0) || !isfinite(r)) {
        *why = "the ratio is zero or not finite";
        return 1.0;
    }
    return r;
}

/* ffn_up / ffn_gate (i) through the block's down projection (partner kind `down`). */
static qk_status ffn_factor(sens_run *s, size_t i, const char *down, double *sens, const char **why) {
    const size_t j = find_partner(s, i, down);
    const qk_sens_tensor *t = &s->t[i], *d = j < s->n ? &s->t[j] : NULL;
    if (!d) {
        *why = "no down projection of the same block";
        return QK_OK;
    }
    if (!d->w) {
        *why = "the block's down projection has no imatrix entry (the activation's mean square is unknown)";
        return QK_OK;
    }
    if (d->ne[0] != t->ne[1] || d->ne[2] != t->ne[2] || d->ne[3] != t->ne[3]) {
        *why = "its outputs and the down projection's inputs differ in number";
        return QK_OK;
    }
    double num, den;
    qk_status st = energy(s, j, 0, d->ne[1], d->w, NULL, d, &num);
    if (st == QK_OK) st = energy(s, i, 0, t->ne[1], t->w, t->a, d, &den);
    if (st == QK_OK) *sens = ratio(num, den, why);
    return st;
}

/* attn_v, and a fused attn_qkv (its v rows), through attn_output. */
static qk_status attn_factor(sens_run *s, size_t i, int fused, int64_t n_head, int64_t n_head_kv, double *sens,
                             const char **why) {
    const size_t o = find_partner(s, i, "attn_output"), v = fused ? i : find_partner(s, i, "attn_v");
    if (o == s->n || v == s->n) {
        *why = o == s->n ? "no attn_output of the same block" : "no attn_v of the same block";
        return QK_OK;
    }
    const qk_sens_tensor *to = &s->t[o], *tv = &s->t[v];
    if (!to->w) {
        *why = "the block's attn_output has no imatrix entry (its input's mean square is unknown)";
        return QK_OK;
    }
    int64_t r0 = 0, r1 = tv->ne[1];
    if (fused) {
        const int64_t hd = n_head > 0 ? to->ne[0] / n_head : 0;
        if (!hd || n_head_kv <= 0 || hd * n_head != to->ne[0] || tv->ne[1] != (n_head + 2 * n_head_kv) * hd) {
            *why = "its v rows are not known (head counts and shapes do not agree)";
            return QK_OK;
        }
        r0 = (n_head + n_head_kv) * hd;
    }
    if (to->ne[2] * to->ne[3] != 1 || tv->ne[2] * tv->ne[3] != 1 || r1 <= r0 || r1 - r0 > to->ne[0] ||
        to->ne[0] % (r1 - r0)) {
        *why = "attn_output's inputs are no whole number of copies of the v rows";
        return QK_OK;
    }
    double num, den;
    qk_status st = energy(s, o, 0, to->ne[1], to->w, NULL, NULL, &num);
    if (st == QK_OK) st = energy(s, v, r0, r1, tv->w, tv->a, NULL, &den);
    if (st == QK_OK) *sens = ratio(num, den, why);
    return st;
}

qk_status qk_target_sensitivities(const qk_sens_tensor *t, size_t n, const unsigned char *want, int64_t n_head,
                                  int64_t n_head_kv, qk_sens_read_fn read, void *user, size_t chunk_floats,
                                  double *sens, const char **why) {
    size_t widest = 1;
    for (size_t i = 0; i < n; i++)
        if ((size_t)t[i].ne[0] > widest) widest = (size_t)t[i].ne[0];
    sens_run s = {t, n, read, user, NULL, chunk_floats > widest ? chunk_floats : widest, NULL};
    s.buf = malloc(s.buf_floats * sizeof *s.buf);
    s.memo = malloc((n ? n : 1) * sizeof *s.memo);
    if (!s.buf || !s.memo) {
        free(s.buf);
        free(s.memo);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "out of host memory for the sensitivities of %zu tensors", n);
    }
    for (size_t i = 0; i < n; i++) s.memo[i] = NAN;
    /* without an output tensor the embedding is tied: it is the output projection too, whose
     * every row each token's logits read */
    int has_output = 0;
    for (size_t i = 0; i < n; i++) has_output |= !strcmp(t[i].name, "output.weight");
    qk_status st = QK_OK;
    for (size_t i = 0; st == QK_OK && i < n; i++) {
        if (!want[i]) continue;
        sens[i] = 1.0;
        why[i] = NULL;
        const char *kind = NULL;
        const size_t len = name_kind(t[i].name, &kind);
        if (!strcmp(t[i].name, "token_embd.weight")) {
            if (!t[i].w && t[i].ne[1] > 0 && has_output) sens[i] = 1.0 / (double)t[i].ne[1];
            continue;
        }
        if (!len) continue;
        for (size_t k = 0; k < sizeof ffn_pairs / sizeof ffn_pairs[0]; k++)
            if (kind_is(kind, len, ffn_pairs[k].kind)) st = ffn_factor(&s, i, ffn_pairs[k].partner, &sens[i], &why[i]);
        if (kind_is(kind, len, "attn_v")) st = attn_factor(&s, i, 0, n_head, n_head_kv, &sens[i], &why[i]);
        if (kind_is(kind, len, "attn_qkv")) st = attn_factor(&s, i, 1, n_head, n_head_kv, &sens[i], &why[i]);
    }
    free(s.buf);
    free(s.memo);
    return st;
}
