/* Every type through the public API on fresh random inputs of several shapes:
 * quantize then dequantize stays within a bound set by the type's bits per weight, every
 * output byte is written, rows are independent of threading, f16/bf16 sources and
 * destinations agree with f32 ones, and qk_quantize_measure's sums are the decoded error's. */
#include "qkern.h"
#include "test_util.h"

static qk_context *ctx1, *ctx4; /* one thread, four threads */

static void fill(tu_rng *rng, float *x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        float s = 0.02f * (float)exp2(2.0 * tu_u01(rng) - 1.0);
        for (int64_t c = 0; c < cols; c++) {
            float v = s * tu_gauss(rng);
            if (c % 97 == 13) v *= 8.0f; /* outlier columns */
            x[r * cols + c] = v;
        }
    }
}

static qk_status quantize(qk_context *ctx, qk_type t, qk_type src_type, const void *src, size_t src_bytes, int64_t rows,
                          int64_t cols, void *dst, size_t dst_bytes, const float *im) {
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = t, d.src_type = src_type, d.rows = rows, d.cols = cols;
    d.src = qk_host((void *)src, src_bytes);
    d.dst = qk_host(dst, dst_bytes);
    d.imatrix = im, d.imatrix_len = im ? cols : 0;
    return qk_quantize(ctx, &d);
}

static qk_status dequantize(qk_context *ctx, qk_type t, qk_type dst_type, const void *src, size_t src_bytes,
                            int64_t rows, int64_t cols, void *dst, size_t dst_bytes) {
    qk_dequantize_desc d = qk_dequantize_default_desc();
    d.type = t, d.dst_type = dst_type, d.rows = rows, d.cols = cols;
    d.src = qk_host((void *)src, src_bytes);
    d.dst = qk_host(dst, dst_bytes);
    return qk_dequantize(ctx, &d);
}

static int close_to(double a, double b) { return fabs(a - b) <= 1e-12 * fabs(b) + 1e-300; }

/* qk_quantize_measure: the blocks qk_quantize writes (q), and the weighted sums over x and its
 * decoded y, added here in another order: unweighted, and weighted per group of rows. */
static void check_measure(tu_rng *rng, const qk_type_info *ti, const float *x, const float *y, int64_t rows,
                          int64_t cols, const uint8_t *q, size_t qbytes, const float *im) {
    const int64_t groups = rows % 3 == 0 ? 3 : 1, per = rows / groups;
    float *wt = tu_poisoned((size_t)(cols * groups) * 4);
    uint8_t *qm = tu_poisoned(qbytes);
    for (int64_t i = 0; i < cols * groups; i++) wt[i] = (float)exp(tu_gauss(rng));
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = ti->type, d.src_type = QK_TYPE_F32, d.rows = rows, d.cols = cols;
    d.src = qk_host((void *)x, (size_t)(rows * cols) * 4);
    d.dst = qk_host(qm, qbytes);
    d.imatrix = im, d.imatrix_len = im ? cols : 0;
    for (int weighted = 0; weighted < 2; weighted++) {
        qk_quantize_error e = {-1, -1, -1, -1, -1};
        CHECK(qk_quantize_measure(ctx4, &d, weighted ? wt : NULL, weighted ? cols * groups : 0, &e) == QK_OK,
              "%s measure: %s", ti->name, qk_last_error(ctx4));
        CHECK(!memcmp(qm, q, qbytes), "%s measure: other blocks than qk_quantize's", ti->name);
        double err = 0, sig = 0, wsum = 0;
        for (int64_t c = 0; c < cols; c++)
            for (int64_t r = 0; r < rows; r++) {
                const double v = x[r * cols + c], dv = v - (double)y[r * cols + c],
                             wv = weighted ? (double)wt[r / per * cols + c] : 1.0;
                err += wv * dv * dv, sig += wv * v * v, wsum += wv;
            }
        CHECK(close_to(e.err, err) && close_to(e.signal, sig) && close_to(e.weight, wsum),
              "%s %lldx%lld measure (weighted %d): %.17g %.17g %.17g, expected %.17g %.17g %.17g", ti->name,
              (long long)rows, (long long)cols, weighted, e.err, e.signal, e.weight, err, sig, wsum);
    }
    /* weights that do not fit the shape, or are not finite and >= 0, are refused */
    qk_quantize_error e;
    CHECK(qk_quantize_measure(ctx4, &d, wt, cols + 1, &e) == QK_ERR_SHAPE, "%s: weights of cols + 1", ti->name);
    wt[cols / 2] = -1.0f;
    CHECK(qk_quantize_measure(ctx4, &d, wt, cols, &e) == QK_ERR_VALUE, "%s: a negative weight", ti->name);
    wt[cols / 2] = NAN;
    CHECK(qk_quantize_measure(ctx4, &d, wt, cols, &e) == QK_ERR_VALUE, "%s: a NaN weight", ti->name);
    CHECK(qk_quantize_measure(ctx4, &d, NULL, 0, NULL) == QK_ERR_INVALID_ARG, "%s: out NULL", ti->name);
    free(wt), free(qm);
}

static void test_type_shape(tu_rng *rng, const qk_type_info *ti, int64_t rows, int64_t cols) {
    const qk_type t = ti->type;
    const size_t n = (size_t)(rows * cols), qbytes = qk_type_row_bytes(t, cols) * (size_t)rows;
    float *x = tu_poisoned(n * 4), *y = tu_poisoned(n * 4), *im = tu_poisoned((size_t)cols * 4);
    uint8_t *q1 = tu_poisoned(qbytes), *q4 = tu_poisoned(qbytes), *q16 = tu_poisoned(qbytes);
    uint16_t *h = tu_poisoned(n * 2), *hy = tu_poisoned(n * 2);
    fill(rng, x, rows, cols);
    for (int64_t c = 0; c < cols; c++) im[c] = (float)exp(1.5 * tu_gauss(rng));
    const float *w = ti->uses_imatrix ? im : NULL;
    const char *name = ti->name;

    /* outputs are poisoned with 0xA5; the second run poisons with 0x5A, so a byte left
     * unwritten shows up as a difference between the two */
    CHECK(quantize(ctx1, t, QK_TYPE_F32, x, n * 4, rows, cols, q1, qbytes, w) == QK_OK, "%s %lldx%lld: %s", name,
          (long long)rows, (long long)cols, qk_last_error(ctx1));
    memset(q4, 0x5A, qbytes);
    CHECK(quantize(ctx4, t, QK_TYPE_F32, x, n * 4, rows, cols, q4, qbytes, w) == QK_OK, "%s: %s", name,
          qk_last_error(ctx4));
    CHECK(!memcmp(q1, q4, qbytes), "%s %lldx%lld: 1 and 4 threads give different bytes (or bytes left unwritten)", name,
          (long long)rows, (long long)cols);

    CHECK(dequantize(ctx4, t, QK_TYPE_F32, q1, qbytes, rows, cols, y, n * 4) == QK_OK, "%s: %s", name,
          qk_last_error(ctx4));
    /* The rms error on the metric the encoder minimizes (weighted by the imatrix where the type
     * uses one: its weights span e^-3..e^3 here, so the unweighted error of the low-weight
     * columns is traded away on purpose), relative to the signal, and relative to each value's
     * block maximum (range), where one scale serves the whole block: about 2^-bpw, with margins
     * from 10000 seeds of these heavy-tailed rows per shape (CPU, 2026-12-06). Relative to the
     * signal a tensor of a few blocks fluctuates widely (one outlier owns its block's scale and
     * the rest round to zero: Q5_0 1x32 reached 22.9 x 2^-bpw, Q6_K 7x768 7.2), so it is bounded
     * from 16384 values (worst 3.7 x 2^-bpw); relative to the range every shape stayed below
     * 1.8 x 2^-bpw (MXFP4 1x32, NVFP4 1x64: a power-of-two or 8-bit scale fits the range loosely). */
    const int64_t be = ti->block_elems;
    double num = 0, sig = 0, range = 0;
    int finite = 1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b0 = 0; b0 < cols; b0 += be) {
            double amax = 0;
            for (int64_t c = b0; c < b0 + be && c < cols; c++) amax = fmax(amax, fabs((double)x[r * cols + c]));
            for (int64_t c = b0; c < b0 + be && c < cols; c++) {
                const size_t i = (size_t)(r * cols + c);
                const double wi = w ? w[c] : 1.0, e = (double)y[i] - x[i];
                finite &= isfinite(y[i]) != 0;
                num += wi * e * e, sig += wi * (double)x[i] * x[i], range += wi * amax * amax;
            }
        }
    const double unit = ti->is_quantized ? exp2(-ti->bits_per_weight) : 0, rel = sqrt(num / sig),
                 rel_range = sqrt(num / range);
    if (!ti->is_quantized)
        CHECK(finite && rel <= 1e-2, "%s %lldx%lld: relative rms error %.4g above 1e-2 (finite=%d)", name,
              (long long)rows, (long long)cols, rel, finite);
    else
        CHECK(finite && rel_range <= 3.0 * unit && (n < 16384 || rel <= 6.0 * unit),
              "%s %lldx%lld: rms error %.4f of the block ranges (bound %.4f), %.4f of the signal (bound %.4f "
              "from 16384 values; finite=%d)",
              name, (long long)rows, (long long)cols, rel_range, 3.0 * unit, rel, 6.0 * unit, finite);

    check_measure(rng, ti, x, y, rows, cols, q1, qbytes, w);

    /* f16 source: the same bytes as quantizing the widened values */
    CHECK(quantize(ctx1, QK_TYPE_F16, QK_TYPE_F32, x, n * 4, rows, cols, h, n * 2, NULL) == QK_OK, "to f16");
    float *xh = tu_poisoned(n * 4);
    CHECK(dequantize(ctx1, QK_TYPE_F16, QK_TYPE_F32, h, n * 2, rows, cols, xh, n * 4) == QK_OK, "from f16");
    CHECK(quantize(ctx4, t, QK_TYPE_F16, h, n * 2, rows, cols, q16, qbytes, w) == QK_OK, "%s from f16: %s", name,
          qk_last_error(ctx4));
    CHECK(quantize(ctx4, t, QK_TYPE_F32, xh, n * 4, rows, cols, q4, qbytes, w) == QK_OK, "%s", name);
    CHECK(!memcmp(q16, q4, qbytes), "%s: f16 source differs from its f32 widening", name);

    /* bf16 destination: the f32 result rounded */
    CHECK(dequantize(ctx4, t, QK_TYPE_BF16, q1, qbytes, rows, cols, hy, n * 2) == QK_OK, "%s to bf16", name);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &y[i], 4);
        uint16_t want = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        bad += hy[i] != want;
    }
    CHECK(bad == 0, "%s: %zu bf16 outputs differ from the rounded f32 ones", name, bad);

    /* an all-zero row decodes to zeros */
    memset(x, 0, (size_t)cols * 4);
    CHECK(quantize(ctx1, t, QK_TYPE_F32, x, (size_t)cols * 4, 1, cols, q1, qbytes, w) == QK_OK, "%s zero row", name);
    CHECK(dequantize(ctx1, t, QK_TYPE_F32, q1, qbytes, 1, cols, y, n * 4) == QK_OK, "%s", name);
    size_t nonzero = 0;
    for (int64_t c = 0; c < cols; c++) nonzero += y[c] != 0.0f;
    CHECK(nonzero == 0, "%s: a zero row decodes to %zu non-zero values", name, nonzero);

    free(x), free(y), free(im), free(q1), free(q4), free(q16), free(h), free(hy), free(xh);
}

int main(void) {
    tu_rng rng = {tu_seed()};
    qk_context_params p = qk_context_default_params();
    p.device = "cpu";
    p.n_threads = 1;
    if (qk_context_create(&p, &ctx1) != QK_OK) return 1;
    p.n_threads = 4;
    if (qk_context_create(&p, &ctx4) != QK_OK) return 1;
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(i), &ti);
        const int64_t b = ti.block_elems == 1 ? 32 : ti.block_elems;
        const int64_t shapes[][2] = {{1, b}, {7, 3 * b}, {33, 2048}, {5, 8192}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            test_type_shape(&rng, &ti, shapes[s][0], shapes[s][1]);
    }
    qk_context_destroy(ctx1);
    qk_context_destroy(ctx4);
    return tu_finish();
}
