#include "iq_grid.h"

#include <pthread.h>
#include <stdlib.h>

#include "qk_tables.h"

typedef struct grid_spec {
    int ncoord, bits, ngrid, nwant, map_size;
    const uint16_t *codes;
} grid_spec;

static const grid_spec specs[QK_IQ_GRID_COUNT] = {
    [QK_IQ_GRID_2BIT_256] = {8, 2, 256, 2, 43692, qk_kgrid_2bit_256},
    [QK_IQ_GRID_2BIT_512] = {8, 2, 512, 2, 43692, qk_kgrid_2bit_512},
    [QK_IQ_GRID_2BIT_1024] = {8, 2, 1024, 1, 43692, qk_kgrid_2bit_1024},
    [QK_IQ_GRID_3BIT_256] = {4, 3, 256, 2, 4096, qk_kgrid_3bit_256},
    [QK_IQ_GRID_3BIT_512] = {4, 3, 512, 3, 4096, qk_kgrid_3bit_512},
    [QK_IQ_GRID_1BIT_2048] = {8, 2, 2048, 3, 43692, qk_kgrid_1bit_2048},
};

static qk_iq_grid grids[QK_IQ_GRID_COUNT];
static int built[QK_IQ_GRID_COUNT];
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

static int code_level(uint32_t u, int k, int bits) { return (int)(u >> (bits * k)) & ((1 << bits) - 1); }

/* Squared distance in 2l+1 units between two codes. */
static int code_dist(uint32_t a, uint32_t b, const grid_spec *s) {
    int d = 0;
    for (int k = 0; k < s->ncoord; k++) {
        int t = 2 * (code_level(a, k, s->bits) - code_level(b, k, s->bits));
        d += t * t;
    }
    return d;
}

/* Keys whose levels lie outside the encoders' clamp range (level 3 with 2-bit codes) are
 * never looked up; they get an empty list rather than a search. */
static int code_in_range(uint32_t u, const grid_spec *s) {
    int maxl = s->bits == 2 ? 2 : 7;
    for (int k = 0; k < s->ncoord; k++)
        if (code_level(u, k, s->bits) > maxl) return 0;
    return (u >> (s->bits * s->ncoord)) == 0;
}

static int build(qk_iq_grid *g, const grid_spec *s) {
    int32_t *map = malloc(sizeof(int32_t) * (size_t)s->map_size);
    int *dist = malloc(sizeof(int) * (size_t)s->ngrid);
    size_t cap = 1u << 16, used = 0;
    uint16_t *nb = malloc(sizeof(uint16_t) * cap);
    if (!map || !dist || !nb) goto fail;
    for (int u = 0; u < s->map_size; u++) map[u] = INT32_MIN;
    for (int j = 0; j < s->ngrid; j++) map[s->codes[j]] = j;

    for (int u = 0; u < s->map_size; u++) {
        if (map[u] >= 0) continue;
        if (used + 2 + (size_t)s->ngrid > cap) {
            while (used + 2 + (size_t)s->ngrid > cap) cap *= 2;
            uint16_t *grown = realloc(nb, sizeof(uint16_t) * cap);
            if (!grown) goto fail;
            nb = grown;
        }
        map[u] = -1 - (int32_t)used;
        if (!code_in_range((uint32_t)u, s)) {
            nb[used++] = 0;
            continue;
        }
        /* the nwant smallest distinct distances, then every point within the largest of them */
        int lim[3] = {INT32_MAX, INT32_MAX, INT32_MAX};
        for (int j = 0; j < s->ngrid; j++) {
            int d = dist[j] = code_dist((uint32_t)u, s->codes[j], s);
            for (int w = 0; w < s->nwant; w++) {
                if (d == lim[w]) break;
                if (d < lim[w]) {
                    for (int v = s->nwant - 1; v > w; v--) lim[v] = lim[v - 1];
                    lim[w] = d;
                    break;
                }
            }
        }
        int cut = INT32_MIN;
        for (int w = 0; w < s->nwant; w++)
            if (lim[w] != INT32_MAX) cut = lim[w];
        size_t head = used++;
        int count = 0;
        /* ordered by (distance, index): one pass per kept distance, indices ascending */
        for (int w = 0; w < s->nwant && lim[w] <= cut; w++)
            for (int j = 0; j < s->ngrid; j++)
                if (dist[j] == lim[w]) nb[used + count++] = (uint16_t)j;
        nb[head] = (uint16_t)count;
        used += (size_t)count;
    }
    free(dist);
    g->ncoord = s->ncoord;
    g->bits = s->bits;
    g->ngrid = s->ngrid;
    g->nwant = s->nwant;
    g->map_size = s->map_size;
    g->codes = s->codes;
    g->map = map;
    g->neighbours = nb;
    g->neighbours_len = used;
    return 1;
fail:
    free(map);
    free(dist);
    free(nb);
    return 0;
}

const qk_iq_grid *qk_iq_grid_get(qk_iq_grid_id id) {
    if ((unsigned)id >= QK_IQ_GRID_COUNT) return NULL;
    const qk_iq_grid *out = NULL;
    pthread_mutex_lock(&build_lock);
    if (built[id] || (built[id] = build(&grids[id], &specs[id]))) out = &grids[id];
    pthread_mutex_unlock(&build_lock);
    return out;
}
