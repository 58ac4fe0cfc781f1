/* A parallel loop over [0, n) for the CPU backend: workers take chunks of `grain` items
 * from a shared counter, so uneven rows (IQ searches vary per block) balance themselves. */
#ifndef QK_PARALLEL_H
#define QK_PARALLEL_H

#include <stdint.h>

/* fn(arg, worker, begin, end) runs on chunks; worker is in [0, workers) and names a
 * per-worker scratch slot. The caller's thread is worker 0; if threads cannot be started,
 * fewer workers run the whole range, so the loop always completes. */
typedef void (*qk_parallel_fn)(void *arg, int worker, int64_t begin, int64_t end);

void qk_parallel_for(int workers, int64_t n, int64_t grain, qk_parallel_fn fn, void *arg);

/* Online processors, at least 1. */
int qk_cpu_count(void);

#endif
