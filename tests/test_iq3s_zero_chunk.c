/* IQ3_S with an exactly-zero 32-value chunk (FORMATS.md §6.10, "ggml bug, do not copy"):
 * ggml skips such a chunk without advancing its qs/signs write positions, so every later chunk
 * of the super-block decodes to garbage (relative RMS error about 1.6). qkern keeps each chunk
 * in its own slots: the other chunks decode as well as usual and the zero chunk near zero. */
#include "cpu_kernels.h"
#include "test_util.h"

enum { QK = 256, CHUNK = 32, BLOCKS = 2, N = QK * BLOCKS, IQ3_S_BYTES = 110 };

static double rel_rms(const float *y, const float *x, int n) {
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) {
        e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        s += (double)x[i] * x[i];
    }
    return sqrt(e / s);
}

/* Every chunk position, with and without an imatrix: the zero chunk of super-block 0 decodes
 * to values small against the block's data, and the other chunks have the error of an ordinary
 * IQ3_S encoding: relative RMS over all of them below 0.3 (measured: mean 0.16 per chunk, at
 * most 0.21 over a super-block), and below 0.6 for each one (a chunk with a small scale next to
 * large ones gets a coarse 4-bit scale; measured at most 0.36). ggml's misplaced chunks: ~1.6. */
static void test_zero_chunk_keeps_other_chunks_in_place(tu_rng *rng) {
    float x[N], qw[N];
    for (int i = 0; i < N; i++) qw[i] = (float)exp(1.5 * tu_gauss(rng));
    for (int zero = 0; zero < QK / CHUNK; zero++)
        for (int weighted = 0; weighted < 2; weighted++) {
            for (int i = 0; i < N; i++) x[i] = 0.02f * tu_gauss(rng);
            for (int i = 0; i < CHUNK; i++) x[zero * CHUNK + i] = 0.0f;

            uint8_t *q = tu_poisoned((size_t)BLOCKS * IQ3_S_BYTES);
            float *y = tu_poisoned(sizeof(float) * N);
            qk_cpu_quant_iq3_s(x, q, N, weighted ? qw : NULL);
            qk_cpu_dequant_iq3_s(q, y, N);

            float amax = 0;
            for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[i]));
            float zmax = 0;
            for (int i = 0; i < CHUNK; i++) zmax = fmaxf(zmax, fabsf(y[zero * CHUNK + i]));
            CHECK(zmax <= 0.01f * amax, "zero chunk %d (%s): decodes to |y| up to %g, block max |x| %g", zero,
                  weighted ? "imatrix" : "plain", (double)zmax, (double)amax);

            float xo[N], yo[N];
            int no = 0;
            for (int c = 0; c < N / CHUNK; c++) {
                if (c == zero) continue;
                double r = rel_rms(y + c * CHUNK, x + c * CHUNK, CHUNK);
                CHECK(r < 0.6, "zero chunk %d (%s): chunk %d (super-block %d) has relative RMS error %.3f", zero,
                      weighted ? "imatrix" : "plain", c, c / (QK / CHUNK), r);
                memcpy(xo + no, x + c * CHUNK, sizeof(float) * CHUNK);
                memcpy(yo + no, y + c * CHUNK, sizeof(float) * CHUNK);
                no += CHUNK;
            }
            double r = rel_rms(yo, xo, no);
            CHECK(r < 0.3, "zero chunk %d (%s): the other chunks have relative RMS error %.3f", zero,
                  weighted ? "imatrix" : "plain", r);
            free(y);
            free(q);
        }
}

int main(void) {
    tu_rng rng = {tu_seed()};
    test_zero_chunk_keeps_other_chunks_in_place(&rng);
    return tu_finish();
}
