/* F32, F16 and BF16 as "block" formats of one value, so plain conversions run through the
 * same paths as quantization. */
#include "cpu_kernels.h"
#include "qk_float.h"

void qk_cpu_dequant_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

void qk_cpu_quant_f32(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw;
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void qk_cpu_dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = qk_fp16_to_f32(qk_rd16(p + 2 * i));
}

void qk_cpu_quant_f16(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw;
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) qk_wr16(p + 2 * i, qk_f32_to_fp16(src[i]));
}

void qk_cpu_dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = qk_bf16_to_f32(qk_rd16(p + 2 * i));
}

void qk_cpu_quant_bf16(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw;
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) qk_wr16(p + 2 * i, qk_f32_to_bf16(src[i]));
}
