/* Bad input gets a clear error through the public API, and nothing is written. */
#include <ctype.h>

#include "qkern.h"
#include "test_util.h"

static qk_context *ctx;

#define POISON 0xA5

static int untouched(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != POISON) return 0;
    return 1;
}

static qk_quantize_desc desc_for(qk_type t, int64_t rows, int64_t cols, float *x, void *dst, size_t dst_bytes) {
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = t;
    d.rows = rows;
    d.cols = cols;
    d.src = qk_host(x, sizeof(float) * (size_t)(rows * cols));
    d.dst = qk_host(dst, dst_bytes);
    return d;
}

static float *random_rows(tu_rng *rng, int64_t rows, int64_t cols) {
    float *x = tu_poisoned(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) x[i] = 0.02f * tu_gauss(rng);
    return x;
}

/* cols that are not a multiple of the block size are refused with both numbers named. */
static void test_quantize_rejects_cols_not_multiple_of_block(tu_rng *rng) {
    float *x = random_rows(rng, 2, 300);
    uint8_t *dst = tu_poisoned(4096);
    qk_quantize_desc d = desc_for(QK_TYPE_Q4_K, 2, 300, x, dst, 4096);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_SHAPE, "cols 300 for Q4_K accepted");
    CHECK(strstr(qk_last_error(ctx), "300") && strstr(qk_last_error(ctx), "256"), "message: %s", qk_last_error(ctx));
    CHECK(untouched(dst, 4096), "dst written on a shape error");
    free(x), free(dst);
}

/* A NaN in row 3, column 17 is reported with both numbers and nothing is written. */
static void test_quantize_rejects_nan_and_names_its_position(tu_rng *rng) {
    const int rows = 8, cols = 256;
    float *x = random_rows(rng, rows, cols);
    size_t bytes = qk_type_row_bytes(QK_TYPE_Q4_0, cols) * rows;
    uint8_t *dst = tu_poisoned(bytes);
    x[3 * cols + 17] = NAN;
    x[6 * cols + 2] = INFINITY;
    qk_quantize_desc d = desc_for(QK_TYPE_Q4_0, rows, cols, x, dst, bytes);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_VALUE, "NaN accepted");
    CHECK(strstr(qk_last_error(ctx), "row 3") && strstr(qk_last_error(ctx), "column 17") &&
              strstr(qk_last_error(ctx), "NaN"),
          "message does not name row 3, column 17: %s", qk_last_error(ctx));
    CHECK(untouched(dst, bytes), "dst written although the input had a NaN");
    x[3 * cols + 17] = 0.0f;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_VALUE && strstr(qk_last_error(ctx), "row 6") &&
              strstr(qk_last_error(ctx), "Inf"),
          "Inf at row 6 not reported: %s", qk_last_error(ctx));
    x[6 * cols + 2] = 1.0f;
    CHECK(qk_quantize(ctx, &d) == QK_OK, "clean input refused: %s", qk_last_error(ctx));
    CHECK(!untouched(dst, bytes), "clean input produced no output");
    free(x), free(dst);
}

/* Inf inside f16 input is caught too (after widening). */
static void test_quantize_rejects_inf_in_f16_input(void) {
    const int cols = 32;
    uint16_t h[32];
    for (int i = 0; i < cols; i++) h[i] = 0x3c00; /* 1.0 */
    h[9] = 0x7c00;                                /* +inf */
    uint8_t dst[64];
    memset(dst, POISON, sizeof dst);
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = QK_TYPE_Q8_0;
    d.src_type = QK_TYPE_F16;
    d.rows = 1, d.cols = cols;
    d.src = qk_host(h, sizeof h);
    d.dst = qk_host(dst, sizeof dst);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_VALUE && strstr(qk_last_error(ctx), "column 9"), "f16 inf: %s",
          qk_last_error(ctx));
    CHECK(untouched(dst, sizeof dst), "dst written on f16 inf");
}

static void test_quantize_rejects_null_and_small_buffers(tu_rng *rng) {
    float *x = random_rows(rng, 4, 256);
    size_t bytes = qk_type_row_bytes(QK_TYPE_Q6_K, 256) * 4;
    uint8_t *dst = tu_poisoned(bytes);
    qk_quantize_desc d = desc_for(QK_TYPE_Q6_K, 4, 256, x, dst, bytes);
    d.src.host = NULL;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_INVALID_ARG, "NULL src accepted");
    d = desc_for(QK_TYPE_Q6_K, 4, 256, x, NULL, bytes);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_INVALID_ARG, "NULL dst accepted");
    d = desc_for(QK_TYPE_Q6_K, 4, 256, x, dst, bytes - 1);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_BUFFER && strstr(qk_last_error(ctx), "needed"), "short dst: %s",
          qk_last_error(ctx));
    d = desc_for(QK_TYPE_Q6_K, 4, 256, x, dst, bytes);
    d.src.bytes -= 4;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_BUFFER, "short src accepted");
    CHECK(untouched(dst, bytes), "dst written on a buffer error");
    CHECK(qk_quantize(ctx, NULL) == QK_ERR_INVALID_ARG, "NULL desc accepted");
    CHECK(qk_quantize(NULL, &d) == QK_ERR_INVALID_ARG, "NULL context accepted");
    d.struct_size = 8;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_INVALID_ARG, "bad struct_size accepted");
    d = desc_for(QK_TYPE_Q6_K, 0, 256, x, dst, bytes);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_SHAPE, "zero rows accepted");
    d = desc_for(QK_TYPE_Q6_K, 4, 256, x, dst, bytes);
    d.rows = INT64_MAX / 2;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_SHAPE || qk_quantize(ctx, &d) == QK_ERR_BUFFER, "overflowing shape accepted");
    free(x), free(dst);
}

static void test_unknown_type_ids_are_refused(tu_rng *rng) {
    float *x = random_rows(rng, 1, 256);
    uint8_t dst[1024];
    const int bad[] = {-1, 4, 5, 9, 15, 24, 31, 36, 38, 43, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qk_quantize_desc d = desc_for((qk_type)bad[i], 1, 256, x, dst, sizeof dst);
        CHECK(qk_quantize(ctx, &d) == QK_ERR_TYPE, "type id %d accepted", bad[i]);
        CHECK(qk_type_row_bytes(bad[i], 256) == 0 && qk_type_name(bad[i]) == NULL, "id %d has a name", bad[i]);
        qk_dequantize_desc q = qk_dequantize_default_desc();
        q.type = (qk_type)bad[i], q.rows = 1, q.cols = 256;
        q.src = qk_host(dst, sizeof dst), q.dst = qk_host(x, 1024);
        CHECK(qk_dequantize(ctx, &q) == QK_ERR_TYPE, "dequantize of type id %d accepted", bad[i]);
    }
    qk_quantize_desc d = desc_for(QK_TYPE_Q4_0, 1, 256, x, dst, sizeof dst);
    d.src_type = QK_TYPE_Q4_0;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_TYPE, "Q4_0 accepted as a source type");
    free(x);
}

static void test_imatrix_is_checked(tu_rng *rng) {
    const int cols = 512;
    float *x = random_rows(rng, 2, cols);
    float im[512];
    for (int i = 0; i < cols; i++) im[i] = (float)tu_u01(rng) + 0.1f;
    size_t bytes = qk_type_row_bytes(QK_TYPE_IQ2_XXS, cols) * 2;
    uint8_t *dst = tu_poisoned(bytes);
    qk_quantize_desc d = desc_for(QK_TYPE_IQ2_XXS, 2, cols, x, dst, bytes);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_NEEDS_IMATRIX && strstr(qk_last_error(ctx), "IQ2_XXS"),
          "IQ2_XXS without imatrix: %s", qk_last_error(ctx));
    d.imatrix = im, d.imatrix_len = cols - 1;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_SHAPE, "imatrix of the wrong length accepted");
    /* one slice per group of rows: the group count must divide the 2 rows */
    float im3[3 * 512];
    for (int i = 0; i < 3 * cols; i++) im3[i] = 1.0f;
    d.imatrix = im3, d.imatrix_len = 3 * cols;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_SHAPE, "3 imatrix slices for 2 rows accepted");
    d.imatrix = im, d.imatrix_len = cols;
    im[100] = -1.0f;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_VALUE && strstr(qk_last_error(ctx), "imatrix[100]"), "negative imatrix: %s",
          qk_last_error(ctx));
    im[100] = NAN;
    CHECK(qk_quantize(ctx, &d) == QK_ERR_VALUE, "NaN imatrix accepted");
    CHECK(untouched(dst, bytes), "dst written on an imatrix error");
    im[100] = 1.0f;
    CHECK(qk_quantize(ctx, &d) == QK_OK, "valid imatrix refused: %s", qk_last_error(ctx));
    const qk_type needs[] = {QK_TYPE_IQ1_S, QK_TYPE_IQ2_XS, QK_TYPE_IQ2_XXS};
    for (int i = 0; i < 3; i++) {
        size_t b = qk_type_row_bytes(needs[i], cols) * 2;
        uint8_t *o = tu_poisoned(b);
        d = desc_for(needs[i], 2, cols, x, o, b);
        CHECK(qk_quantize(ctx, &d) == QK_ERR_NEEDS_IMATRIX, "%s without imatrix accepted", qk_type_name(needs[i]));
        d.flags = QK_QUANTIZE_ALLOW_NO_IMATRIX;
        CHECK(qk_quantize(ctx, &d) == QK_OK, "%s with the override refused: %s", qk_type_name(needs[i]),
              qk_last_error(ctx));
        free(o);
    }
    free(x), free(dst);
}

static void test_devices_and_buffers(void) {
    qk_context *other = NULL;
    qk_context_params p = qk_context_default_params();
    const char *missing[] = {"cpu:1", "nosuch", "cuda:99", "vulkan:99", "cpu:x"};
    for (int i = 0; i < 5; i++) {
        p.device = missing[i];
        CHECK(qk_context_create(&p, &other) != QK_OK && other == NULL && strlen(qk_last_error(NULL)) > 0,
              "device %s accepted", missing[i]);
    }
    p.device = "cpu";
    CHECK(qk_context_create(&p, &other) == QK_OK, "cpu refused: %s", qk_last_error(NULL));
    CHECK(qk_device_count() >= 1, "no devices");
    qk_device_info info;
    CHECK(qk_device_get(qk_device_count(), &info) == QK_ERR_NO_DEVICE, "device past the end exists");
    qk_buffer *b = NULL;
    CHECK(qk_buffer_create(other, 64, &b) == QK_OK, "buffer: %s", qk_last_error(other));
    uint8_t bytes[128] = {0};
    CHECK(qk_buffer_write(b, 32, bytes, 64) == QK_ERR_BUFFER, "write past the end accepted");
    CHECK(qk_buffer_read(b, 65, bytes, 0) == QK_ERR_BUFFER, "read at offset past the end accepted");
    float x[32] = {1};
    qk_quantize_desc d = qk_quantize_default_desc();
    d.rows = 1, d.cols = 32;
    d.src = qk_host(x, sizeof x);
    d.dst = qk_buf(b, 0, 64);
    CHECK(qk_quantize(ctx, &d) == QK_ERR_INVALID_ARG, "buffer of another context accepted");
    CHECK(qk_quantize(other, &d) == QK_OK, "own buffer refused: %s", qk_last_error(other));
    d.dst = qk_buf(b, 40, 34);
    CHECK(qk_quantize(other, &d) == QK_ERR_BUFFER, "buffer range past the end accepted");
    qk_context_destroy(other); /* releases b too; ASan reports a leak otherwise */
}

/* The type table answers consistently for every type, and names round-trip. */
static void test_type_info_is_consistent(void) {
    /* qk_type_at lists exactly the ids that have a name, in ascending order */
    int named = 0;
    for (int id = -1; id <= QK_TYPE_ID_LIMIT; id++) named += qk_type_name(id) != NULL;
    CHECK(named == qk_type_count() && named >= 3, "%d ids have names, qk_type_count() says %d", named, qk_type_count());
    for (int i = 0; i < qk_type_count(); i++) {
        qk_type t = qk_type_at(i), back;
        CHECK(i == 0 || qk_type_at(i - 1) < t, "qk_type_at(%d) = %d does not ascend", i, t);
        qk_type_info ti;
        CHECK(qk_type_get_info(t, &ti) == QK_OK, "type %d has no info", t);
        CHECK(ti.bits_per_weight == 8.0 * ti.block_bytes / ti.block_elems, "%s bpw", ti.name);
        char lower[16];
        size_t k = 0;
        for (; ti.name[k] && k < 15; k++) lower[k] = (char)tolower((unsigned char)ti.name[k]);
        lower[k] = 0;
        CHECK(qk_type_from_name(lower, &back) == QK_OK && back == t, "%s does not round-trip", lower);
        CHECK(!ti.needs_imatrix || ti.uses_imatrix, "%s needs but does not use an imatrix", ti.name);
    }
    qk_type t;
    CHECK(qk_type_from_name("Q4_K_M", &t) == QK_ERR_TYPE, "a preset name is not a type");
    CHECK(qk_version() == QK_VERSION_NUMBER, "header and library versions differ");
}

int main(void) {
    tu_rng rng = {tu_seed()};
    qk_context_params p = qk_context_default_params();
    p.device = "cpu";
    p.n_threads = 3;
    if (qk_context_create(&p, &ctx) != QK_OK) {
        fprintf(stderr, "cannot create a cpu context: %s\n", qk_last_error(NULL));
        return 1;
    }
    test_quantize_rejects_cols_not_multiple_of_block(&rng);
    test_quantize_rejects_nan_and_names_its_position(&rng);
    test_quantize_rejects_inf_in_f16_input();
    test_quantize_rejects_null_and_small_buffers(&rng);
    test_unknown_type_ids_are_refused(&rng);
    test_imatrix_is_checked(&rng);
    test_devices_and_buffers();
    test_type_info_is_consistent();
    qk_context_destroy(ctx);
    return tu_finish();
}
