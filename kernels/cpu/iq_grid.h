/* Lattice maps of the IQ1/IQ2/IQ3 encoders (FORMATS.md §9.5).
 *
 * A group of `ncoord` values is encoded as levels l_k (coordinate value 2*l_k+1), packed
 * into a code u = sum l_k << (bits*k). map[u] >= 0 when u is a grid point (the grid index);
 * otherwise -1-map[u] is the offset into `neighbours` of a list: count, then the grid
 * indices whose distance to u is among the grid's `nwant` smallest distinct distances,
 * ordered by (distance, index). The maps are built once per process, on first use; the CUDA
 * backend copies them to each device it opens (kernels/cuda/iquants.cu). */
#ifndef QK_IQ_GRID_H
#define QK_IQ_GRID_H

#include <stddef.h>
#include <stdint.h>

#include "qk_hd.h"

typedef enum qk_iq_grid_id {
    QK_IQ_GRID_2BIT_256,  /* IQ2_XXS: 8 coords x 2 bits, nwant 2 */
    QK_IQ_GRID_2BIT_512,  /* IQ2_XS:  8 coords x 2 bits, nwant 2 */
    QK_IQ_GRID_2BIT_1024, /* IQ2_S:   8 coords x 2 bits, nwant 1 */
    QK_IQ_GRID_3BIT_256,  /* IQ3_XXS: 4 coords x 3 bits, nwant 2 */
    QK_IQ_GRID_3BIT_512,  /* IQ3_S:   4 coords x 3 bits, nwant 3 */
    QK_IQ_GRID_1BIT_2048, /* IQ1_S, IQ1_M: 8 coords x 2 bits (levels 0,1,2 = -1,0,+1), nwant 3 */
    QK_IQ_GRID_COUNT
} qk_iq_grid_id;

typedef struct qk_iq_grid {
    int ncoord;            /* values per group: 8 or 4 */
    int bits;              /* bits per coordinate in a code: 2 or 3 */
    int ngrid;             /* grid points */
    int nwant;             /* distinct neighbour distances kept */
    int map_size;          /* codes 0..map_size-1 are valid keys of map */
    const uint16_t *codes; /* the grid points' codes (kgrid table), ascending */
    const int32_t *map;    /* see above */
    const uint16_t *neighbours;
    size_t neighbours_len; /* uint16_t entries in neighbours (for copying the map to a device) */
} qk_iq_grid;

#ifdef __cplusplus
extern "C" {
#endif

/* The map of grid `id`, built on first call (thread-safe). NULL only if memory ran out. */
const qk_iq_grid *qk_iq_grid_get(qk_iq_grid_id id);

#ifdef __cplusplus
}
#endif

/* The neighbour list of a non-grid code: *count entries follow the returned pointer. The
 * encoders run this on the host and, with a device copy of the grid, in CUDA threads. */
static inline QK_HD const uint16_t *qk_iq_grid_neighbours(const qk_iq_grid *g, uint32_t u, int *count) {
    const uint16_t *p = g->neighbours + (-1 - g->map[u]);
    *count = p[0];
    return p + 1;
}

#endif
