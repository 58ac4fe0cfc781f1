/* Which worker of the several-device pool (model_quantize.c) converts the next step. The pool
 * hands steps out in output order to a worker that asks; a worker much slower than another one
 * would hold the writer up (it writes in output order, so it waits for the slow step while the
 * fast device idles: measured on an H100, cuda:0 with the cpu beside it took 1.69 s for a file
 * cuda:0 alone wrote in 0.72 s). So a worker takes a step only where no other worker would be
 * done with it sooner, by the speeds measured so far. Pure logic: no threads, no devices. */
#ifndef QK_POOL_PICK_H
#define QK_POOL_PICK_H

#include <stddef.h>

/* While a worker converts one step, every other worker can convert the two it may hold
 * (POOL_OUTS) before the writer must wait for that step: a worker up to about twice as slow as
 * the fastest adds its throughput without holding the writer up. A device several times slower
 * (a cpu beside a GPU: 10x to 100x by type) declines. The slack also keeps a worker whose first
 * step was slow (a device's first kernel launches load their code) from declining against an
 * equal one while its rate, measured only on the steps it takes, is off by up to that much. */
#define QK_POOL_SLACK 2.0

/* What the rule knows of a worker when one of them asks. */
typedef struct qk_pool_worker_view {
    double rate;    /* input bytes a second over the steps of the next one's type it has converted
                       (of any type before the first of it); 0: none yet */
    double free_in; /* seconds until its step in progress is done at that rate; 0: none in progress */
    int busy;       /* a step in progress */
} qk_pool_worker_view;

/* 1 where worker k of the n (asking, so with no step in progress) should take the next step,
 * of `bytes` input bytes. A worker with no rate yet takes it: its first step measures it (every
 * worker converts at least one step). Otherwise it declines only where another worker with a
 * rate would finish the step in less than a QK_POOL_SLACK-th of its own time, counting from when
 * that one is free (free_in). A worker that declines waits for the next change: the sooner one
 * takes the step when it asks, so every step is taken. */
int qk_pool_takes(const qk_pool_worker_view *w, size_t n, size_t k, double bytes);

#endif
