/* The C interface of the scale searches (FORMATS.md §9) for encoders that are not shared
 * with the GPU; the bodies are in quant_search_block.h. */
#include "quant_search.h"

#include "quant_search_block.h"

float qk_make_qx(int n, int nmax, const float *x, int8_t *L, const float *w) { return qk_hd_make_qx(n, nmax, x, L, w); }

float qk_make_q3(int n, int nmax, const float *x, int8_t *L) { return qk_hd_make_q3(n, nmax, x, L); }

float qk_make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, uint8_t *Laux,
                   float rmin, float rdelta, int nstep, int use_mad) {
    return qk_hd_make_qkx2(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

float qk_make_qkx3(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, uint8_t *Laux,
                   float rmin, float rdelta, int nstep, int use_mad) {
    return qk_hd_make_qkx3(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

float qk_make_qp(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    return qk_hd_make_qp(n, nmax, x, L, w);
}
