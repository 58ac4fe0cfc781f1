/* The MoE dot path's 8-bit part decoders (kernels/cuda/dot_i8_*.h) against the CPU reference:
 * for every quantized format, on ggml's golden blocks (quantizer outputs and random blocks, whose
 * bit patterns no quantizer produces), every part's s[i / 16] * q_i + o[i / 16] is the value the
 * CPU dequantizer gives (test_golden holds that one bit-exact with ggml), to within a few ulp of
 * the part's largest value. The decoders are C and CUDA from one text (qk_hd.h): this runs them on
 * the host, with no GPU. */
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

int main(int argc, char **argv) {
    golden_dir = argc > 1 ? argv[1] : "tests/data/golden";
    for (int t = 0; t < qk_type_count(); t++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(t), &ti);
        if (!ti.is_quantized) continue;
        const decoder *dec = decoder_of((int)ti.type);
        CHECK(dec != NULL, "%s: no 8-bit part decoder", ti.name);
        if (!dec) continue;
        double worst = 0;
        int files = 0;
        for (size_t i = 0; i < sizeof golden_cases / sizeof golden_cases[0]; i++)
            if (golden_cases[i].type_id == (int)ti.type) check_file(&golden_cases[i], dec, &ti, &worst), files++;
        CHECK(files > 0, "%s: no golden blocks to check the decoder on", ti.name);
        printf("%-8s %d golden files, worst |s*q+o - value| / max|value| of a part: %.2g\n", ti.name, files, worst);
    }
    return tu_finish();
}
