/* qk_model_quantize over several devices (desc.extra_contexts, issue 20 "every GPU of a node"),
 * with cpu contexts standing in for the extra devices: the output is byte for byte the one-device
 * run's, every worker converts some of the steps and together exactly the one-device run's, the
 * per-tensor errors are the same numbers, a failure on any worker is the one the one-device run
 * meets first and leaves no file, and bad context lists are refused.
 * Usage: test_model_devices PATH/TO/qkern */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qkern.h"
#include "test_util.h"

#define N_EXTRA 2
/* Small steps, so that each tensor is many of them and the workers share most tensors. */
#define STEP_BYTES ((size_t)256 << 10)

static const char *qkern_bin;
static char dir[256];
static qk_context *ctx, *extra[N_EXTRA];

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

static int cli(const char *args) { return tu_run(qkern_bin, args); }

/* The whole file, or NULL; *len its size. */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

/* One run of `q` on ctx alone (n_extra 0) or with the extra contexts; NULL result on failure. */
static qk_status run(qk_model_quantize_desc q, size_t n_extra, qk_model_result **r) {
    q.extra_contexts = n_extra ? extra : NULL;
    q.n_extra_contexts = n_extra;
    return qk_model_quantize(ctx, &q, r);
}

/* The same file, the same per-tensor errors, and the one-device run's steps and bytes shared by
 * all the devices, each having done some. */
static void check_same_run(const char *what, const qk_model_quantize_desc *q, const char *one_out,
                           const char *many_out) {
    qk_model_quantize_desc a = *q, b = *q;
    a.output = one_out, b.output = many_out;
    qk_model_result *ra = NULL, *rb = NULL;
    CHECK(run(a, 0, &ra) == QK_OK, "%s, one device: %s", what, qk_last_error(ctx));
    CHECK(run(b, N_EXTRA, &rb) == QK_OK, "%s, %d devices: %s", what, 1 + N_EXTRA, qk_last_error(ctx));
    if (!ra || !rb) goto done;
    CHECK(tu_same_files(one_out, many_out), "%s: %d devices wrote other bytes than one", what, 1 + N_EXTRA);
    CHECK(qk_model_result_device_count(ra) == 1 && qk_model_result_device_count(rb) == 1 + N_EXTRA,
          "%s: %zu and %zu device rows, want 1 and %d", what, qk_model_result_device_count(ra),
          qk_model_result_device_count(rb), 1 + N_EXTRA);
    const qk_model_device_stats *one = qk_model_result_device(ra, 0);
    uint64_t steps = 0, bytes = 0;
    for (size_t k = 0; k < qk_model_result_device_count(rb); k++) {
        const qk_model_device_stats *d = qk_model_result_device(rb, k);
        printf("%s: device %zu (%s): %llu steps, %llu bytes, %.3f s\n", what, k, d->device,
               (unsigned long long)d->steps, (unsigned long long)d->bytes, d->seconds);
        CHECK(d->steps > 0 && d->bytes > 0 && !strcmp(d->device, "cpu"), "%s: device %zu (%s) did %llu steps", what, k,
              d->device, (unsigned long long)d->steps);
        CHECK(d->h2d_seconds == 0 && d->kernel_seconds == 0 && d->d2h_seconds == 0 && !d->h2d_bytes && !d->d2h_bytes,
              "%s: device %zu, the cpu, has device time (%g, %g, %g s)", what, k, d->h2d_seconds, d->kernel_seconds,
              d->d2h_seconds);
        steps += d->steps;
        bytes += d->bytes;
    }
    CHECK(one && one->steps > 10 && steps == one->steps && bytes == one->bytes,
          "%s: the devices did %llu steps of %llu bytes, one device %llu of %llu", what, (unsigned long long)steps,
          (unsigned long long)bytes, one ? (unsigned long long)one->steps : 0ull,
          one ? (unsigned long long)one->bytes : 0ull);
    CHECK(qk_model_result_count(ra) == qk_model_result_count(rb), "%s: %zu and %zu tensors", what,
          qk_model_result_count(ra), qk_model_result_count(rb));
    for (size_t i = 0; i < qk_model_result_count(ra) && i < qk_model_result_count(rb); i++) {
        const qk_model_tensor *x = qk_model_result_tensor(ra, i), *y = qk_model_result_tensor(rb, i);
        if (x->rmse == y->rmse && x->rel_rmse == y->rel_rmse) continue;
        CHECK(0, "%s: tensor %s: rmse %.17g / %.17g on one device, %.17g / %.17g on %d", what, x->name, x->rmse,
              x->rel_rmse, y->rmse, y->rel_rmse, 1 + N_EXTRA);
        break;
    }
done:
    qk_model_result_free(ra);
    qk_model_result_free(rb);
    unlink(one_out);
    unlink(many_out);
}

/* Q4_K_M with imatrix and error measurement, IQ2_XXS, and requantizing a Q8_0 model: the
 * workers' paths (float input, imatrix slices, the dequantize before quantizing). */
static void test_many_devices_write_the_one_device_bytes(const char *small, const char *small_im, const char *tiny,
                                                         const char *tiny_im) {
    char one[300], many[300], q8[300], args[1024];
    path_in(one, sizeof one, "one.gguf");
    path_in(many, sizeof many, "many.gguf");
    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = small, q.preset = "Q4_K_M", q.imatrix = small_im, q.measure_error = 1, q.chunk_bytes = STEP_BYTES;
    check_same_run("Q4_K_M, imatrix, measured", &q, one, many);

    q = qk_model_quantize_default_desc();
    q.input = tiny, q.preset = "IQ2_XXS", q.imatrix = tiny_im, q.chunk_bytes = STEP_BYTES / 4;
    check_same_run("IQ2_XXS, imatrix", &q, one, many);

    path_in(q8, sizeof q8, "q8.gguf");
    snprintf(args, sizeof args, "quantize --quiet --device cpu %s %s Q8_0", tiny, q8);
    CHECK(cli(args) == 0, "qkern %s failed", args);
    q = qk_model_quantize_default_desc();
    q.input = q8, q.preset = "Q4_K_S", q.allow_requantize = 1, q.chunk_bytes = STEP_BYTES / 4, q.measure_error = 1;
    check_same_run("Q8_0 requantized to Q4_K_S", &q, one, many);
    unlink(q8);

    /* a shard's part: only its tensors go to the workers */
    q = qk_model_quantize_default_desc();
    q.input = tiny, q.preset = "Q5_K_M", q.shard_index = 2, q.shard_count = 3, q.chunk_bytes = STEP_BYTES / 4;
    char one_part[300], many_part[300];
    path_in(one, sizeof one, "one-s.gguf");
    path_in(many, sizeof many, "many-s.gguf");
    path_in(one_part, sizeof one_part, "one-s-00002-of-00003.gguf");
    path_in(many_part, sizeof many_part, "many-s-00002-of-00003.gguf");
    qk_model_quantize_desc a = q, b = q;
    a.output = one, b.output = many;
    qk_model_result *ra = NULL, *rb = NULL;
    CHECK(run(a, 0, &ra) == QK_OK && run(b, N_EXTRA, &rb) == QK_OK, "shard 2/3: %s", qk_last_error(ctx));
    CHECK(tu_same_files(one_part, many_part), "shard 2/3: %d devices wrote other bytes than one", 1 + N_EXTRA);
    qk_model_result_free(ra);
    qk_model_result_free(rb);
    unlink(one_part);
    unlink(many_part);
}

/* On a device with its own memory (a GPU; lavapipe, which CI has, counts: its buffers are the
 * driver's), a run's device row splits its time into host-to-device copies, kernels and copies
 * back: each there, each within the run's wall time, the copies' bytes at least the steps' input
 * and at most the data written; and the file is the cpu's. Skipped, and said so, where no such
 * device opens. */
static void test_device_rows_split_copies_and_kernels(const char *tiny, const char *tiny_im) {
    static const char *const devices[] = {"cuda:0", "vulkan:0"};
    char ref[300], out[300];
    path_in(ref, sizeof ref, "split-cpu.gguf");
    path_in(out, sizeof out, "split-dev.gguf");
    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = tiny, q.preset = "Q8_0", q.imatrix = tiny_im, q.output = ref, q.chunk_bytes = STEP_BYTES;
    qk_model_result *r = NULL;
    CHECK(run(q, 0, &r) == QK_OK, "Q8_0 on the cpu: %s", qk_last_error(ctx));
    qk_model_result_free(r);
    for (size_t k = 0; k < sizeof devices / sizeof devices[0]; k++) {
        qk_context_params cp = qk_context_default_params();
        cp.device = devices[k];
        qk_context *dev = NULL;
        if (qk_context_create(&cp, &dev) != QK_OK) {
            printf("device time split on %s: skipped (%s)\n", devices[k], qk_last_error(NULL));
            continue;
        }
        q.output = out;
        r = NULL;
        qk_status st = qk_model_quantize(dev, &q, &r);
        CHECK(st == QK_OK, "Q8_0 on %s: %s", devices[k], qk_last_error(dev));
        const qk_model_device_stats *d = r ? qk_model_result_device(r, 0) : NULL;
        qk_model_stats s;
        if (d && qk_model_result_stats(r, &s) == QK_OK) {
            printf("device time split on %s (%s): H2D %.4f s (%llu bytes), kernels %.4f s, D2H %.4f s (%llu bytes), "
                   "wall %.4f s\n",
                   devices[k], d->device, d->h2d_seconds, (unsigned long long)d->h2d_bytes, d->kernel_seconds,
                   d->d2h_seconds, (unsigned long long)d->d2h_bytes, s.wall_seconds);
            CHECK(d->h2d_seconds > 0 && d->kernel_seconds > 0 && d->d2h_seconds > 0, "%s: a device time is 0",
                  devices[k]);
            CHECK(d->h2d_seconds <= s.wall_seconds && d->kernel_seconds <= s.wall_seconds &&
                      d->d2h_seconds <= s.wall_seconds,
                  "%s: a device time exceeds the wall time %.4f s", devices[k], s.wall_seconds);
            CHECK(d->h2d_bytes >= d->bytes && d->d2h_bytes > 0 && d->d2h_bytes <= s.write.bytes,
                  "%s: copied %llu bytes up for %llu of input, %llu down for %llu written", devices[k],
                  (unsigned long long)d->h2d_bytes, (unsigned long long)d->bytes, (unsigned long long)d->d2h_bytes,
                  (unsigned long long)s.write.bytes);
            CHECK(tu_same_files(ref, out), "%s wrote other bytes than the cpu", devices[k]);
        }
        qk_model_result_free(r);
        unlink(out);
        qk_context_destroy(dev);
    }
    unlink(ref);
}

/* Writes a quiet NaN (bf16 0x7FC0) over the value at `at` bytes into `name`'s data, found in the
 * file by its first 64 bytes there. */
static int poison(const char *path, const char *name, uint64_t at) {
    qk_gguf *g = NULL;
    if (qk_gguf_open(path, &g) != QK_OK) return 0;
    const qk_gguf_tensor *t = qk_gguf_find_tensor(g, name);
    unsigned char probe[64];
    int ok = t && t->type == QK_TYPE_BF16 && at + sizeof probe <= t->bytes;
    if (ok) memcpy(probe, t->data + at, sizeof probe);
    qk_gguf_close(g);
    size_t len;
    unsigned char *b = ok ? slurp(path, &len) : NULL;
    unsigned char *hit = b ? memmem(b, len, probe, sizeof probe) : NULL;
    ok = hit && !memmem(hit + 1, len - (size_t)(hit + 1 - b), probe, sizeof probe); /* one place only */
    if (ok) {
        hit[0] = 0xC0, hit[1] = 0x7F;
        FILE *f = fopen(path, "wb");
        ok = f && fwrite(b, 1, len, f) == len;
        if (f) ok &= fclose(f) == 0;
    }
    free(b);
    return ok;
}

/* NaNs in two tensors, whichever a worker meets first: the failure reported is the first in output
 * order, the one-device run's, with the same message, and no file is left. */
static void test_a_failing_worker_stops_all_and_reports_the_first_failure(void) {
    char bad[300], out[300], args[1024];
    path_in(bad, sizeof bad, "bad.gguf");
    path_in(out, sizeof out, "bad-out.gguf");
    snprintf(args, sizeof args, "generate --size tiny --seed 9 %s", bad);
    CHECK(cli(args) == 0, "qkern %s failed", args);
    qk_gguf *g = NULL;
    CHECK(qk_gguf_open(bad, &g) == QK_OK, "open %s", bad);
    /* the first and the last float tensors of more than a few steps */
    const char *first = NULL, *last = NULL;
    uint64_t first_at = 0, last_at = 0;
    for (size_t i = 0; g && i < qk_gguf_tensor_count(g); i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, i);
        if (t->type != QK_TYPE_BF16 || t->bytes < 8 * (STEP_BYTES / 8)) continue;
        if (!first) first = t->name, first_at = t->bytes * 3 / 4 & ~(uint64_t)1;
        last = t->name, last_at = t->bytes / 4 & ~(uint64_t)1;
    }
    char first_name[QK_GGUF_MAX_NAME + 1] = "", last_name[QK_GGUF_MAX_NAME + 1] = "";
    if (first) snprintf(first_name, sizeof first_name, "%s", first);
    if (last) snprintf(last_name, sizeof last_name, "%s", last);
    qk_gguf_close(g);
    CHECK(first && strcmp(first_name, last_name), "no two large bf16 tensors in the tiny model");
    CHECK(poison(bad, last_name, last_at) && poison(bad, first_name, first_at), "cannot put NaNs into %s", bad);

    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = bad, q.output = out, q.preset = "Q4_K_M", q.chunk_bytes = STEP_BYTES / 8;
    char one_msg[1024];
    qk_model_result *r = NULL;
    CHECK(run(q, 0, &r) == QK_ERR_VALUE && !r, "one device: the NaN was not refused");
    snprintf(one_msg, sizeof one_msg, "%s", qk_last_error(ctx));
    /* the one of the two that comes first in output order (which is not the file's) */
    CHECK((strstr(one_msg, first_name) || strstr(one_msg, last_name)) && strstr(one_msg, "NaN"),
          "one device: '%s' names neither %s's nor %s's NaN", one_msg, first_name, last_name);
    for (int rep = 0; rep < 3; rep++) {
        qk_status st = run(q, N_EXTRA, &r);
        CHECK(st == QK_ERR_VALUE && !r, "%d devices: status %d for a NaN", 1 + N_EXTRA, (int)st);
        CHECK(!strcmp(qk_last_error(ctx), one_msg), "%d devices said '%s', one device '%s'", 1 + N_EXTRA,
              qk_last_error(ctx), one_msg);
    }
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.tmp.qkern", out);
    CHECK(!tu_exists(out) && !tu_exists(tmp), "a failed run left %s or its temporary", out);
    unlink(bad);
}

static int cancel_after(void *user) { return --*(int *)user < 0; }

/* Stopped by desc.cancel (asked on the calling thread, the writer) while the workers convert:
 * "interrupted", nothing left, and the call returns, the workers joined. */
static void test_cancel_with_many_devices_leaves_no_file(const char *small) {
    char out[300], tmp[400];
    path_in(out, sizeof out, "cancelled.gguf");
    snprintf(tmp, sizeof tmp, "%s.tmp.qkern", out);
    for (int after = 1; after <= 201; after += 50) {
        int left = after;
        qk_model_quantize_desc q = qk_model_quantize_default_desc();
        q.input = small, q.output = out, q.preset = "Q4_0", q.chunk_bytes = STEP_BYTES;
        q.cancel = cancel_after, q.user = &left;
        qk_model_result *r = NULL;
        qk_status st = run(q, N_EXTRA, &r);
        CHECK(st == QK_ERR_IO && !r && strstr(qk_last_error(ctx), "interrupted"),
              "cancelled after %d polls: status %d, '%s'", after, (int)st, qk_last_error(ctx));
        CHECK(!tu_exists(out) && !tu_exists(tmp), "cancelled after %d polls: %s or its temporary left", after, out);
    }
}

/* Refused before any file is made: a NULL context, one given twice, ctx itself, a count without
 * an array; the message says which. */
static void test_bad_context_lists_are_refused(const char *tiny) {
    char out[300];
    path_in(out, sizeof out, "refused.gguf");
    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = tiny, q.output = out, q.preset = "Q8_0";
    qk_context *with_null[2] = {extra[0], NULL}, *twice[2] = {extra[0], extra[0]}, *self[1] = {ctx};
    struct {
        qk_context **list;
        size_t n;
        const char *says;
    } cases[] = {
        {with_null, 2, "NULL"}, {twice, 2, "same context"}, {self, 1, "context itself"}, {NULL, 1, "no array"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        q.extra_contexts = cases[c].list, q.n_extra_contexts = cases[c].n;
        qk_model_result *r = NULL;
        qk_status st = qk_model_quantize(ctx, &q, &r);
        CHECK(st == QK_ERR_INVALID_ARG && !r && strstr(qk_last_error(ctx), cases[c].says),
              "case %zu: status %d, message '%s', want QK_ERR_INVALID_ARG saying '%s'", c, (int)st, qk_last_error(ctx),
              cases[c].says);
        CHECK(!tu_exists(out), "case %zu: a refused run wrote %s", c, out);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_model_devices PATH/TO/qkern\n"), 2;
    qkern_bin = argv[1];
    snprintf(dir, sizeof dir, "/tmp/qk_model_devices_XXXXXX");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    qk_context_params cp = qk_context_default_params();
    cp.device = "cpu";
    if (qk_context_create(&cp, &ctx) != QK_OK) return fprintf(stderr, "context: %s\n", qk_last_error(NULL)), 1;
    for (int k = 0; k < N_EXTRA; k++)
        if (qk_context_create(&cp, &extra[k]) != QK_OK) return fprintf(stderr, "context: %s\n", qk_last_error(NULL)), 1;

    char small[300], small_im[300], tiny[300], tiny_im[300], args[1024];
    path_in(small, sizeof small, "small.gguf");
    path_in(small_im, sizeof small_im, "small.imatrix.gguf");
    path_in(tiny, sizeof tiny, "tiny.gguf");
    path_in(tiny_im, sizeof tiny_im, "tiny.imatrix.gguf");
    snprintf(args, sizeof args, "generate --size small --seed 11 --imatrix %s %s", small_im, small);
    CHECK(cli(args) == 0, "qkern %s failed", args);
    snprintf(args, sizeof args, "generate --size tiny --seed 12 --imatrix %s %s", tiny_im, tiny);
    CHECK(cli(args) == 0, "qkern %s failed", args);

    test_many_devices_write_the_one_device_bytes(small, small_im, tiny, tiny_im);
    test_a_failing_worker_stops_all_and_reports_the_first_failure();
    test_cancel_with_many_devices_leaves_no_file(small);
    test_bad_context_lists_are_refused(tiny);
    test_device_rows_split_copies_and_kernels(tiny, tiny_im);

    unlink(small), unlink(small_im), unlink(tiny), unlink(tiny_im);
    CHECK(tu_dir_entries(dir) == 0, "%d files left in %s", tu_dir_entries(dir), dir);
    rmdir(dir);
    for (int k = 0; k < N_EXTRA; k++) qk_context_destroy(extra[k]);
    qk_context_destroy(ctx);
    return tu_finish();
}
