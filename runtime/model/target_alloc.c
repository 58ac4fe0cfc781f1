/* Target size allocation: a multiple-choice knapsack (one option per tensor, a byte budget, the
 * least summed error), solved as the header says. Per tensor the options are reduced to the Pareto
 * frontier (strictly more bytes buys strictly less error) and its lower convex hull. The Lagrangian
 * step bisects over the hull slopes themselves, the only multipliers where a choice changes, so it
 * is exact rather than approximate in the multiplier. The greedy fill then walks the frontier
 * (hull or not) from a heap of each tensor's best upgrade that still fits; the bytes left only
 * shrink, so a stale heap entry is an upper bound and is re-evaluated when it reaches the top.
 *
 * Cost, n tensors of at most k options, m = n * k: O(m log m) for the sorts and the bisection
 * (log m passes of O(m)); the fill pops each tensor at most k times per position it moves to (a
 * pop moves it or rules out its best target for good), each pop O(k + log n), so O(n k^2 (k +
 * log n)) at worst and far less in practice. 500 x 16 takes about a millisecond. */
#include "target_alloc.h"

#include <float.h>
#include <stdlib.h>

typedef struct sort_key {
    uint64_t bytes;
    double error;
    int index;
} sort_key;

/* Bytes, then error, then option index: the frontier keeps the first of equal sizes. */
static int cmp_key(const void *pa, const void *pb) {
    const sort_key *a = pa, *b = pb;
    if (a->bytes != b->bytes) return a->bytes < b->bytes ? -1 : 1;
    if (a->error != b->error) return a->error < b->error ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int cmp_desc(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

/* Error saved per extra byte from option a to the larger option b. */
static double rate(const qk_alloc_option *a, const qk_alloc_option *b) {
    return (a->error - b->error) / (double)(b->bytes - a->bytes);
}

/* A tensor's reduced options, as offsets into the shared arrays of alloc_state. */
typedef struct alloc_state {
    const qk_alloc_tensor *t;
    size_t n;
    size_t *front_off; /* n + 1: tensor i's frontier is front[front_off[i] .. front_off[i + 1]) */
    int *front;        /* option indices, bytes strictly up and error strictly down */
    size_t *hull_off;  /* n + 1, likewise into hull and slope */
    int *hull;         /* frontier positions on the lower convex hull */
    double *slope;     /* slope[k]: the rate from hull point k to k + 1 (nonincreasing) */
    int *pos;          /* n: each tensor's current frontier position */
} alloc_state;

static const qk_alloc_option *front_option(const alloc_state *s, size_t i, int p) {
    return &s->t[i].options[s->front[s->front_off[i] + (size_t)p]];
}

/* Builds tensor i's frontier and hull; `keys` has room for its options. */
static void reduce_tensor(alloc_state *s, size_t i, sort_key *keys) {
    const qk_alloc_tensor *ti = &s->t[i];
    for (int j = 0; j < ti->n_options; j++) keys[j] = (sort_key){ti->options[j].bytes, ti->options[j].error, j};
    qsort(keys, (size_t)ti->n_options, sizeof *keys, cmp_key);

    int *f = s->front + s->front_off[i];
    int nf = 0;
    for (int j = 0; j < ti->n_options; j++)
        if (nf == 0 || keys[j].error < ti->options[f[nf - 1]].error) f[nf++] = keys[j].index;
    s->front_off[i + 1] = s->front_off[i] + (size_t)nf;

    int *h = s->hull + s->hull_off[i];
    int nh = 0;
    for (int p = 0; p < nf; p++) {
        /* collinear points stay: they are steps the multiplier takes together */
        while (nh >= 2 && rate(&ti->options[f[h[nh - 2]]], &ti->options[f[h[nh - 1]]]) <
                              rate(&ti->options[f[h[nh - 1]]], &ti->options[f[p]]))
            nh--;
        h[nh++] = p;
    }
    for (int k = 0; k + 1 < nh; k++)
        s->slope[s->hull_off[i] + (size_t)k] = rate(&ti->options[f[h[k]]], &ti->options[f[h[k + 1]]]);
    s->hull_off[i + 1] = s->hull_off[i] + (size_t)nh;
}

/* The hull point each tensor takes at multiplier `lambda`: every step whose rate exceeds it. */
static int hull_point(const alloc_state *s, size_t i, double lambda) {
    const double *sl = s->slope + s->hull_off[i];
    int segs = (int)(s->hull_off[i + 1] - s->hull_off[i]) - 1, k = 0;
    while (k < segs && sl[k] > lambda) k++;
    return s->hull[s->hull_off[i] + (size_t)k];
}

static uint64_t lagrangian_bytes(const alloc_state *s, double lambda) {
    uint64_t total = 0;
    for (size_t i = 0; i < s->n; i++) total = sat_add(total, front_option(s, i, hull_point(s, i, lambda))->bytes);
    return total;
}

/* ---- the greedy fill ------------------------------------------------------------------------ */

typedef struct upgrade {
    double rate;    /* error saved per extra byte */
    uint64_t extra; /* extra bytes */
    size_t tensor;
    int to; /* frontier position */
} upgrade;

static int better(const upgrade *a, const upgrade *b) {
    if (a->rate != b->rate) return a->rate > b->rate;
    if (a->extra != b->extra) return a->extra < b->extra;
    return a->tensor < b->tensor;
}

/* Tensor i's best upgrade within `left` bytes; 0 if none fits. Ties go to the fewer bytes. */
static int best_upgrade(const alloc_state *s, size_t i, uint64_t left, upgrade *u) {
    int nf = (int)(s->front_off[i + 1] - s->front_off[i]), found = 0;
    const qk_alloc_option *cur = front_option(s, i, s->pos[i]);
    for (int q = s->pos[i] + 1; q < nf; q++) {
        const qk_alloc_option *o = front_option(s, i, q);
        if (o->bytes - cur->bytes > left) break; /* the frontier grows in bytes */
        double r = rate(cur, o);
        if (!found || r > u->rate) *u = (upgrade){r, o->bytes - cur->bytes, i, q};
        found = 1;
    }
    return found;
}

static void heap_push(upgrade *h, size_t *n, upgrade u) {
    size_t c = (*n)++;
    while (c > 0 && better(&u, &h[(c - 1) / 2])) {
        h[c] = h[(c - 1) / 2];
        c = (c - 1) / 2;
    }
    h[c] = u;
}

static upgrade heap_pop(upgrade *h, size_t *n) {
    upgrade top = h[0], last = h[--*n];
    size_t c = 0;
    for (;;) {
        size_t kid = 2 * c + 1;
        if (kid >= *n) break;
        if (kid + 1 < *n && better(&h[kid + 1], &h[kid])) kid++;
        if (!better(&h[kid], &last)) break;
        h[c] = h[kid];
        c = kid;
    }
    if (*n > 0) h[c] = last;
    return top;
}

/* Spends `left` bytes on the best single-tensor upgrades until none fits. */
static void greedy_fill(alloc_state *s, uint64_t left, upgrade *heap) {
    size_t nh = 0;
    upgrade u;
    for (size_t i = 0; i < s->n; i++)
        if (best_upgrade(s, i, left, &u)) heap_push(heap, &nh, u);
    while (nh > 0) {
        u = heap_pop(heap, &nh);
        /* one entry per tensor, pushed after its last move: only `left` can have changed */
        if (u.extra <= left) {
            s->pos[u.tensor] = u.to;
            left -= u.extra;
        }
        if (best_upgrade(s, u.tensor, left, &u)) heap_push(heap, &nh, u);
    }
}

/* ---- the solver ------------------------------------------------------------------------------ */

static int valid(const qk_alloc_tensor *t, size_t n, const int *choice, size_t *n_all, int *k_max) {
    if (n > 0 && (!t || !choice)) return 0;
    *n_all = 0;
    *k_max = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].n_options < 1 || !t[i].options) return 0;
        for (int j = 0; j < t[i].n_options; j++) {
            double e = t[i].options[j].error;
            if (!(e >= 0.0 && e <= DBL_MAX)) return 0; /* NaN fails both */
        }
        *n_all += (size_t)t[i].n_options;
        if (t[i].n_options > *k_max) *k_max = t[i].n_options;
    }
    return 1;
}

int qk_alloc_solve(const qk_alloc_tensor *t, size_t n, uint64_t budget, int *choice, uint64_t *min_bytes,
                   uint64_t *max_bytes) {
    size_t m;
    int k_max;
    if (!valid(t, n, choice, &m, &k_max)) return -2;

    alloc_state s = {.t = t, .n = n};
    s.front_off = malloc((n + 1) * sizeof *s.front_off);
    s.hull_off = malloc((n + 1) * sizeof *s.hull_off);
    s.front = malloc((m ? m : 1) * sizeof *s.front);
    s.hull = malloc((m ? m : 1) * sizeof *s.hull);
    s.slope = malloc((m ? m : 1) * sizeof *s.slope);
    s.pos = malloc((n ? n : 1) * sizeof *s.pos);
    sort_key *keys = malloc((k_max ? (size_t)k_max : 1) * sizeof *keys);
    double *lambdas = malloc((m ? m : 1) * sizeof *lambdas);
    upgrade *heap = malloc((n ? n : 1) * sizeof *heap);
    int rc = -2;
    if (!s.front_off || !s.hull_off || !s.front || !s.hull || !s.slope || !s.pos || !keys || !lambdas || !heap)
        goto done;

    s.front_off[0] = s.hull_off[0] = 0;
    uint64_t lo_total = 0, hi_total = 0;
    for (size_t i = 0; i < n; i++) {
        reduce_tensor(&s, i, keys);
        int nf = (int)(s.front_off[i + 1] - s.front_off[i]);
        lo_total = sat_add(lo_total, front_option(&s, i, 0)->bytes);
        hi_total = sat_add(hi_total, front_option(&s, i, nf - 1)->bytes);
        s.pos[i] = 0;
    }
    if (min_bytes) *min_bytes = lo_total;
    if (max_bytes) *max_bytes = hi_total;
    rc = lo_total > budget ? -1 : 0;

    if (rc == 0) {
        /* The candidate multipliers: the distinct hull slopes, largest first (at the largest no
         * tensor moves), then -1 (every tensor at its hull's end). */
        size_t nl = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t k = s.hull_off[i]; k + 1 < s.hull_off[i + 1]; k++) lambdas[nl++] = s.slope[k];
        qsort(lambdas, nl, sizeof *lambdas, cmp_desc);
        size_t nu = 0;
        for (size_t k = 0; k < nl; k++)
            if (nu == 0 || lambdas[k] != lambdas[nu - 1]) lambdas[nu++] = lambdas[k];
        /* the bytes grow with the index; find the last index within budget (index 0 always is) */
        size_t lo = 0, hi = nu;
        if (lagrangian_bytes(&s, -1.0) <= budget) {
            lo = nu;
        } else {
            while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (lagrangian_bytes(&s, lambdas[mid]) <= budget)
                    lo = mid;
                else
                    hi = mid;
            }
        }
        double lambda = lo < nu ? lambdas[lo] : -1.0;
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            s.pos[i] = hull_point(&s, i, lambda);
            total = sat_add(total, front_option(&s, i, s.pos[i])->bytes);
        }
        greedy_fill(&s, budget - total, heap);
    }
    for (size_t i = 0; i < n; i++) choice[i] = s.front[s.front_off[i] + (size_t)s.pos[i]];

done:
    free(s.front_off);
    free(s.hull_off);
    free(s.front);
    free(s.hull);
    free(s.slope);
    free(s.pos);
    free(keys);
    free(lambdas);
    free(heap);
    return rc;
}
