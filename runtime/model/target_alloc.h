/* Target size allocation (issue 17): one quantization type per tensor, chosen to fit a byte
 * budget at the lowest total predicted error. Pure logic over numbers the caller supplies (each
 * candidate's bytes and error): no files, no devices, no format table. */
#ifndef QK_TARGET_ALLOC_H
#define QK_TARGET_ALLOC_H

#include <stddef.h>
#include <stdint.h>

typedef struct qk_alloc_option {
    int type;       /* a qk_type, opaque to the solver */
    uint64_t bytes; /* the tensor's size in this type */
    double error;   /* its predicted error (>= 0; the solver minimizes the sum) */
} qk_alloc_option;

typedef struct qk_alloc_tensor {
    const qk_alloc_option *options; /* candidates, any order */
    int n_options;                  /* >= 1 */
} qk_alloc_tensor;
/* (a pinned tensor is passed with exactly one option) */

/* Chooses choice[i] (an index into t[i].options) for every tensor so that the total bytes are at
 * most budget and the total error is as low as this method finds: Lagrangian relaxation over each
 * tensor's lower convex hull of (bytes, error), bisection on the multiplier, then a greedy fill of
 * the bytes left by the best error reduction per byte. Deterministic (same inputs, same choice; ties
 * broken by bytes then option index). Returns 0, or -1 when even the smallest options exceed the
 * budget. *min_bytes and *max_bytes (either may be NULL) receive the smallest and largest totals
 * reachable, so the caller can name the reachable range.
 *
 * More precisely: *min_bytes is the sum of each tensor's smallest option; *max_bytes the sum of
 * each tensor's least-error option (the smallest such), the largest total the solver ever uses: a
 * budget of at least *max_bytes gives every tensor its least-error option. On -1, choice[] holds
 * the smallest options (least error among equal sizes). Returns -2, with choice[] and the totals
 * unspecified, on a bad argument (t or choice NULL with n > 0, n_options < 1, options NULL, an
 * error that is negative, NaN or infinite) or when out of memory. Totals saturate at UINT64_MAX. */
int qk_alloc_solve(const qk_alloc_tensor *t, size_t n, uint64_t budget, int *choice, uint64_t *min_bytes,
                   uint64_t *max_bytes);

#endif
