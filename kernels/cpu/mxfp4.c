/* MXFP4 (FORMATS.md §7): 32 E2M1 values sharing one E8M0 exponent. */
#include "cpu_kernels.h"
#include "qk_float.h"

enum { QK = QKC_QK_MXFP4, OFF_QS = 1, BLOCK_BYTES = OFF_QS + QK / 2 };

void qk_cpu_dequant_mxfp4(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += BLOCK_BYTES, dst += QK) {
        const float d = qk_e8m0_to_f32_half(b[0]);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = qk_kvalues_mxfp4[b[OFF_QS + j] & 15] * d;
            dst[j + QK / 2] = qk_kvalues_mxfp4[b[OFF_QS + j] >> 4] * d;
        }
    }
}

/* floorf(log2f(amax)) with glibc's correctly rounded log2f: values just below a power of two
 * round up to it. Going through double reproduces that for every positive float; exponent
 * extraction (frexp) does not. */
static int mxfp4_exponent(float amax) { return (int)floorf((float)log2((double)amax)); }

static int nearest_code(float x, float d) {
    int best = 0;
    float best_err = fabsf(qk_kvalues_mxfp4[0] * d - x);
    for (int c = 1; c < 16; c++) {
        float err = fabsf(qk_kvalues_mxfp4[c] * d - x);
        if (err < best_err) best = c, best_err = err;
    }
    return best;
}

void qk_cpu_quant_mxfp4(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw; /* MXFP4's rounding is fixed by the format: nothing to weigh */
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += BLOCK_BYTES, src += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(src[j]));
        const uint8_t e = amax > 0.0f ? (uint8_t)(mxfp4_exponent(amax) - 2 + 127) : 0;
        const float d = qk_e8m0_to_f32_half(e);
        b[0] = e;
        for (int j = 0; j < QK / 2; j++)
            b[OFF_QS + j] = (uint8_t)(nearest_code(src[j], d) | nearest_code(src[j + QK / 2], d) << 4);
    }
}
