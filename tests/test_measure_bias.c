/* qk_quantize_measure_ex with means: on fresh random inputs (mean squares w above the means'
 * squares a^2, means of both signs, weights per group of rows), the CPU's five sums are those of a
 * float64 reference over the blocks decoded by qk_dequantize, the bias squaring each row's whole
 * sum; without means centered is err and bias is 0; bad means are refused; and a CUDA device, where
 * there is one, gives the CPU's sums but for the order of additions. */
#include "qkern.h"
#include "test_util.h"

static tu_rng rng;
static qk_context *cpu, *gpu;

typedef struct measure_case {
    qk_type type;
    int64_t rows, cols, groups;
    float *x, *w, *a;
    uint8_t *q;
    size_t qbytes;
} measure_case;

/* Rows of heavy-tailed values; per group and column a mean a of either sign and a mean square
 * w = a^2 + v (v > 0), so w - a^2 is never clamped and the bias is a large share of the error. */
static measure_case case_make(qk_type type, int64_t rows, int64_t cols, int64_t groups) {
    measure_case c = {type, rows, cols, groups, NULL, NULL, NULL, NULL, 0};
    const size_t n = (size_t)(rows * cols), nw = (size_t)(cols * groups);
    c.qbytes = qk_type_row_bytes(type, cols) * (size_t)rows;
    c.x = tu_poisoned(n * 4), c.w = tu_poisoned(nw * 4), c.a = tu_poisoned(nw * 4), c.q = tu_poisoned(c.qbytes);
    for (size_t i = 0; i < n; i++) c.x[i] = 0.05f * tu_gauss(&rng) * (i % 61 == 7 ? 6.0f : 1.0f);
    for (size_t i = 0; i < nw; i++) {
        const double a = (tu_u01(&rng) < 0.5 ? -1.0 : 1.0) * 2.0 * tu_u01(&rng), v = 0.05 + exp(tu_gauss(&rng));
        c.a[i] = (float)a;
        c.w[i] = (float)(a * a + v);
    }
    return c;
}

static void case_free(measure_case *c) { free(c->x), free(c->w), free(c->a), free(c->q); }

static qk_quantize_desc case_desc(const measure_case *c, uint8_t *dst) {
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = c->type, d.src_type = QK_TYPE_F32, d.rows = c->rows, d.cols = c->cols;
    d.src = qk_host(c->x, (size_t)(c->rows * c->cols) * 4);
    d.dst = qk_host(dst, c->qbytes);
    d.imatrix = c->w, d.imatrix_len = c->cols * c->groups;
    return d;
}

static qk_status measure(qk_context *ctx, const measure_case *c, uint8_t *dst, int with_means, qk_quantize_error *e) {
    qk_quantize_desc d = case_desc(c, dst);
    qk_measure_desc m = qk_measure_default_desc();
    m.weights = c->w, m.weights_len = c->cols * c->groups, m.means = with_means ? c->a : NULL;
    return qk_quantize_measure_ex(ctx, &d, &m, e);
}

static int rel_close(double got, double want, double tol) { return fabs(got - want) <= tol * fabs(want) + 1e-300; }

/* The definitions of qkern.h, in float64 over x and the decoded blocks: column-major for the
 * per-value sums (another order than the library's), row by row for the bias. */
static void reference(const measure_case *c, const float *y, double ref[5]) {
    const int64_t per = c->rows / c->groups;
    for (int k = 0; k < 5; k++) ref[k] = 0.0;
    for (int64_t col = 0; col < c->cols; col++)
        for (int64_t r = 0; r < c->rows; r++) {
            const size_t i = (size_t)(r * c->cols + col), g = (size_t)(r / per * c->cols + col);
            const double x = c->x[i], d = x - (double)y[i], w = c->w[g], a = c->a[g];
            ref[0] += w * d * d, ref[1] += w * x * x, ref[2] += w, ref[3] += (w - a * a) * d * d;
        }
    for (int64_t r = 0; r < c->rows; r++) {
        double dot = 0.0;
        for (int64_t col = 0; col < c->cols; col++) {
            const size_t i = (size_t)(r * c->cols + col), g = (size_t)(r / per * c->cols + col);
            dot += (double)c->a[g] * ((double)c->x[i] - (double)y[i]);
        }
        ref[4] += dot * dot;
    }
}

static const qk_type TYPES[] = {QK_TYPE_Q4_K, QK_TYPE_IQ4_XS, QK_TYPE_Q8_0, QK_TYPE_Q2_K};

/* The CPU's sums with means are the float64 reference's to 1e-9, for blocks that are
 * qk_quantize's; the bias is a sizeable part of the error, so a missing or misplaced square
 * could not hide in the tolerance. */
static void test_cpu_sums_match_float64_reference(void) {
    for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++) {
        const char *name = qk_type_name(TYPES[t]);
        measure_case c = case_make(TYPES[t], 12, 1024, 3);
        qk_quantize_desc d = case_desc(&c, c.q);
        uint8_t *q0 = tu_poisoned(c.qbytes);
        d.dst = qk_host(q0, c.qbytes);
        CHECK(qk_quantize(cpu, &d) == QK_OK, "%s quantize: %s", name, qk_last_error(cpu));
        qk_quantize_error e = {-1, -1, -1, -1, -1};
        CHECK(measure(cpu, &c, c.q, 1, &e) == QK_OK, "%s measure: %s", name, qk_last_error(cpu));
        CHECK(!memcmp(q0, c.q, c.qbytes), "%s: measure wrote other blocks than qk_quantize", name);
        float *y = tu_poisoned((size_t)(c.rows * c.cols) * 4);
        qk_dequantize_desc dq = qk_dequantize_default_desc();
        dq.type = c.type, dq.dst_type = QK_TYPE_F32, dq.rows = c.rows, dq.cols = c.cols;
        dq.src = qk_host(c.q, c.qbytes);
        dq.dst = qk_host(y, (size_t)(c.rows * c.cols) * 4);
        CHECK(qk_dequantize(cpu, &dq) == QK_OK, "%s dequantize: %s", name, qk_last_error(cpu));
        double ref[5];
        reference(&c, y, ref);
        const double got[5] = {e.err, e.signal, e.weight, e.centered, e.bias};
        static const char *const what[5] = {"err", "signal", "weight", "centered", "bias"};
        for (int k = 0; k < 5; k++)
            CHECK(rel_close(got[k], ref[k], 1e-9), "%s %s: %.17g, the float64 reference %.17g", name, what[k], got[k],
                  ref[k]);
        CHECK(ref[4] > 0.05 * ref[3], "%s: the bias (%g) is too small a share of the error (%g) to test", name, ref[4],
              ref[3]);
        printf("%s: err %.6g, centered %.6g, bias %.6g\n", name, ref[0], ref[3], ref[4]);

        qk_quantize_error p;
        CHECK(measure(cpu, &c, c.q, 0, &p) == QK_OK, "%s measure without means: %s", name, qk_last_error(cpu));
        CHECK(p.centered == p.err && p.bias == 0.0 && p.err == e.err && p.signal == e.signal && p.weight == e.weight,
              "%s without means: err %.17g centered %.17g bias %g (with means err %.17g)", name, p.err, p.centered,
              p.bias, e.err);
        free(y), free(q0);
        case_free(&c);
    }
}

/* w below a^2 (a merge of files, or rounding) counts as 0 in centered, never as a negative error. */
static void test_centered_clamps_at_zero(void) {
    measure_case c = case_make(QK_TYPE_Q8_0, 2, 256, 1);
    for (int64_t i = 0; i < c.cols; i++) c.w[i] = 0.5f * c.a[i] * c.a[i];
    qk_quantize_error e;
    CHECK(measure(cpu, &c, c.q, 1, &e) == QK_OK, "clamp: %s", qk_last_error(cpu));
    CHECK(e.centered == 0.0 && e.bias > 0.0 && e.err > 0.0, "clamp: centered %g bias %g err %g", e.centered, e.bias,
          e.err);
    case_free(&c);
}

static void test_bad_means_are_refused(void) {
    measure_case c = case_make(QK_TYPE_Q4_K, 3, 256, 1);
    qk_quantize_desc d = case_desc(&c, c.q);
    qk_measure_desc m = qk_measure_default_desc();
    qk_quantize_error e;
    m.means = c.a;
    CHECK(qk_quantize_measure_ex(cpu, &d, &m, &e) == QK_ERR_INVALID_ARG, "means without weights accepted");
    CHECK(strstr(qk_last_error(cpu), "means without weights"), "message: %s", qk_last_error(cpu));
    m.weights = c.w, m.weights_len = c.cols;
    c.a[17] = NAN;
    CHECK(qk_quantize_measure_ex(cpu, &d, &m, &e) == QK_ERR_VALUE && strstr(qk_last_error(cpu), "means[17]"),
          "a NaN mean: %s", qk_last_error(cpu));
    c.a[17] = 0.0f;
    m.struct_size = sizeof m - 1;
    CHECK(qk_quantize_measure_ex(cpu, &d, &m, &e) == QK_ERR_INVALID_ARG, "a short qk_measure_desc accepted");
    CHECK(qk_quantize_measure_ex(cpu, &d, NULL, &e) == QK_ERR_INVALID_ARG, "a NULL qk_measure_desc accepted");
    case_free(&c);
}

/* The device's sums are the CPU's but for the order of additions, its blocks the CPU's, and two
 * calls agree bit for bit. Shapes: rows of more parts than a warp has lanes, and more rows than
 * the bias kernel's grid has warps (its rows wrap around). */
static void test_cuda_matches_cpu(void) {
    if (!gpu) {
        printf("skipped: the CUDA comparison (no CUDA device: %s)\n", qk_last_error(NULL));
        return;
    }
    static const int64_t shapes[][3] = {{12, 2048, 3}, {9000, 256, 9}};
    for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const char *name = qk_type_name(TYPES[t]);
            measure_case c = case_make(TYPES[t], shapes[s][0], shapes[s][1], shapes[s][2]);
            uint8_t *qg = tu_poisoned(c.qbytes);
            qk_quantize_error ec, eg, eg2;
            CHECK(measure(cpu, &c, c.q, 1, &ec) == QK_OK, "%s cpu: %s", name, qk_last_error(cpu));
            CHECK(measure(gpu, &c, qg, 1, &eg) == QK_OK, "%s cuda: %s", name, qk_last_error(gpu));
            CHECK(measure(gpu, &c, qg, 1, &eg2) == QK_OK, "%s cuda again: %s", name, qk_last_error(gpu));
            CHECK(!memcmp(c.q, qg, c.qbytes), "%s %lldx%lld: the device's blocks differ from the CPU's", name,
                  (long long)c.rows, (long long)c.cols);
            const double g[5] = {eg.err, eg.signal, eg.weight, eg.centered, eg.bias},
                         h[5] = {ec.err, ec.signal, ec.weight, ec.centered, ec.bias};
            for (int k = 0; k < 5; k++)
                CHECK(rel_close(g[k], h[k], 1e-9), "%s %lldx%lld sum %d: cuda %.17g, cpu %.17g", name,
                      (long long)c.rows, (long long)c.cols, k, g[k], h[k]);
            CHECK(!memcmp(&eg, &eg2, sizeof eg), "%s: two calls on the device give different sums", name);
            qk_quantize_error pg;
            CHECK(measure(gpu, &c, qg, 0, &pg) == QK_OK && pg.bias == 0.0 && pg.centered == pg.err,
                  "%s cuda without means: centered %.17g err %.17g bias %g", name, pg.centered, pg.err, pg.bias);
            free(qg);
            case_free(&c);
        }
}

int main(void) {
    rng.s = tu_seed();
    qk_context_params p = qk_context_default_params();
    p.device = "cpu";
    p.n_threads = 2;
    if (qk_context_create(&p, &cpu) != QK_OK) return fprintf(stderr, "cpu: %s\n", qk_last_error(NULL)), 1;
    p.device = "cuda:0";
    if (qk_context_create(&p, &gpu) != QK_OK) gpu = NULL;

    test_cpu_sums_match_float64_reference();
    test_centered_clamps_at_zero();
    test_bad_means_are_refused();
    test_cuda_matches_cpu();

    qk_context_destroy(gpu);
    qk_context_destroy(cpu);
    return tu_finish();
}
