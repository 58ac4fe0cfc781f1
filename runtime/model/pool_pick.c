/* The several-device pool's rule for who converts the next step (pool_pick.h). */
#include "pool_pick.h"

int qk_pool_takes(const qk_pool_worker_view *w, size_t n, size_t k, double bytes) {
    if (!(w[k].rate > 0.0)) return 1;
    const double mine = bytes / w[k].rate;
    for (size_t j = 0; j < n; j++) {
        if (j == k || !(w[j].rate > 0.0)) continue;
        const double theirs = (w[j].busy ? w[j].free_in : 0.0) + bytes / w[j].rate;
        if (QK_POOL_SLACK * theirs < mine) return 0;
    }
    return 1;
}
