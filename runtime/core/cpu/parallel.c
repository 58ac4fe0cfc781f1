#include "parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define MAX_WORKERS 256

typedef struct loop {
    atomic_llong next;
    int64_t n, grain;
    qk_parallel_fn fn;
    void *arg;
} loop;

typedef struct worker {
    loop *l;
    int index;
} worker;

static void run(loop *l, int index) {
    for (;;) {
        int64_t begin = atomic_fetch_add(&l->next, l->grain);
        if (begin >= l->n) return;
        int64_t end = begin + l->grain < l->n ? begin + l->grain : l->n;
        l->fn(l->arg, index, begin, end);
    }
}

static void *worker_main(void *p) {
    worker *w = p;
    run(w->l, w->index);
    return NULL;
}

void qk_parallel_for(int workers, int64_t n, int64_t grain, qk_parallel_fn fn, void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    if (workers > chunks) workers = (int)chunks;
    if (workers > MAX_WORKERS) workers = MAX_WORKERS;
    if (workers < 1) workers = 1;
    loop l = {.n = n, .grain = grain, .fn = fn, .arg = arg};
    atomic_init(&l.next, 0);
    pthread_t tid[MAX_WORKERS];
    worker w[MAX_WORKERS];
    int started = 0;
    for (int i = 1; i < workers; i++) {
        w[i] = (worker){&l, i};
        if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0) break;
        started = i;
    }
    run(&l, 0);
    for (int i = 1; i <= started; i++) pthread_join(tid[i], NULL);
}

int qk_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
