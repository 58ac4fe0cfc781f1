/* Seeded MoE routing for benchmarks (moe_routing.h). */
#include "moe_routing.h"

#include <math.h>
#include <stdlib.h>

/* How uneven a skewed router is: expert popularity is log-normal with this sigma, so the most
 * popular of 256 experts is picked about ten times as often as the median one and the least
 * popular rarely; close to the load imbalance measured on real MoE routers without a balancing
 * loss at inference. */
#define SKEW_SIGMA 1.0

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next_u64(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double u01(rng *r) { return ((double)(next_u64(r) >> 11) + 0.5) * 0x1.0p-53; }

static double gauss(rng *r) { return sqrt(-2.0 * log(u01(r))) * cos(6.283185307179586 * u01(r)); }

const char *qkb_routing_name(qkb_routing r) { return r == QKB_ROUTING_SKEWED ? "skewed" : "uniform"; }

/* Picks `take` distinct experts for one token by sequential draws without replacement, each in
 * proportion to its popularity (all equal for uniform routing). */
static void pick(rng *r, const double *pop, double total, int64_t n_expert, int64_t take, unsigned char *used,
                 int32_t *out) {
    for (int64_t s = 0; s < take; s++) {
        double u = u01(r) * total, acc = 0.0;
        int64_t e = -1, last = -1;
        for (int64_t i = 0; i < n_expert; i++) {
            if (used[i]) continue;
            last = i;
            acc += pop ? pop[i] : 1.0;
            if (u < acc) {
                e = i;
                break;
            }
        }
        if (e < 0) e = last; /* rounding left u just past the last expert's share */
        used[e] = 1;
        total -= pop ? pop[e] : 1.0;
        out[s] = (int32_t)e;
    }
    for (int64_t s = 0; s < take; s++) used[out[s]] = 0;
}

void qkb_route(qkb_routing routing, uint64_t seed, int64_t n_tokens, int64_t n_used, int64_t n_expert, int32_t *ids,
               float *router) {
    rng r = {seed ^ 0x5DEECE66Dull};
    if (n_expert < 1 || n_used < 1 || n_tokens < 1) return;
    const int64_t distinct = n_used < n_expert ? n_used : n_expert;
    double *pop = NULL, total = (double)n_expert;
    unsigned char *used = calloc((size_t)n_expert, 1);
    if (routing == QKB_ROUTING_SKEWED && (pop = malloc((size_t)n_expert * sizeof *pop)) != NULL) {
        total = 0.0;
        for (int64_t i = 0; i < n_expert; i++) total += pop[i] = exp(SKEW_SIGMA * gauss(&r));
    }
    for (int64_t t = 0; t < n_tokens; t++) {
        int32_t *row = ids + t * n_used;
        if (used) {
            pick(&r, pop, total, n_expert, distinct, used, row);
        } else { /* no memory for the bookkeeping: distinct consecutive experts from a random start */
            int64_t start = (int64_t)(next_u64(&r) % (uint64_t)n_expert);
            for (int64_t s = 0; s < distinct; s++) row[s] = (int32_t)((start + s) % n_expert);
        }
        for (int64_t s = distinct; s < n_used; s++) row[s] = row[s % distinct];
        if (!router) continue;
        /* a softmax over the selected experts' logits, as the router's top-k renormalization gives */
        float *w = router + t * n_used;
        double sum = 0.0;
        for (int64_t s = 0; s < n_used; s++) sum += w[s] = (float)exp(gauss(&r));
        for (int64_t s = 0; s < n_used; s++) w[s] = (float)(w[s] / sum);
    }
    free(pop);
    free(used);
}
