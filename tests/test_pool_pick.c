/* The several-device pool's hand-out rule (pool_pick.h): who converts the next step, from the
 * workers' measured speeds. The cases a pool meets (a cpu beside a GPU, equal GPUs, a worker not
 * yet measured, the slack's edge), then the property that keeps the pool moving: over random
 * speeds and loads, the worker that would finish a step first never declines it, and so a free
 * worker that declines always has a sooner one to wait for (the seed is printed; QK_TEST_SEED
 * replays one). */
#include "pool_pick.h"
#include "test_util.h"

static qk_pool_worker_view view(double rate, int busy, double free_in) {
    qk_pool_worker_view v = {rate, free_in, busy};
    return v;
}

static const double STEP = 64e6; /* bytes of a step */

/* A worker with no rate yet takes the step, however fast the others are: it is measured on it. */
static void test_unmeasured_worker_takes_its_first_step(void) {
    qk_pool_worker_view w[2] = {view(0.0, 0, 0.0), view(5e9, 0, 0.0)};
    CHECK(qk_pool_takes(w, 2, 0, STEP), "an unmeasured worker declined its first step");
    /* and a measured one does not wait for one that is not */
    w[0] = view(0.0, 1, 0.0);
    w[1] = view(1e8, 0, 0.0);
    CHECK(qk_pool_takes(w, 2, 1, STEP), "a measured worker declined for one not yet measured");
}

/* A cpu (100 MB/s) beside a GPU (5 GB/s): the cpu declines while the GPU is free or about to be;
 * it takes the step only where the GPU is busy long enough for the cpu to finish first by the
 * slack. The GPU always takes. */
static void test_cpu_beside_gpu_declines(void) {
    qk_pool_worker_view w[2] = {view(1e8, 0, 0.0), view(5e9, 0, 0.0)};
    CHECK(!qk_pool_takes(w, 2, 0, STEP), "the cpu took a step the free GPU does 50x sooner");
    CHECK(qk_pool_takes(w, 2, 1, STEP), "the GPU declined");
    w[1] = view(5e9, 1, 0.005);
    CHECK(!qk_pool_takes(w, 2, 0, STEP), "the cpu took a step the GPU, free in 5 ms, does sooner");
    w[1] = view(5e9, 1, 1.0); /* GPU: 1 s + 12.8 ms; cpu: 0.64 s, less than half of it */
    CHECK(qk_pool_takes(w, 2, 0, STEP), "the cpu declined although the GPU is busy for a second more");
}

/* Equal devices never decline each other, busy or free, nor does one whose first step was slow
 * (measured at half its speed) against an equal one. */
static void test_equal_devices_share(void) {
    qk_pool_worker_view w[3] = {view(5e9, 0, 0.0), view(5e9, 0, 0.0), view(5e9, 1, 0.004)};
    for (size_t k = 0; k < 2; k++) CHECK(qk_pool_takes(w, 3, k, STEP), "equal worker %zu declined", k);
    w[0] = view(2.5e9, 0, 0.0);
    CHECK(qk_pool_takes(w, 3, 0, STEP), "a worker measured at half an equal one's speed declined");
}

/* The slack's edge: against a free worker, 1.9 times slower takes, 2.1 times slower declines. */
static void test_slack_edge(void) {
    qk_pool_worker_view w[2] = {view(1e9 / 1.9, 0, 0.0), view(1e9, 0, 0.0)};
    CHECK(qk_pool_takes(w, 2, 0, STEP), "a worker 1.9x slower declined (slack %.1f)", QK_POOL_SLACK);
    w[0].rate = 1e9 / 2.1;
    CHECK(!qk_pool_takes(w, 2, 0, STEP), "a worker 2.1x slower took the step (slack %.1f)", QK_POOL_SLACK);
}

/* Random pools of 1 to 8 workers (rates over four orders of magnitude, some unmeasured, some
 * busy): the free worker with the soonest finish takes the step; a free worker that declines
 * has a measured worker that would finish at least QK_POOL_SLACK times sooner. */
static void test_soonest_worker_always_takes(tu_rng *rng) {
    int bad = 0;
    for (int trial = 0; trial < 20000 && bad < 5; trial++) {
        qk_pool_worker_view w[8];
        const size_t n = 1 + tu_next(rng) % 8;
        for (size_t j = 0; j < n; j++) {
            const double rate = tu_u01(rng) < 0.15 ? 0.0 : 1e6 * pow(10.0, 4.0 * tu_u01(rng));
            const int busy = tu_u01(rng) < 0.5;
            w[j] = view(rate, busy, busy && rate > 0.0 ? 2.0 * tu_u01(rng) : 0.0);
        }
        const double bytes = 1e5 + 1e8 * tu_u01(rng);
        size_t best = n;
        double best_t = 0.0;
        for (size_t j = 0; j < n; j++) {
            if (!(w[j].rate > 0.0)) continue;
            const double t = w[j].free_in + bytes / w[j].rate;
            if (best == n || t < best_t) best = j, best_t = t;
        }
        for (size_t k = 0; k < n; k++) {
            if (w[k].busy) continue; /* only a free worker asks */
            const int takes = qk_pool_takes(w, n, k, bytes);
            if (k == best && !takes) {
                CHECK(0, "trial %d: worker %zu, the soonest (%.3g s), declined", trial, k, best_t);
                bad++;
            }
            if (!takes && !(w[k].rate > 0.0 && best < n && QK_POOL_SLACK * best_t < bytes / w[k].rate)) {
                CHECK(0, "trial %d: worker %zu declined with no worker %.1fx sooner", trial, k, QK_POOL_SLACK);
                bad++;
            }
        }
    }
    CHECK(!bad, "%d random pools broke the rule", bad);
}

int main(void) {
    tu_rng rng = {tu_seed()};
    test_unmeasured_worker_takes_its_first_step();
    test_cpu_beside_gpu_declines();
    test_equal_devices_share();
    test_slack_edge();
    test_soonest_worker_always_takes(&rng);
    return tu_finish();
}
