/* Routing for MoE benchmarks, drawn from a fixed seed so that runs compare: each token selects
 * n_used distinct experts, either uniformly or skewed towards a few popular experts (real
 * routers are uneven: some experts take several times their share, some few tokens). */
#ifndef QKB_MOE_ROUTING_H
#define QKB_MOE_ROUTING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qkb_routing { QKB_ROUTING_UNIFORM = 0, QKB_ROUTING_SKEWED = 1 } qkb_routing;

/* "uniform" or "skewed". */
const char *qkb_routing_name(qkb_routing r);

/* Fills ids[n_tokens][n_used] with distinct experts per token (n_used <= n_expert; if n_used
 * exceeds n_expert, experts repeat) and, when router is not NULL, router[n_tokens][n_used] with
 * positive weights summing to 1 per token. Same arguments, same output. */
void qkb_route(qkb_routing r, uint64_t seed, int64_t n_tokens, int64_t n_used, int64_t n_expert, int32_t *ids,
               float *router);

#ifdef __cplusplus
}
#endif

#endif
