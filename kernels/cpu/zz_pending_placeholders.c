/* DEVELOPMENT ONLY: weak placeholders so the library links while format families are being
 * written in parallel. Real definitions override these. Deleted before the work lands. */
#include <string.h>
#include "cpu_kernels.h"
__attribute__((weak)) void qk_cpu_dequant_f32(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_f32(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_f16(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_f16(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_bf16(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_bf16(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q4_0(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q4_0(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q4_1(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q4_1(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q5_0(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q5_0(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q5_1(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q5_1(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q8_0(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q8_0(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q2_k(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q2_k(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q3_k(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q3_k(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q4_k(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q4_k(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q5_k(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q5_k(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_q6_k(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_q6_k(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq2_xxs(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq2_xxs(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq2_xs(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq2_xs(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq2_s(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq2_s(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq3_xxs(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq3_xxs(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq3_s(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq3_s(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq1_s(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq1_s(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq1_m(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq1_m(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq4_nl(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq4_nl(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_iq4_xs(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_iq4_xs(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_mxfp4(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_mxfp4(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_tq1_0(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_tq1_0(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
__attribute__((weak)) void qk_cpu_dequant_tq2_0(const void *s, float *d, int64_t n) { (void)s; memset(d, 0xff, (size_t)n * 4); }
__attribute__((weak)) void qk_cpu_quant_tq2_0(const float *s, void *d, int64_t n, const float *w) { (void)s; (void)d; (void)n; (void)w; }
