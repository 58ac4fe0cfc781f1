/* The MoE dot path's 8-bit part decoders (kernels/cuda/dot_i8_*.h) against the CPU reference:
 * for every quantized format, on ggml's golden blocks (quantizer outputs and random blocks, whose
 * bit patterns no quantizer produces), every part's s[i / 16] * q_i + o[i / 16] is the value the
 * CPU dequantizer gives (test_golden holds that one bit-exact with ggml), to within a few ulp of
 * the part's largest value; and the dot path's arithmetic (moe_kernels.cuh: activations quantized
 * to 8 bits per 32 values, integer dot products per half, the offsets times d * the half sums of the
 * codes) stays within the 8-bit path's bound (DESIGN.md: 1e-2 relative error) of a float64
 * product on ggml's quantized rows for every format. The decoders are C and CUDA from one text
 * (qk_hd.h): this runs them on the host, with no GPU. */
#include <math.h>

#include "cpu_dispatch.h"
#include "dot_i8.h"
#include "dot_i8_fp4.h"
#include "dot_i8_iq4.h"
#include "dot_i8_iquants.h"
#include "dot_i8_kquants.h"
#include "dot_i8_legacy.h"
#include "dot_i8_ternary.h"
#include "golden_index.h"
#include "qkern.h"
#include "test_util.h"

typedef void (*part_decoder)(const uint8_t *b, int p, qk_part_i8 *r);

typedef struct decoder {
    qk_type type;
    part_decoder part;
    int offset; /* QK_I8_OFFSET_<codec> */
} decoder;

/* One row per quantized format of the table: a format without a decoder does not compile. */
#define DECODER_FLOAT(NAME, codec)
#define DECODER_ANY(NAME, codec)                            {QK_TYPE_##NAME, qk_part_i8_##codec, QK_I8_OFFSET_##codec},
#define DECODER_LEGACY                                      DECODER_ANY
#define DECODER_KQUANT                                      DECODER_ANY
#define DECODER_IQUANT                                      DECODER_ANY
#define DECODER_FP4                                         DECODER_ANY
#define DECODER_TERNARY                                     DECODER_ANY
#define DECODER(NAME, codec, id, elems, bytes, family, ...) DECODER_##family(NAME, codec)
static const decoder decoders[] = {QK_FORMATS(DECODER)};
#define N_DECODERS (int)(sizeof decoders / sizeof decoders[0])

static const decoder *decoder_of(int type) {
    for (int i = 0; i < N_DECODERS; i++)
        if ((int)decoders[i].type == type) return &decoders[i];
    return NULL;
}

/* Relative to the part's largest |value|: the products s * q + o are a few f32 roundings away from
 * the dequantizer's, which rounds differently (e.g. d * (sc * q) against (d * sc) * q). */
#define TOLERANCE 1e-6

static const char *golden_dir;

static void check_file(const golden_case *c, const decoder *dec, const qk_type_info *ti, double *worst) {
    size_t qlen;
    uint8_t *q = tu_read_file(golden_dir, c->q_file, &qlen);
    CHECK(q != NULL, "%s: missing golden file %s", c->type_name, c->q_file);
    if (!q) return;
    const size_t nblocks = qlen / (size_t)ti->block_bytes, n = nblocks * (size_t)ti->block_elems;
    float *ref = tu_poisoned(n * sizeof(float));
    qk_cpu_kernels(c->type_id).dequant(q, ref, (int64_t)n);
    const int parts = ti->block_elems / 32;
    int failures = 0, offsets = 0;
    for (size_t b = 0; b < nblocks && failures < 3; b++) {
        for (int p = 0; p < parts && failures < 3; p++) {
            qk_part_i8 r;
            memset(&r, 0xA5, sizeof r); /* poisoned: every field must be written */
            dec->part(q + b * (size_t)ti->block_bytes, p, &r);
            const float *want = ref + b * (size_t)ti->block_elems + (size_t)p * 32;
            double amax = 0;
            for (int i = 0; i < 32; i++) amax = fmax(amax, fabs(want[i]));
            offsets += r.o[0] != 0.0f || r.o[1] != 0.0f;
            for (int i = 0; i < 32; i++) {
                const double got = (double)r.s[i / 16] * qk_part_i8_code(&r, i) + (double)r.o[i / 16];
                const double err = fabs(got - want[i]) / (amax > 0 ? amax : 1.0);
                if (!(err <= *worst)) *worst = err;
                if (!(err <= TOLERANCE)) {
                    CHECK(0, "%s %s: block %zu part %d value %d: s %g * q %d + o %g = %.9g, dequantized %.9g",
                          c->type_name, c->q_file, b, p, i, (double)r.s[i / 16], qk_part_i8_code(&r, i),
                          (double)r.o[i / 16], got, (double)want[i]);
                    failures++;
                    break;
                }
            }
        }
    }
    CHECK(dec->offset || offsets == 0, "%s: QK_I8_OFFSET is 0 but %d parts of %s have an offset", c->type_name, offsets,
          c->q_file);
    free(ref);
    free(q);
}

/* The dot path's bound on the golden rows (k of 256 and more, every output checked): tighter than
 * the GPU matrix's (tests/moe_harness.h: MOE_TOLERANCE_8BIT), whose small cases scatter more. */
#define DOT_PATH_TOLERANCE 1e-2

/* Activations as the MoE test harness draws them: standard Gaussian. (With 1% of them 8 sigma
 * outliers the 8-bit path's error grows to 1-2%: an outlier sets its group's scale.) */
static void draw_x(tu_rng *rng, float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = tu_gauss(rng);
}

/* The dot path's arithmetic on the host, as quantize_x_kernel and moe_dot_kernel do it: x to codes
 * per 32 values (d = max|x| / 127, round to nearest even), then per part
 * d * (s0 * <q, xq>_0 + s1 * <q, xq>_1) + o0 * d * sum(xq_0) + o1 * d * sum(xq_1). */
static double dot_path(const decoder *dec, const qk_type_info *ti, const uint8_t *row, const float *x, int k) {
    float acc = 0.0f;
    for (int P = 0; P < k / 32; P++) {
        int xq[32], half[2] = {0, 0};
        const float d = tu_round_8bit(x + 32 * P, xq);
        for (int i = 0; i < 32; i++) half[i / 16] += xq[i];
        const int parts = ti->block_elems / 32;
        qk_part_i8 r;
        dec->part(row + (size_t)(P / parts) * (size_t)ti->block_bytes, P % parts, &r);
        int s[2] = {0, 0};
        for (int i = 0; i < 32; i++) s[i / 16] += qk_part_i8_code(&r, i) * xq[i];
        float v = d * (r.s[0] * (float)s[0] + r.s[1] * (float)s[1]);
        v += r.o[0] * (d * (float)half[0]) + r.o[1] * (d * (float)half[1]);
        acc += v;
    }
    return acc;
}

/* On the quantizer's rows of one golden file (realistic weights: the K-quants' mins nearly cancel
 * their scaled codes, which an inconsistent offset term would expose), several activation vectors. */
static double check_dot_path(const golden_case *c, const decoder *dec, const qk_type_info *ti, tu_rng *rng) {
    size_t qlen;
    uint8_t *q = tu_read_file(golden_dir, c->q_file, &qlen);
    if (!q) return 0;
    const int k = GOLDEN_COLS, rows = (int)(qlen / qk_type_row_bytes(ti->type, k));
    const size_t row_bytes = qk_type_row_bytes(ti->type, k);
    float *w = tu_poisoned((size_t)k * sizeof(float)), *x = tu_poisoned((size_t)k * sizeof(float));
    /* over 8 activation vectors together: the error of 32 outputs alone varies too much to test */
    double err2 = 0, ref2 = 0;
    for (int v = 0; v < 8; v++) {
        draw_x(rng, x, k);
        for (int r = 0; r < rows; r++) {
            qk_cpu_kernels(c->type_id).dequant(q + (size_t)r * row_bytes, w, k);
            double ref = 0;
            for (int i = 0; i < k; i++) ref += (double)w[i] * x[i];
            const double got = dot_path(dec, ti, q + (size_t)r * row_bytes, x, k);
            err2 += (got - ref) * (got - ref), ref2 += ref * ref;
        }
    }
    const double worst = ref2 > 0 ? sqrt(err2 / ref2) : 0;
    CHECK(worst <= DOT_PATH_TOLERANCE, "%s %s: the dot path's relative error %.3g > %g (QK_TEST_SEED=0x%llx)",
          c->type_name, c->q_file, worst, DOT_PATH_TOLERANCE, (unsigned long long)rng->s);
    free(w);
    free(x);
    free(q);
    return worst;
}

/* qk_ld32n_a2, the same text the device runs: every n at both 2-byte alignments, the span ending
 * its allocation (the sanitizer build sees any read past it), against byte-wise reads. */
static void check_ld32n(tu_rng *rng) {
    for (int n = 1; n <= 8; n++)
        for (int m = 0; m <= 2; m += 2) {
            uint8_t *buf = malloc((size_t)(4 * n + m)); /* malloc's alignment is a multiple of 4 */
            for (int i = 0; i < 4 * n + m; i++) buf[i] = (uint8_t)tu_next(rng);
            uint32_t w[8];
            qk_ld32n_a2(buf + m, n, w);
            for (int k = 0; k < n; k++)
                CHECK(w[k] == qk_rd32(buf + m + 4 * k),
                      "qk_ld32n_a2(p = 4a + %d, n = %d): word %d is 0x%08x, not 0x%08x", m, n, k, w[k],
                      qk_rd32(buf + m + 4 * k));
            free(buf);
        }
}

int main(int argc, char **argv) {
    golden_dir = argc > 1 ? argv[1] : "tests/data/golden";
    const uint64_t seed = tu_seed();
    tu_rng rng = {seed};
    check_ld32n(&rng);
    for (int t = 0; t < qk_type_count(); t++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(t), &ti);
        if (!ti.is_quantized) continue;
        const decoder *dec = decoder_of((int)ti.type);
        CHECK(dec != NULL, "%s: no 8-bit part decoder", ti.name);
        if (!dec) continue;
        double worst = 0, worst_dot = 0;
        int files = 0;
        for (size_t i = 0; i < sizeof golden_cases / sizeof golden_cases[0]; i++) {
            const golden_case *c = &golden_cases[i];
            if (c->type_id != (int)ti.type) continue;
            check_file(c, dec, &ti, &worst), files++;
            if (c->imatrix >= 0) worst_dot = fmax(worst_dot, check_dot_path(c, dec, &ti, &rng));
        }
        CHECK(files > 0, "%s: no golden blocks to check the decoder on", ti.name);
        printf("%-8s %d golden files, worst |s*q+o - value| / max|value| of a part: %.2g; dot path's relative "
               "error: %.2g\n",
               ti.name, files, worst, worst_dot);
    }
    return tu_finish();
}
