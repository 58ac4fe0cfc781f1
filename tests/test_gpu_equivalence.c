/* Every type a GPU backend implements gives the CPU reference's bytes: quantize from f32,
 * f16 and bf16, with and without an imatrix, on ragged shapes; dequantize to f32, f16 and
 * bf16 bit for bit. Fresh random inputs, outputs poisoned. Operands inside buffers at odd
 * offsets, CUDA's asynchronous calls on raw device pointers, and the streaming queues that
 * qk_model_quantize overlaps its steps on, give the same bytes.
 * Usage: test_gpu_equivalence [DEVICE] (default cuda:0; e.g. vulkan:0). QK_TEST_TYPES=Q4_K,...
 * limits the types. Without the device the test says it skipped (exit 77, ctest: skipped).
 * On Vulkan with QK_VK_VALIDATION=1 the validation layers must report no error. */
#include "formats.h"
#include "internal.h"
#include "qk_float.h"
#include "qkern_cuda.h"
#include "test_util.h"

#ifdef QK_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#ifdef QK_HAVE_VULKAN
int qk_vk_validation_errors(char *first, size_t n); /* runtime/vulkan/vk_internal.h */
#endif

#define SKIP 77

static qk_context *cpu, *gpu;
static const char *dev_name; /* the device under test, for messages */
static tu_rng rng;

static int supports(qk_op op, qk_type t) { return qk_backend_supports(gpu->backend, gpu->state, op, t); }

/* Gaussian values of about 0.02, a few 9x larger, some zeros; and every 16th run of 256 values
 * scaled by 2^-128, into float's subnormal range (where a Vulkan driver may flush operands and
 * results of float arithmetic), so each encoder's tiny-scale path is compared too. */
static void fill_source(qk_type src_type, float *x32, void *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = 0.02f * tu_gauss(&rng) * (i % 61 == 3 ? 9.0f : 1.0f);
        if (i % 97 == 11) v = 0.0f;
        if (i / 256 % 16 == 5) v = ldexpf(v, -128);
        if (src_type == QK_TYPE_F32) ((float *)src)[i] = v;
        if (src_type == QK_TYPE_F16) qk_wr16((uint8_t *)src + 2 * i, qk_f32_to_fp16(v));
        if (src_type == QK_TYPE_BF16) qk_wr16((uint8_t *)src + 2 * i, qk_f32_to_bf16(v));
        x32[i] = v;
    }
}

static size_t first_difference(const uint8_t *a, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return i;
    return n;
}

static void check_type(const qk_type_info *ti, int64_t rows, int64_t cols, qk_type src_type, int with_imatrix) {
    const int64_t n = rows * cols;
    const size_t qbytes = (size_t)rows * qk_type_row_bytes(ti->type, cols),
                 sbytes = (size_t)n * qk_float_type_size(src_type);
    /* with_imatrix: 0 none, 1 one vector for every row, 2 one per row (grouped rows, as experts) */
    const int64_t mats = with_imatrix == 2 ? rows : 1;
    float *x32 = malloc((size_t)n * sizeof(float)), *im = malloc((size_t)(cols * mats) * sizeof(float));
    void *src = malloc(sbytes);
    uint8_t *q_cpu = tu_poisoned(qbytes), *q_gpu = tu_poisoned(qbytes);
    fill_source(src_type, x32, src, n);
    for (int64_t c = 0; c < cols * mats; c++) im[c] = (float)exp(1.5 * tu_gauss(&rng));

    qk_quantize_desc q = qk_quantize_default_desc();
    q.type = ti->type;
    q.src_type = src_type;
    q.rows = rows;
    q.cols = cols;
    q.src = qk_host(src, sbytes);
    q.dst = qk_host(q_cpu, qbytes);
    if (with_imatrix) q.imatrix = im, q.imatrix_len = cols * mats;
    const char *shape_note = with_imatrix == 2 ? "imatrix per row" : with_imatrix ? "imatrix" : "no imatrix";
    if (supports(QK_OP_QUANTIZE, ti->type)) {
        CHECK(qk_quantize(cpu, &q) == QK_OK, "%s cpu quantize: %s", ti->name, qk_last_error(cpu));
        q.dst = qk_host(q_gpu, qbytes);
        qk_status st = qk_quantize(gpu, &q);
        CHECK(st == QK_OK, "%s %s quantize: %s", ti->name, dev_name, qk_last_error(gpu));
        size_t d = first_difference(q_cpu, q_gpu, qbytes);
        size_t row_bytes = qk_type_row_bytes(ti->type, cols);
        CHECK(st != QK_OK || d == qbytes,
              "%s from %s, %lld x %lld, %s: %s differs from cpu at byte %zu (row %zu, block %zu, byte %zu)", ti->name,
              qk_type_name(src_type), (long long)rows, (long long)cols, shape_note, dev_name, d, d / row_bytes,
              (d % row_bytes) / (size_t)ti->block_bytes, d % (size_t)ti->block_bytes);
    } else {
        /* no quantizer on the device: the dequantize check below still needs blocks */
        CHECK(qk_quantize(cpu, &q) == QK_OK, "%s cpu quantize: %s", ti->name, qk_last_error(cpu));
    }

    if (supports(QK_OP_DEQUANTIZE, ti->type)) {
        static const qk_type outs[] = {QK_TYPE_F32, QK_TYPE_F16, QK_TYPE_BF16};
        for (int o = 0; o < 3; o++) {
            size_t dbytes = (size_t)n * qk_float_type_size(outs[o]);
            uint8_t *d_cpu = tu_poisoned(dbytes), *d_gpu = tu_poisoned(dbytes);
            qk_dequantize_desc d = qk_dequantize_default_desc();
            d.type = ti->type;
            d.dst_type = outs[o];
            d.rows = rows;
            d.cols = cols;
            d.src = qk_host(q_cpu, qbytes);
            d.dst = qk_host(d_cpu, dbytes);
            CHECK(qk_dequantize(cpu, &d) == QK_OK, "%s cpu dequantize: %s", ti->name, qk_last_error(cpu));
            d.dst = qk_host(d_gpu, dbytes);
            CHECK(qk_dequantize(gpu, &d) == QK_OK, "%s %s dequantize: %s", ti->name, dev_name, qk_last_error(gpu));
            size_t at = first_difference(d_cpu, d_gpu, dbytes);
            CHECK(at == dbytes, "%s -> %s, %lld x %lld: dequantize differs at value %zu", ti->name,
                  qk_type_name(outs[o]), (long long)rows, (long long)cols, at / qk_float_type_size(outs[o]));
            free(d_cpu);
            free(d_gpu);
        }
    }
    free(x32);
    free(im);
    free(src);
    free(q_cpu);
    free(q_gpu);
}

/* A BF16 tensor of rows x cols with the CPU reference's blocks (q_cpu, quantized with an imatrix
 * where the type reads one) and their values (d_cpu), for the checks of operands at odd places;
 * q_gpu and d_gpu are poisoned buffers for the device's results. q and d are the calls' descs. */
typedef struct bf16_case {
    qk_type_info ti;
    size_t qbytes, sbytes;
    float *x32, *im;
    uint16_t *src, *d_cpu, *d_gpu;
    uint8_t *q_cpu, *q_gpu;
    qk_quantize_desc q;
    qk_dequantize_desc d;
} bf16_case;

static void bf16_case_make(qk_type type, int64_t rows, int64_t cols, bf16_case *c) {
    qk_type_get_info(type, &c->ti);
    const int64_t n = rows * cols;
    c->qbytes = (size_t)rows * qk_type_row_bytes(type, cols), c->sbytes = (size_t)n * 2;
    c->x32 = malloc((size_t)n * sizeof(float)), c->im = malloc((size_t)cols * sizeof(float));
    c->src = malloc(c->sbytes), c->d_cpu = tu_poisoned(c->sbytes), c->d_gpu = tu_poisoned(c->sbytes);
    c->q_cpu = tu_poisoned(c->qbytes), c->q_gpu = tu_poisoned(c->qbytes);
    fill_source(QK_TYPE_BF16, c->x32, c->src, n);
    for (int64_t j = 0; j < cols; j++) c->im[j] = (float)exp(1.5 * tu_gauss(&rng));
    c->q = qk_quantize_default_desc();
    c->q.type = type, c->q.src_type = QK_TYPE_BF16, c->q.rows = rows, c->q.cols = cols;
    c->q.src = qk_host(c->src, c->sbytes);
    c->q.dst = qk_host(c->q_cpu, c->qbytes);
    if (c->ti.uses_imatrix) c->q.imatrix = c->im, c->q.imatrix_len = cols;
    CHECK(qk_quantize(cpu, &c->q) == QK_OK, "%s cpu quantize: %s", c->ti.name, qk_last_error(cpu));
    c->d = qk_dequantize_default_desc();
    c->d.type = type, c->d.dst_type = QK_TYPE_BF16, c->d.rows = rows, c->d.cols = cols;
    c->d.src = qk_host(c->q_cpu, c->qbytes);
    c->d.dst = qk_host(c->d_cpu, c->sbytes);
    CHECK(qk_dequantize(cpu, &c->d) == QK_OK, "%s cpu dequantize: %s", c->ti.name, qk_last_error(cpu));
}

static void bf16_case_free(bf16_case *c) {
    free(c->x32), free(c->im), free(c->src), free(c->d_cpu), free(c->d_gpu), free(c->q_cpu), free(c->q_gpu);
}

#ifdef QK_HAVE_CUDA
/* qk_cuda_quantize_async / qk_cuda_dequantize_async on an engine's pointers (here: inside a
 * qkern buffer, at offsets that break 4- and 16-byte alignment), imatrix in device memory:
 * the kernels' unaligned paths give the reference's bytes. */
static void check_async_unaligned(qk_type type, int64_t rows, int64_t cols) {
    bf16_case c;
    bf16_case_make(type, rows, cols, &c);
    const qk_type_info ti = c.ti;
    const size_t qbytes = c.qbytes, sbytes = c.sbytes;
    float *im = c.im;
    uint16_t *src = c.src, *d_cpu = c.d_cpu, *d_gpu = c.d_gpu;
    uint8_t *q_cpu = c.q_cpu, *q_gpu = c.q_gpu;
    qk_quantize_desc q = c.q;
    qk_dequantize_desc d = c.d;

    /* one buffer: src at 2 mod 16, blocks at an odd address, values at 2 mod 4 (16-bit values
     * keep their own alignment, as any engine's tensor does), imatrix aligned */
    const size_t o_src = 2, o_q = o_src + sbytes + 1, o_d = (o_q + qbytes + 3) / 4 * 4 + 2,
                 o_im = (o_d + sbytes + 15) / 16 * 16;
    qk_buffer *b = NULL;
    CHECK(qk_buffer_create(gpu, o_im + (size_t)cols * 4, &b) == QK_OK, "buffer: %s", qk_last_error(gpu));
    if (!b) {
        bf16_case_free(&c);
        return;
    }
    char *base = (char *)b->mem;
    CHECK(qk_buffer_write(b, o_src, src, sbytes) == QK_OK && qk_buffer_write(b, o_im, im, (size_t)cols * 4) == QK_OK,
          "upload: %s", qk_last_error(gpu));
    q.src = qk_dev(base + o_src, sbytes);
    q.dst = qk_dev(base + o_q, qbytes);
    if (ti.uses_imatrix) q.imatrix = (const float *)(base + o_im);
    CHECK(qk_cuda_quantize_async(gpu, &q, NULL) == QK_OK, "%s async quantize: %s", ti.name, qk_last_error(gpu));
    d.src = qk_dev(base + o_q, qbytes);
    d.dst = qk_dev(base + o_d, sbytes);
    CHECK(qk_cuda_dequantize_async(gpu, &d, NULL) == QK_OK, "%s async dequantize: %s", ti.name, qk_last_error(gpu));
    CHECK(cudaDeviceSynchronize() == cudaSuccess, "%s: the async kernels failed", ti.name);
    CHECK(qk_buffer_read(b, o_q, q_gpu, qbytes) == QK_OK && qk_buffer_read(b, o_d, d_gpu, sbytes) == QK_OK,
          "download: %s", qk_last_error(gpu));
    size_t at = first_difference(q_cpu, q_gpu, qbytes);
    CHECK(at == qbytes, "%s async, unaligned: quantize differs at byte %zu", ti.name, at);
    at = first_difference((uint8_t *)d_cpu, (uint8_t *)d_gpu, sbytes);
    CHECK(at == sbytes, "%s async, unaligned: dequantize differs at value %zu", ti.name, at / 2);
    /* host memory is refused by the async calls, before anything is enqueued */
    q.src = qk_host(src, sbytes);
    CHECK(qk_cuda_quantize_async(gpu, &q, NULL) == QK_ERR_INVALID_ARG, "%s: async took host memory", ti.name);
    qk_buffer_destroy(b);
    bf16_case_free(&c);
}
#endif

/* Index of the first value where a and b differ, NaN payloads aside: an operation on a NaN
 * returns the x86 CPU's operand payload but the GPU's canonical NaN, and no format gives a NaN
 * payload meaning. Every other value, infinities and subnormals included, is compared bit for
 * bit. *nans counts the values where both are NaN with different bits. */
static size_t first_difference_but_nan(qk_type t, const uint8_t *a, const uint8_t *b, size_t n_values, size_t *nans) {
    const size_t es = qk_float_type_size(t);
    for (size_t i = 0; i < n_values; i++) {
        uint32_t x = es == 4 ? qk_rd32(a + 4 * i) : qk_rd16(a + 2 * i),
                 y = es == 4 ? qk_rd32(b + 4 * i) : qk_rd16(b + 2 * i);
        if (x == y) continue;
        const uint32_t inf = es == 4 ? 0x7f800000u : t == QK_TYPE_F16 ? 0x7c00u : 0x7f80u, mag = inf | (inf >> 1);
        const int x_nan = (x & mag) > inf && (x & inf) == inf, y_nan = (y & mag) > inf && (y & inf) == inf;
        if (!(x_nan && y_nan)) return i;
        ++*nans;
    }
    return n_values;
}

/* Dequantize decodes every bit pattern as the CPU does: blocks of random bytes, so scales are
 * NaN, Inf, subnormal or huge (the 16-bit outputs' rounding rules included). */
static size_t nan_payloads; /* NaN results whose payloads differ, over all random-block checks */

static int check_random_blocks(const qk_type_info *ti) {
    const int64_t rows = 9, cols = 1024;
    const size_t qbytes = (size_t)rows * qk_type_row_bytes(ti->type, cols);
    uint8_t *q = malloc(qbytes);
    for (size_t i = 0; i < qbytes; i++) q[i] = (uint8_t)tu_next(&rng);
    static const qk_type outs[] = {QK_TYPE_F32, QK_TYPE_F16, QK_TYPE_BF16};
    int ok = 1;
    for (int o = 0; o < 3; o++) {
        size_t dbytes = (size_t)(rows * cols) * qk_float_type_size(outs[o]);
        uint8_t *d_cpu = tu_poisoned(dbytes), *d_gpu = tu_poisoned(dbytes);
        qk_dequantize_desc d = qk_dequantize_default_desc();
        d.type = ti->type, d.dst_type = outs[o], d.rows = rows, d.cols = cols;
        d.src = qk_host(q, qbytes);
        d.dst = qk_host(d_cpu, dbytes);
        CHECK(qk_dequantize(cpu, &d) == QK_OK, "%s cpu dequantize: %s", ti->name, qk_last_error(cpu));
        d.dst = qk_host(d_gpu, dbytes);
        CHECK(qk_dequantize(gpu, &d) == QK_OK, "%s %s dequantize: %s", ti->name, dev_name, qk_last_error(gpu));
        const size_t n = (size_t)(rows * cols), es = qk_float_type_size(outs[o]);
        size_t nans = 0, at = first_difference_but_nan(outs[o], d_cpu, d_gpu, n, &nans);
        CHECK(at == n, "%s random blocks -> %s: differs at value %zu (cpu 0x%x, device 0x%x)", ti->name,
              qk_type_name(outs[o]), at,
              at < n ? (unsigned)(es == 4 ? qk_rd32(d_cpu + 4 * at) : qk_rd16(d_cpu + 2 * at)) : 0,
              at < n ? (unsigned)(es == 4 ? qk_rd32(d_gpu + 4 * at) : qk_rd16(d_gpu + 2 * at)) : 0);
        ok &= at == n;
        if (nans) nan_payloads += nans;
        free(d_cpu);
        free(d_gpu);
    }
    free(q);
    return ok;
}

/* Operands inside one buffer at offsets that break word alignment (src at 2 mod 16, blocks at
 * an odd offset; the dequantized values word-aligned, as every backend takes them), with
 * qk_buf: the device's unaligned paths give the reference's bytes. */
/* qk_quantize_measure on the device: the CPU's blocks, the CPU's sums but for the order of
 * additions, and the same sums bit for bit on a second call. */
static void check_measure(const qk_type_info *ti, int64_t rows, int64_t cols) {
    const int64_t n = rows * cols, groups = 3;
    const size_t qbytes = (size_t)rows * qk_type_row_bytes(ti->type, cols), sbytes = (size_t)n * 2;
    float *x32 = malloc((size_t)n * sizeof(float)), *im = malloc((size_t)cols * sizeof(float)),
          *wt = malloc((size_t)(cols * groups) * sizeof(float));
    void *src = malloc(sbytes);
    uint8_t *q_cpu = tu_poisoned(qbytes), *q_gpu = tu_poisoned(qbytes);
    fill_source(QK_TYPE_BF16, x32, src, n);
    for (int64_t c = 0; c < cols; c++) im[c] = (float)exp(1.5 * tu_gauss(&rng));
    for (int64_t c = 0; c < cols * groups; c++) wt[c] = (float)exp(tu_gauss(&rng));
    qk_quantize_desc q = qk_quantize_default_desc();
    q.type = ti->type, q.src_type = QK_TYPE_BF16, q.rows = rows, q.cols = cols;
    q.src = qk_host(src, sbytes);
    q.imatrix = ti->uses_imatrix ? im : NULL, q.imatrix_len = ti->uses_imatrix ? cols : 0;
    qk_quantize_error ec, eg, eg2;
    q.dst = qk_host(q_cpu, qbytes);
    CHECK(qk_quantize_measure(cpu, &q, wt, cols * groups, &ec) == QK_OK, "%s measure cpu: %s", ti->name,
          qk_last_error(cpu));
    q.dst = qk_host(q_gpu, qbytes);
    CHECK(qk_quantize_measure(gpu, &q, wt, cols * groups, &eg) == QK_OK, "%s measure %s: %s", ti->name, dev_name,
          qk_last_error(gpu));
    CHECK(qk_quantize_measure(gpu, &q, wt, cols * groups, &eg2) == QK_OK, "%s measure %s again: %s", ti->name, dev_name,
          qk_last_error(gpu));
    CHECK(!memcmp(q_cpu, q_gpu, qbytes), "%s measure: the blocks differ from the CPU's", ti->name);
    CHECK(fabs(eg.err - ec.err) <= 1e-9 * ec.err && fabs(eg.signal - ec.signal) <= 1e-9 * ec.signal &&
              fabs(eg.weight - ec.weight) <= 1e-9 * ec.weight,
          "%s measure %lldx%lld: %s's sums %.17g %.17g %.17g, the CPU's %.17g %.17g %.17g", ti->name, (long long)rows,
          (long long)cols, dev_name, eg.err, eg.signal, eg.weight, ec.err, ec.signal, ec.weight);
    CHECK(!memcmp(&eg, &eg2, sizeof eg), "%s measure: two calls on %s give different sums", ti->name, dev_name);
    free(x32), free(im), free(wt), free(src), free(q_cpu), free(q_gpu);
}

static void check_buffer_offsets(qk_type type, int64_t rows, int64_t cols) {
    bf16_case c;
    bf16_case_make(type, rows, cols, &c);
    const qk_type_info ti = c.ti;
    const size_t qbytes = c.qbytes, sbytes = c.sbytes;
    uint16_t *src = c.src, *d_cpu = c.d_cpu, *d_gpu = c.d_gpu;
    uint8_t *q_cpu = c.q_cpu, *q_gpu = c.q_gpu;
    qk_quantize_desc q = c.q;
    qk_dequantize_desc d = c.d;

    const size_t o_src = 2, o_q = o_src + sbytes + 1, o_d = (o_q + qbytes + 3) / 4 * 4;
    qk_buffer *b = NULL;
    CHECK(qk_buffer_create(gpu, o_d + sbytes + 5, &b) == QK_OK, "buffer: %s", qk_last_error(gpu));
    if (!b) {
        bf16_case_free(&c);
        return;
    }
    uint8_t guard[5] = {1, 2, 3, 4, 5}, back[5];
    CHECK(qk_buffer_write(b, o_src, src, sbytes) == QK_OK && qk_buffer_write(b, o_d + sbytes, guard, 5) == QK_OK &&
              qk_buffer_write(b, o_q - 1, guard, 1) == QK_OK,
          "upload: %s", qk_last_error(gpu));
    q.src = qk_buf(b, o_src, sbytes);
    q.dst = qk_buf(b, o_q, qbytes);
    CHECK(qk_quantize(gpu, &q) == QK_OK, "%s quantize in a buffer: %s", ti.name, qk_last_error(gpu));
    d.src = qk_buf(b, o_q, qbytes);
    d.dst = qk_buf(b, o_d, sbytes);
    CHECK(qk_dequantize(gpu, &d) == QK_OK, "%s dequantize in a buffer: %s", ti.name, qk_last_error(gpu));
    CHECK(qk_buffer_read(b, o_q, q_gpu, qbytes) == QK_OK && qk_buffer_read(b, o_d, d_gpu, sbytes) == QK_OK,
          "download: %s", qk_last_error(gpu));
    size_t at = first_difference(q_cpu, q_gpu, qbytes);
    CHECK(at == qbytes, "%s in a buffer at odd offsets: quantize differs at byte %zu", ti.name, at);
    at = first_difference((uint8_t *)d_cpu, (uint8_t *)d_gpu, sbytes);
    CHECK(at == sbytes, "%s in a buffer at odd offsets: dequantize differs at value %zu", ti.name, at / 2);
    /* the bytes around the outputs are untouched */
    CHECK(qk_buffer_read(b, o_d + sbytes, back, 5) == QK_OK && !memcmp(back, guard, 5),
          "%s: bytes after the output changed", ti.name);
    CHECK(qk_buffer_read(b, o_q - 1, back, 1) == QK_OK && back[0] == guard[0], "%s: the byte before the blocks changed",
          ti.name);
    qk_buffer_destroy(b);
    bf16_case_free(&c);
}

/* A NaN at a known place is reported with its row and column, as on the CPU. */
static void test_nan_is_named(void) {
    const int64_t rows = 5, cols = 512;
    float *x = calloc((size_t)(rows * cols), sizeof(float));
    uint8_t *dst = tu_poisoned((size_t)rows * qk_type_row_bytes(QK_TYPE_Q8_0, cols));
    for (int64_t i = 0; i < rows * cols; i++) x[i] = 0.01f * (float)(i % 13);
    x[3 * cols + 17] = NAN;
    qk_quantize_desc q = qk_quantize_default_desc();
    q.type = QK_TYPE_Q8_0;
    q.rows = rows;
    q.cols = cols;
    q.src = qk_host(x, (size_t)(rows * cols) * sizeof(float));
    q.dst = qk_host(dst, (size_t)rows * qk_type_row_bytes(QK_TYPE_Q8_0, cols));
    if (supports(QK_OP_QUANTIZE, QK_TYPE_Q8_0)) {
        qk_status st = qk_quantize(gpu, &q);
        CHECK(st == QK_ERR_VALUE && strstr(qk_last_error(gpu), "row 3, column 17"), "NaN on %s: %d %s", dev_name, st,
              qk_last_error(gpu));
    }
    free(x);
    free(dst);
}

/* The streaming queues (backend.h): steps queued on both queues in turn, each from its own
 * pinned buffers and waited for oldest first, give the CPU reference's bytes (bf16 source, one
 * imatrix slice per group of rows, as experts); a NaN in a queued step is named by its row and
 * column; a queue holds one step at a time. */
static void test_queued_steps(qk_context *dev) {
    const qk_backend *b = dev->backend;
    if (!b->quantize_queued) return (void)printf("%s has no streaming queues\n", b->name);
    static const qk_type types[] = {QK_TYPE_Q8_0, QK_TYPE_Q4_K, QK_TYPE_Q6_K, QK_TYPE_IQ2_XXS, QK_TYPE_IQ4_XS};
    enum { STEPS = 7, ROWS = 24, COLS = 512, MATS = 3 };
    const size_t sbytes = (size_t)ROWS * COLS * 2, n = (size_t)STEPS * ROWS * COLS;
    uint16_t *x = malloc(n * 2);
    float *x32 = malloc(n * sizeof(float)), *im = malloc((size_t)MATS * COLS * sizeof(float));
    void *src[QK_QUEUES] = {0}, *dst[QK_QUEUES] = {0};
    fill_source(QK_TYPE_BF16, x32, x, (int64_t)n);
    for (int c = 0; c < MATS * COLS; c++) im[c] = (float)exp(1.5 * tu_gauss(&rng));
    for (int k = 0; k < QK_QUEUES; k++)
        CHECK(b->host_alloc(dev, dev->state, sbytes, &src[k]) == QK_OK &&
                  b->host_alloc(dev, dev->state, sbytes, &dst[k]) == QK_OK,
              "host_alloc: %s", qk_last_error(dev));
    int before = tu_failed;
    for (size_t t = 0; t < sizeof types / sizeof types[0] && src[1] && dst[1]; t++) {
        if (!supports(QK_OP_QUANTIZE, types[t])) continue;
        const size_t qbytes = (size_t)ROWS * qk_type_row_bytes(types[t], COLS);
        uint8_t *want = tu_poisoned(qbytes * STEPS);
        qk_quantize_desc q = qk_quantize_default_desc();
        q.type = types[t], q.src_type = QK_TYPE_BF16, q.rows = ROWS, q.cols = COLS;
        q.imatrix = im, q.imatrix_len = MATS * COLS;
        for (int k = 0; k < STEPS; k++) {
            q.src = qk_host(x + (size_t)k * ROWS * COLS, sbytes);
            q.dst = qk_host(want + (size_t)k * qbytes, qbytes);
            CHECK(qk_quantize(cpu, &q) == QK_OK, "cpu quantize: %s", qk_last_error(cpu));
        }
        /* step k on queue k % 2; before reusing a queue, its step (k - 2) is waited for and checked */
        for (int k = 0; k < STEPS + QK_QUEUES; k++) {
            const int queue = k % QK_QUEUES, done = k - QK_QUEUES;
            if (done >= 0) {
                qk_status st = qk_quantize_wait(dev, queue);
                size_t at = first_difference(want + (size_t)done * qbytes, dst[queue], qbytes);
                CHECK(st == QK_OK && at == qbytes, "%s queued step %d: status %d (%s), differs at byte %zu",
                      qk_type_name(types[t]), done, st, qk_last_error(dev), at);
            }
            if (k >= STEPS) continue;
            memcpy(src[queue], x + (size_t)k * ROWS * COLS, sbytes);
            memset(dst[queue], 0xA5, qbytes);
            q.src = qk_host(src[queue], sbytes);
            q.dst = qk_host(dst[queue], qbytes);
            CHECK(qk_quantize_queued(dev, queue, &q) == QK_OK, "queue %s: %s", qk_type_name(types[t]),
                  qk_last_error(dev));
        }
        free(want);
    }
    if (src[1] && dst[1] && supports(QK_OP_QUANTIZE, QK_TYPE_Q8_0)) {
        qk_quantize_desc q = qk_quantize_default_desc();
        q.type = QK_TYPE_Q8_0, q.src_type = QK_TYPE_BF16, q.rows = ROWS, q.cols = COLS;
        const size_t qbytes = (size_t)ROWS * qk_type_row_bytes(QK_TYPE_Q8_0, COLS);
        memcpy(src[0], x, sbytes);
        memcpy(src[1], x, sbytes);
        ((uint16_t *)src[1])[3 * COLS + 17] = 0x7FC0; /* NaN */
        for (int k = 0; k < QK_QUEUES; k++) {
            q.src = qk_host(src[k], sbytes);
            q.dst = qk_host(dst[k], qbytes);
            CHECK(qk_quantize_queued(dev, k, &q) == QK_OK, "queue: %s", qk_last_error(dev));
        }
        CHECK(qk_quantize_queued(dev, 0, &q) == QK_ERR_INVALID_ARG, "a busy queue took a second step");
        CHECK(qk_quantize_wait(dev, 0) == QK_OK, "finite step: %s", qk_last_error(dev));
        qk_status st = qk_quantize_wait(dev, 1);
        CHECK(st == QK_ERR_VALUE && strstr(qk_last_error(dev), "row 3, column 17 is NaN"), "queued NaN: %d %s", st,
              qk_last_error(dev));
        CHECK(qk_quantize_wait(dev, 1) == QK_OK, "an idle queue's wait failed: %s", qk_last_error(dev));
    }
    printf("queued steps on both queues: %s\n", tu_failed == before ? "identical" : "DIFFER");
    for (int k = 0; k < QK_QUEUES; k++) {
        if (src[k]) b->host_free(dev->state, src[k]);
        if (dst[k]) b->host_free(dev->state, dst[k]);
    }
    free(x), free(x32), free(im);
}

/* Over 2^31 elements: 64-bit indexing end to end (bf16 source, Q8_0, ~4.3 GB). Only where the
 * device has the memory and QK_TEST_LARGE is set (the GPU machine's script sets it). */
static void test_large_tensor(void) {
    if (!getenv("QK_TEST_LARGE") || !supports(QK_OP_QUANTIZE, QK_TYPE_Q8_0)) {
        printf("large-tensor test not run (set QK_TEST_LARGE=1 on a GPU with >= 16 GB)\n");
        return;
    }
    const int64_t cols = 4096, rows = ((1ll << 31) + 4096 * 3) / cols + 1;
    qk_type_info ti;
    qk_type_get_info(QK_TYPE_Q8_0, &ti);
    printf("large tensor: %lld x %lld = %lld elements\n", (long long)rows, (long long)cols, (long long)(rows * cols));
    check_type(&ti, rows, cols, QK_TYPE_BF16, 0);
}

static int wanted(const char *name) {
    const char *list = getenv("QK_TEST_TYPES");
    if (!list || !*list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    rng.s = tu_seed();
    dev_name = argc > 1 ? argv[1] : "cuda:0";
    qk_context_params p = qk_context_default_params();
    p.device = dev_name;
    const unsigned fp_mode = tu_flush_subnormals_begin();
    const qk_status created = qk_context_create(&p, &gpu);
    tu_flush_subnormals_end(fp_mode);
    if (created != QK_OK) {
        printf("SKIPPED: %s\n", qk_last_error(NULL));
        return SKIP;
    }
    qk_device_info di;
    qk_context_device(gpu, &di);
    printf("device: %s, %s, %.1f GiB\n", di.id, di.name, (double)di.memory_bytes / (1u << 30));
    p.device = "cpu";
    if (qk_context_create(&p, &cpu)) return fprintf(stderr, "cpu: %s\n", qk_last_error(NULL)), 1;

    /* a CPU Vulkan driver (lavapipe, in CI) gets the smaller shapes: the same code paths */
    const int software = strstr(di.name, "llvmpipe") != NULL;
    static const int64_t gpu_shapes[][2] = {{1, 256}, {7, 512}, {33, 4096}, {257, 1024}};
    static const int64_t sw_shapes[][2] = {{1, 256}, {7, 512}, {5, 1024}, {3, 4096}};
    const int64_t(*shapes)[2] = software ? sw_shapes : gpu_shapes;
    const size_t n_shapes = 4;
    static const qk_type srcs[] = {QK_TYPE_F32, QK_TYPE_F16, QK_TYPE_BF16};
    /* the format table says which types this backend implements: each of them must be here */
    const int impl = di.kind == QK_DEVICE_CUDA     ? QK_IMPL_CUDA
                     : di.kind == QK_DEVICE_VULKAN ? QK_IMPL_VULKAN
                                                   : QK_IMPL_CPU;
    for (int k = 0; k < qk_type_count(); k++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(k), &ti);
        const int promised = (qk_format_of(ti.type)->backends & impl) != 0;
        CHECK(!promised || supports(QK_OP_QUANTIZE, ti.type),
              "%s: the format table says %s quantizes it, but the backend has no quantizer", ti.name, dev_name);
        CHECK(!promised || supports(QK_OP_DEQUANTIZE, ti.type),
              "%s: the format table says %s dequantizes it, but the backend has no dequantizer", ti.name, dev_name);
        if (!wanted(ti.name) || (!supports(QK_OP_QUANTIZE, ti.type) && !supports(QK_OP_DEQUANTIZE, ti.type))) continue;
        int before = tu_failed;
        for (size_t s = 0; s < n_shapes; s++) {
            if (shapes[s][1] % ti.block_elems) continue;
            for (int f = 0; f < 3; f++) {
                if (!ti.needs_imatrix) check_type(&ti, shapes[s][0], shapes[s][1], srcs[f], 0);
                if (ti.uses_imatrix) check_type(&ti, shapes[s][0], shapes[s][1], srcs[f], 1);
                if (ti.uses_imatrix && f == 2) check_type(&ti, shapes[s][0], shapes[s][1], srcs[f], 2);
            }
        }
        if (supports(QK_OP_DEQUANTIZE, ti.type)) check_random_blocks(&ti);
        if (supports(QK_OP_QUANTIZE, ti.type) && 3072 % ti.block_elems == 0)
            check_measure(&ti, software ? 6 : 33, software ? 512 : 3072);
        printf("%-8s %s\n", ti.name, tu_failed == before ? "identical" : "DIFFERS");
    }
    static const qk_type offsets[] = {QK_TYPE_Q8_0, QK_TYPE_Q4_0, QK_TYPE_Q5_1,  QK_TYPE_MXFP4, QK_TYPE_IQ4_NL,
                                      QK_TYPE_Q4_K, QK_TYPE_Q6_K, QK_TYPE_IQ3_S, QK_TYPE_F16};
    int before_offsets = tu_failed;
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++)
        if (wanted(qk_type_name(offsets[k])) && supports(QK_OP_QUANTIZE, offsets[k]) &&
            supports(QK_OP_DEQUANTIZE, offsets[k]))
            check_buffer_offsets(offsets[k], 37, 768);
    printf("operands in a buffer at odd offsets: %s\n", tu_failed == before_offsets ? "identical" : "DIFFER");
#ifdef QK_HAVE_CUDA
    static const qk_type unaligned[] = {QK_TYPE_Q8_0,   QK_TYPE_Q4_0, QK_TYPE_Q5_1, QK_TYPE_MXFP4,
                                        QK_TYPE_IQ4_NL, QK_TYPE_Q4_K, QK_TYPE_Q6_K, QK_TYPE_IQ3_S};
    int before = tu_failed;
    for (size_t k = 0; k < sizeof unaligned / sizeof unaligned[0] && di.kind == QK_DEVICE_CUDA; k++)
        check_async_unaligned(unaligned[k], 37, 768);
    printf("async calls on unaligned device pointers: %s\n", tu_failed == before ? "identical" : "DIFFER");
#endif
    printf("random blocks: every value bit-identical but %zu NaN results with another payload\n", nan_payloads);
    test_nan_is_named();
    test_queued_steps(gpu);
    test_large_tensor();
    qk_context_destroy(gpu);
    qk_context_destroy(cpu);
#ifdef QK_HAVE_VULKAN
    char first[512];
    int verrors = qk_vk_validation_errors(first, sizeof first);
    CHECK(verrors == 0, "the Vulkan validation layers reported %d errors; the first: %s", verrors, first);
    if (getenv("QK_VK_VALIDATION")) printf("Vulkan validation layers: %d errors\n", verrors);
#endif
    return tu_finish();
}
