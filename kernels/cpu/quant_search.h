/* The scale searches shared by the legacy-with-imatrix, K-quant and IQ encoders
 * (FORMATS.md §9). Each runs in element order with sequential fp32 sums and no fused
 * multiply-adds, exactly as the format reference describes, so a GPU thread that runs the
 * same code gets the same bytes. n <= 256 everywhere. */
#ifndef QK_QUANT_SEARCH_H
#define QK_QUANT_SEARCH_H

#include <stdint.h>

/* §9.1 symmetric search. Codes L[i] = l + nmax (0..2*nmax-1); w NULL means x^2.
 * Returns the least-squares scale (dequant of code c is (c - nmax) * scale). */
float qk_make_qx(int n, int nmax, const float *x, int8_t *L, const float *w);

/* §9.2 Q3_K reference: base step plus up to 5 rounds of coordinate descent (weights x^2).
 * Codes L[i] = l + nmax. Returns the scale. */
float qk_make_q3(int n, int nmax, const float *x, int8_t *L);

/* §9.3 scale+min searches. Codes L[i] in 0..nmax; *the_min receives the min magnitude
 * (>= 0; dequant is scale*L - the_min). Laux is n bytes of scratch. use_mad selects the
 * absolute-error metric. make_qkx2 needs weights; make_qkx3 accepts w == NULL (then w = x^2). */
float qk_make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, uint8_t *Laux,
                   float rmin, float rdelta, int nstep, int use_mad);
float qk_make_qkx3(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, uint8_t *Laux,
                   float rmin, float rdelta, int nstep, int use_mad);

/* §9.4 quantizes non-negative values (sub-block scales) to codes L[i] in 0..nmax with
 * weights w. Returns the scale (0 if max(x) < 1e-15, codes then 0). */
float qk_make_qp(int n, int nmax, const float *x, uint8_t *L, const float *w);

#endif
