/* The CPU reference kernels against ggml's golden vectors (tests/data/golden):
 * - every dequantizer reproduces ggml's floats bit for bit, on quantizer outputs and on
 *   random blocks;
 * - every closed-formula quantizer reproduces ggml's bytes;
 * - every search-based quantizer is at least as accurate as ggml on the same input. */
#include <math.h>

#include "cpu_dispatch.h"
#include "golden_index.h"
#include "qkern.h"
#include "sha256.h"
#include "test_util.h"

static const char *golden_dir;

/* Dequantizing ggml's blocks gives ggml's floats, bit for bit, for every file of every type. */
static void test_dequantize_matches_golden(const golden_case *c, const qk_type_info *ti) {
    size_t qlen, dlen = 0;
    uint8_t *q = tu_read_file(golden_dir, c->q_file, &qlen);
    CHECK(q != NULL, "%s: missing golden file %s", c->type_name, c->q_file);
    if (!q) return;
    size_t nblocks = qlen / (size_t)ti->block_bytes;
    CHECK(qlen % (size_t)ti->block_bytes == 0, "%s: %s is %zu bytes, not whole %d-byte blocks", c->type_name, c->q_file,
          qlen, ti->block_bytes);
    size_t n = nblocks * (size_t)ti->block_elems;
    float *y = tu_poisoned(n * sizeof(float));
    qk_cpu_kernels(c->type_id).dequant(q, y, (int64_t)n);
    if (c->deq_file) {
        float *ref = tu_read_file(golden_dir, c->deq_file, &dlen);
        CHECK(ref && dlen == n * sizeof(float), "%s: %s has %zu bytes, want %zu", c->type_name, c->deq_file, dlen,
              n * sizeof(float));
        if (ref && dlen == n * sizeof(float)) {
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < n; i++)
                if (memcmp(&y[i], &ref[i], 4)) first = bad++ ? first : i;
            CHECK(bad == 0, "%s: dequantize %s: %zu of %zu values differ, first at %zu (block %zu): got %a want %a",
                  c->type_name, c->q_file, bad, n, first, first / (size_t)ti->block_elems, (double)y[first],
                  (double)ref[first]);
        }
        free(ref);
    } else {
        char hex[65];
        sha256_hex(y, n * sizeof(float), hex);
        CHECK(strcmp(hex, c->deq_sha256) == 0, "%s: dequantize %s: sha256 %s, want %s", c->type_name, c->q_file, hex,
              c->deq_sha256);
    }
    free(y);
    free(q);
}

/* Quantizing the golden input gives ggml's bytes (closed formulas) or an error no larger
 * than ggml's (searches). Prints the error ratio. */
static void test_quantize_against_golden(const golden_case *c, const qk_type_info *ti, const float *x,
                                         const float *im) {
    const int rows = GOLDEN_ROWS, cols = GOLDEN_COLS;
    size_t row_bytes = qk_type_row_bytes(ti->type, cols);
    uint8_t *q = tu_poisoned(row_bytes * rows);
    qk_cpu_kernel_pair k = qk_cpu_kernels(c->type_id);
    for (int r = 0; r < rows; r++)
        k.quant(x + (size_t)r * cols, q + (size_t)r * row_bytes, cols, c->imatrix ? im : NULL);

    size_t glen;
    uint8_t *g = tu_read_file(golden_dir, c->q_file, &glen);
    size_t same_blocks = 0, nblocks = row_bytes * rows / (size_t)ti->block_bytes;
    if (g && glen == row_bytes * rows)
        for (size_t b = 0; b < nblocks; b++)
            same_blocks += !memcmp(q + b * ti->block_bytes, g + b * ti->block_bytes, (size_t)ti->block_bytes);

    if (c->metric == 0) {
        CHECK(same_blocks == nblocks, "%s%s: quantize: %zu of %zu blocks differ from ggml's", c->type_name,
              c->imatrix ? " (imatrix)" : "", nblocks - same_blocks, nblocks);
        printf("  %-8s %-10s bytes identical to ggml: %zu/%zu blocks\n", c->type_name, c->imatrix ? "imatrix" : "plain",
               same_blocks, nblocks);
    } else {
        float *y = tu_poisoned(sizeof(float) * rows * cols);
        k.dequant(q, y, (int64_t)rows * cols);
        double num = 0, den = 0;
        int finite = 1;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) {
                double e = (double)y[(size_t)r * cols + j] - x[(size_t)r * cols + j];
                double w = c->metric == 2 ? im[j] : 1.0;
                finite &= isfinite(y[(size_t)r * cols + j]) != 0;
                num += w * e * e;
                den += w;
            }
        double err = sqrt(num / den), ratio = err / c->bound;
        /* the manifest prints 9 significant digits; allow that much, nothing more */
        CHECK(finite && ratio <= 1.0 + 1e-8, "%s%s: %s %.9g exceeds ggml's %.9g (ratio %.6f)", c->type_name,
              c->imatrix ? " (imatrix)" : "", c->metric == 2 ? "weighted rmse" : "rmse", err, c->bound, ratio);
        printf("  %-8s %-10s %s ratio to ggml %.6f (%zu/%zu blocks byte-identical)\n", c->type_name,
               c->imatrix ? "imatrix" : "plain", c->metric == 2 ? "weighted rmse" : "rmse        ", ratio, same_blocks,
               nblocks);
        free(y);
    }
    free(g);
    free(q);
}

/* The golden files are the manifest's: same size, same sha256, for every file it lists. */
static void test_golden_files_match_their_manifest(void) {
    for (size_t i = 0; i < sizeof golden_files / sizeof golden_files[0]; i++) {
        const golden_file *f = &golden_files[i];
        size_t len = 0;
        uint8_t *data = tu_read_file(golden_dir, f->name, &len);
        CHECK(data && len == f->bytes, "%s: %zu bytes, the manifest says %zu", f->name, data ? len : 0, f->bytes);
        if (data && len == f->bytes) {
            char hex[65];
            sha256_hex(data, len, hex);
            CHECK(strcmp(hex, f->sha256) == 0, "%s: sha256 %s, the manifest says %s", f->name, hex, f->sha256);
        }
        free(data);
    }
}

int main(int argc, char **argv) {
    golden_dir = argc > 1 ? argv[1] : "tests/data/golden";
    const char *only = argc > 2 ? argv[2] : NULL; /* optional: one type name */
    size_t xlen = 0, imlen = 0;
    float *x = tu_read_file(golden_dir, "input.f32", &xlen);
    float *im = tu_read_file(golden_dir, "imatrix.f32", &imlen);
    if (!x || !im || xlen != sizeof(float) * GOLDEN_ROWS * GOLDEN_COLS || imlen != sizeof(float) * GOLDEN_COLS) {
        fprintf(stderr, "golden data not found or wrong size in %s (set QK_GOLDEN_DIR at configure time)\n",
                golden_dir);
        return 1;
    }
    test_golden_files_match_their_manifest();
    for (size_t i = 0; i < sizeof golden_cases / sizeof golden_cases[0]; i++) {
        const golden_case *c = &golden_cases[i];
        if (only && strcmp(only, c->type_name)) continue;
        qk_type_info ti;
        CHECK(qk_type_get_info(c->type_id, &ti) == QK_OK, "%s: id %d missing from the format table", c->type_name,
              c->type_id);
        CHECK(strcmp(ti.name, c->type_name) == 0, "id %d: format table says %s, golden says %s", c->type_id, ti.name,
              c->type_name);
        test_dequantize_matches_golden(c, &ti);
        if (c->imatrix >= 0) test_quantize_against_golden(c, &ti, x, im);
    }
    free(x);
    free(im);
    return tu_finish();
}
