/* The Vulkan backend: the backend table of backend.h over the device layer (vk_device.c), and
 * quantize / dequantize as batches of the shaders in shaders/ (one variant per type). Work too
 * large for one binding (the device's maxStorageBufferRange) is cut into pieces of whole rows
 * or blocks. Without a loader or a device, device_count() is 0 and the backend is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "vk_internal.h"

int qk_vk_device_count(void);
int qk_vk_is_software(int index);
qk_status qk_vk_device_info(int index, qk_device_info *info);
qk_status qk_vk_open(qk_context *ctx, int index, void **state);
void qk_vk_close(void *state);

#define WG_PARTS     64u  /* dequant.comp and quant.comp: invocations per workgroup */
#define WG_WORDS     256u /* convert.comp and scan_nonfinite.comp */
#define MAX_GROUPS_X 65535u

/* F32, F16 and BF16 convert element by element; the other types go through their variants. */
static int is_float_type(qk_type t) { return qk_format_of(t)->family == QK_FAMILY_FLOAT; }

static qk_status vulkan_open(qk_context *ctx, int index, void **state) {
    qk_status st = qk_vk_open(ctx, index, state);
    if (st != QK_OK) {
        qk_vk_close(*state);
        *state = NULL;
    }
    return st;
}

/* The legacy encoders that read an imatrix (all but Q8_0) weigh values by the row's mean
 * square (shaders/formats/legacy.glsl: QK_NEEDS_ROW_SIGMA2). */
static int needs_row_sigma2(qk_type t) {
    const qk_format *f = qk_format_of(t);
    return f->family == QK_FAMILY_LEGACY && f->uses_imatrix;
}

/* The format table's vulkan column, then every shader the operation may dispatch for the type:
 * each must be embedded and have the features its SPIR-V declares (e.g. the encoders' float64
 * division, common.glsl). The MoE's tiled shaders are optional: the plan takes them only where
 * they can run (moe_vulkan.c). */
static const char *vulkan_why_not(void *state, qk_op op, qk_type type, char *buf, size_t n) {
    const qk_format *f = qk_format_of(type);
    if (!f || !(f->backends & QK_IMPL_VULKAN)) return "no Vulkan implementation in the format table";
    char names[4][QK_VK_NAME_LEN];
    int count = 0;
    if (op == QK_OP_MOE) {
        qk_vk_variant(names[count++], "moe_vec", type);
        snprintf(names[count++], QK_VK_NAME_LEN, "moe_wsum");
    } else if (is_float_type(type)) {
        snprintf(names[count++], QK_VK_NAME_LEN, "convert");
    } else {
        qk_vk_variant(names[count++], op == QK_OP_QUANTIZE ? "quant" : "dequant", type);
        if (op == QK_OP_QUANTIZE && qk_vk_has_shader(qk_vk_variant(names[count], "quant_w", type))) count++;
        if (op == QK_OP_QUANTIZE && needs_row_sigma2(type)) snprintf(names[count++], QK_VK_NAME_LEN, "row_sigma2");
    }
    if (op == QK_OP_QUANTIZE) snprintf(names[count++], QK_VK_NAME_LEN, "scan_nonfinite"); /* every quantize */
    for (int i = 0; i < count; i++) {
        const char *lacks = qk_vk_shader_lacks(state, names[i], buf, n);
        if (lacks) return lacks;
    }
    return NULL;
}

static qk_status vulkan_alloc(qk_context *ctx, void *state, size_t bytes, void **mem) {
    return qk_vk_alloc(ctx, state, bytes, mem);
}
static void vulkan_free(void *state, void *mem) { qk_vk_free(state, mem); }
static qk_status vulkan_write(qk_context *ctx, void *state, void *mem, size_t offset, const void *src, size_t bytes) {
    return qk_vk_write(ctx, state, mem, offset, src, bytes);
}
static qk_status vulkan_read(qk_context *ctx, void *state, const void *mem, size_t offset, void *dst, size_t bytes) {
    return qk_vk_read(ctx, state, mem, offset, dst, bytes);
}

/* ---- helpers ---------------------------------------------------------------------------------- */

/* Workgroups for `items` invocations in groups of `per_group`, as (x, y) within the limits;
 * the shaders number groups y * x_count + x. */
static void grid_of(uint64_t items, uint32_t per_group, uint32_t *gx, uint32_t *gy) {
    uint64_t g = (items + per_group - 1) / per_group;
    if (!g) g = 1;
    *gx = (uint32_t)(g < MAX_GROUPS_X ? g : MAX_GROUPS_X);
    *gy = (uint32_t)((g + *gx - 1) / *gx);
}

/* Element conversion (F32/F16/BF16 both ways) of n values, in pieces. */
static qk_status convert(qk_context *ctx, qk_vk_state *s, qk_type src_type, const void *src, qk_type dst_type,
                         void *dst, uint64_t n) {
    size_t es = qk_float_type_size(src_type), ed = qk_float_type_size(dst_type);
    uint64_t per = qk_vk_binding_limit(s) / (es > ed ? es : ed);
    for (uint64_t done = 0; done < n; done += per) {
        uint64_t m = n - done < per ? n - done : per;
        qk_vk_arg args[2] = {{qk_vk_at(src, done * es), m * es}, {qk_vk_at(dst, done * ed), m * ed}};
        uint32_t params[3] = {(uint32_t)m, (uint32_t)src_type, (uint32_t)dst_type}, gx, gy;
        grid_of(m * ed / 4 + 2, WG_WORDS, &gx, &gy);
        qk_status st = qk_vk_dispatch(ctx, s, "convert", args, 2, params, sizeof params, gx, gy, 1);
        if (st != QK_OK) return st;
    }
    return QK_OK;
}

/* A batch of work recorded by `record` (inside a capture, it joins the captured submission), submitted and waited for;
 * the batch is abandoned on an error while recording. */
typedef qk_status (*recorder)(qk_context *ctx, qk_vk_state *s, const void *args);

static qk_status run_batch(qk_context *ctx, qk_vk_state *s, recorder record, const void *args) {
    qk_status st = qk_vk_begin(ctx, s);
    if (st != QK_OK) return st;
    qk_status rec = record(ctx, s, args);
    st = qk_vk_submit(ctx, s, NULL); /* also closes a batch whose recording failed */
    return rec != QK_OK ? rec : st;
}

/* ---- dequantize ----------------------------------------------------------------------------- */

static qk_status record_dequantize(qk_context *ctx, qk_vk_state *s, const void *p) {
    const qk_dequantize_args *a = p;
    uint64_t n = (uint64_t)a->rows * (uint64_t)a->cols;
    if (is_float_type(a->type)) return convert(ctx, s, a->type, a->src, a->dst_type, a->dst, n);
    const qk_format *f = qk_format_of(a->type);
    size_t ed = qk_float_type_size(a->dst_type);
    char name[QK_VK_NAME_LEN];
    qk_vk_variant(name, "dequant", a->type);
    uint64_t blocks = n / (uint64_t)f->block_elems, per = qk_vk_binding_limit(s) / ((uint64_t)f->block_elems * ed);
    for (uint64_t done = 0; done < blocks; done += per) {
        uint64_t m = blocks - done < per ? blocks - done : per;
        qk_vk_arg args[2] = {
            {qk_vk_at(a->src, done * (uint64_t)f->block_bytes), m * (uint64_t)f->block_bytes},
            {qk_vk_at(a->dst, done * (uint64_t)f->block_elems * ed), m * (uint64_t)f->block_elems * ed}};
        uint32_t parts = (uint32_t)(m * (uint64_t)f->block_elems / 32), params[2] = {parts, (uint32_t)a->dst_type}, gx,
                 gy;
        grid_of(parts, WG_PARTS, &gx, &gy);
        qk_status st = qk_vk_dispatch(ctx, s, name, args, 2, params, sizeof params, gx, gy, 1);
        if (st != QK_OK) return st;
    }
    return QK_OK;
}

static qk_status vulkan_dequantize(qk_context *ctx, void *state, const qk_dequantize_args *a) {
    qk_vk_state *s = state;
    void *buf;
    uint64_t off, avail;
    if (!is_float_type(a->type) && qk_vk_locate(s, a->dst, &buf, &off, &avail) && off % 4)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "vulkan: dequantize: dst at byte offset %llu; it must be a multiple of 4",
                       (unsigned long long)off);
    return run_batch(ctx, s, record_dequantize, a);
}

/* ---- quantize ------------------------------------------------------------------------------- */

/* Scratch of a quantize call: the non-finite scan's result and, for the legacy types with an
 * imatrix, the row statistics; the imatrix itself goes to the device first. */
typedef struct quant_job {
    const qk_quantize_args *a;
    void *first_bad;     /* uint32 per piece */
    const void *imatrix; /* device copy, or NULL */
    void *row_sigma2;    /* f32 per row, or NULL */
    uint64_t rows_per_piece;
    int pieces;
} quant_job;

static qk_status record_scan(qk_context *ctx, qk_vk_state *s, const void *p) {
    const quant_job *j = p;
    const qk_quantize_args *a = j->a;
    size_t es = qk_float_type_size(a->src_type);
    qk_status st = QK_OK;
    for (int k = 0; k < j->pieces && st == QK_OK; k++) {
        uint64_t r0 = (uint64_t)k * j->rows_per_piece, rows = (uint64_t)a->rows - r0;
        if (rows > j->rows_per_piece) rows = j->rows_per_piece;
        uint64_t n = rows * (uint64_t)a->cols;
        qk_vk_arg args[2] = {{qk_vk_at(a->src, r0 * (uint64_t)a->cols * es), n * es},
                             {qk_vk_at(j->first_bad, 4 * (uint64_t)k), 4}};
        uint32_t params[2] = {(uint32_t)n, (uint32_t)a->src_type}, gx, gy;
        grid_of(n < ((uint64_t)1 << 24) ? n : ((uint64_t)1 << 24), WG_WORDS, &gx, &gy);
        st = qk_vk_dispatch(ctx, s, "scan_nonfinite", args, 2, params, sizeof params, gx, gy, 1);
    }
    return st;
}

static qk_status record_quantize(qk_context *ctx, qk_vk_state *s, const void *p) {
    const quant_job *j = p;
    const qk_quantize_args *a = j->a;
    uint64_t n = (uint64_t)a->rows * (uint64_t)a->cols;
    if (is_float_type(a->type)) return convert(ctx, s, a->src_type, a->src, a->type, a->dst, n);
    const qk_format *f = qk_format_of(a->type);
    size_t es = qk_float_type_size(a->src_type);
    char name[QK_VK_NAME_LEN];
    /* a type whose weighted search is a module of its own (quant_w/, shaders.cmake) */
    if (!j->imatrix || !qk_vk_has_shader(qk_vk_variant(name, "quant_w", a->type)))
        qk_vk_variant(name, "quant", a->type);
    uint64_t bpr = (uint64_t)a->cols / (uint64_t)f->block_elems, row_bytes = bpr * (uint64_t)f->block_bytes;
    uint64_t mats = a->imatrix_mats ? (uint64_t)a->imatrix_mats : 1;
    qk_status st = QK_OK;
    for (int k = 0; k < j->pieces && st == QK_OK; k++) {
        uint64_t r0 = (uint64_t)k * j->rows_per_piece, rows = (uint64_t)a->rows - r0;
        if (rows > j->rows_per_piece) rows = j->rows_per_piece;
        const void *src = qk_vk_at(a->src, r0 * (uint64_t)a->cols * es);
        uint64_t src_bytes = rows * (uint64_t)a->cols * es;
        if (j->row_sigma2) {
            qk_vk_arg args[2] = {{src, src_bytes}, {qk_vk_at(j->row_sigma2, 4 * r0), 4 * rows}};
            uint32_t params[3] = {(uint32_t)rows, (uint32_t)a->cols, (uint32_t)a->src_type}, gx, gy;
            grid_of(rows, 64, &gx, &gy);
            if ((st = qk_vk_dispatch(ctx, s, "row_sigma2", args, 2, params, sizeof params, gx, gy, 1)) != QK_OK) break;
        }
        qk_vk_arg args[4] = {{src, src_bytes},
                             {qk_vk_at(a->dst, r0 * row_bytes), rows * row_bytes},
                             {j->imatrix, j->imatrix ? 4 * mats * (uint64_t)a->cols : 0},
                             {j->row_sigma2 ? qk_vk_at(j->row_sigma2, 4 * r0) : NULL, 4 * rows}};
        uint32_t params[7] = {(uint32_t)(rows * bpr), (uint32_t)bpr, (uint32_t)a->cols,
                              (uint32_t)a->src_type,  (uint32_t)r0,  (uint32_t)((uint64_t)a->rows / mats),
                              j->imatrix != NULL},
                 gx, gy;
        grid_of(rows * bpr, WG_PARTS, &gx, &gy);
        st = qk_vk_dispatch(ctx, s, name, args, 4, params, sizeof params, gx, gy, 1);
    }
    return st;
}

static qk_status vulkan_quantize(qk_context *ctx, void *state, const qk_quantize_args *a) {
    qk_vk_state *s = state;
    char buf[160];
    const char *why = vulkan_why_not(state, QK_OP_QUANTIZE, a->type, buf, sizeof buf);
    if (why) /* the runtime asked first; a white-box caller may not have */
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "vulkan: cannot quantize %s on this device (%s)", qk_type_name(a->type),
                       why);
    size_t es = qk_float_type_size(a->src_type);
    uint64_t row_src = (uint64_t)a->cols * es, row_dst = qk_type_row_bytes(a->type, a->cols);
    uint64_t lim = qk_vk_binding_limit(s), widest = row_src > row_dst ? row_src : row_dst;
    if (widest > lim)
        return qk_fail(ctx, QK_ERR_SHAPE, "vulkan: a row of %lld values exceeds one binding of this device",
                       (long long)a->cols);
    quant_job j = {.a = a, .rows_per_piece = lim / widest};
    if (j.rows_per_piece > ((uint64_t)1 << 31) / (uint64_t)a->cols)
        j.rows_per_piece = ((uint64_t)1 << 31) / (uint64_t)a->cols;
    if (!j.rows_per_piece) j.rows_per_piece = 1;
    j.pieces = (int)(((uint64_t)a->rows + j.rows_per_piece - 1) / j.rows_per_piece);

    /* the scan's result per piece: the first bad index, 0xffffffff where none */
    void *bad = NULL, *im = NULL, *sig = NULL;
    const size_t bad_bytes = 4 * (size_t)j.pieces;
    uint32_t *first = malloc(bad_bytes);
    qk_status st =
        first ? qk_vk_alloc(ctx, s, bad_bytes, &bad) : qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "vulkan: out of host memory");
    if (st == QK_OK) {
        memset(first, 0xff, bad_bytes);
        j.first_bad = qk_vk_address(bad, 0);
        st = qk_vk_write(ctx, s, bad, 0, first, bad_bytes);
    }
    if (st == QK_OK) st = run_batch(ctx, s, record_scan, &j);
    if (st == QK_OK) st = qk_vk_read(ctx, s, bad, 0, first, bad_bytes);
    for (int k = 0; st == QK_OK && k < j.pieces; k++) {
        if (first[k] == ~0u) continue;
        unsigned long long flat = (unsigned long long)k * j.rows_per_piece * (unsigned long long)a->cols + first[k];
        uint32_t bits = 0; /* the value itself says NaN or which infinity */
        if ((st = qk_vk_read_at(ctx, s, qk_vk_at(a->src, flat * es), &bits, es)) == QK_OK)
            st = qk_nonfinite_fail(ctx, a, flat, &bits);
    }
    if (st == QK_OK && a->imatrix && !is_float_type(a->type)) {
        size_t bytes = (size_t)a->imatrix_mats * (size_t)a->cols * sizeof(float);
        st = qk_vk_alloc(ctx, s, bytes, &im);
        if (st == QK_OK) st = qk_vk_write(ctx, s, im, 0, a->imatrix, bytes), j.imatrix = qk_vk_address(im, 0);
        if (st == QK_OK && needs_row_sigma2(a->type)) {
            st = qk_vk_alloc(ctx, s, 4 * (size_t)a->rows, &sig);
            j.row_sigma2 = st == QK_OK ? qk_vk_address(sig, 0) : NULL;
        }
    }
    if (st == QK_OK) st = run_batch(ctx, s, record_quantize, &j);
    if (sig) qk_vk_free(s, sig);
    if (im) qk_vk_free(s, im);
    if (bad) qk_vk_free(s, bad);
    free(first);
    return st;
}

const qk_backend qk_backend_vulkan = {
    .name = "vulkan",
    .kind = QK_DEVICE_VULKAN,
    .host_memory = 0,
    .device_count = qk_vk_device_count,
    .is_software = qk_vk_is_software,
    .device_info = qk_vk_device_info,
    .open = vulkan_open,
    .close = qk_vk_close,
    .why_not = vulkan_why_not,
    .alloc = vulkan_alloc,
    .free = vulkan_free,
    .write = vulkan_write,
    .read = vulkan_read,
    .address = qk_vk_address,
    .quantize = vulkan_quantize,
    .dequantize = vulkan_dequantize,
    .moe_plan = qk_vk_moe_plan,
    .moe = qk_vk_moe,
};
