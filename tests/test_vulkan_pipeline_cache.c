/* The Vulkan pipeline cache on disk (runtime/core/vulkan/vk_pipeline_cache.c): a context that
 * created pipelines leaves one cache file in the cache folder, with the driver's header for this
 * device (lavapipe writes the header alone: it keeps no pipelines); a later context starts from
 * it and still computes what the CPU does; a damaged file is ignored and replaced; QK_VK_PIPELINE_CACHE=0 writes
 * nothing. Without a Vulkan device the test skips (77). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkern.h"
#include "test_util.h"

#define SKIP 77

static tu_rng rng;

/* The one regular file in dir whose name starts "vulkan-", into name; how many there are. */
static int cache_files(const char *dir, char *name, size_t n) {
    DIR *d = opendir(dir);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "vulkan-", 7) && strstr(e->d_name, ".bin") && !strstr(e->d_name, ".bin.")) {
            snprintf(name, n, "%s", e->d_name);
            count++;
        }
    if (d) closedir(d);
    return count;
}

/* One dequantize on a fresh vulkan:0 context (which creates its pipeline), checked against the
 * CPU's, then the context closed (which writes the cache). */
static void run_once(const char *why) {
    enum { ROWS = 4, COLS = 256 };
    const qk_type type = QK_TYPE_Q4_0;
    const size_t qbytes = ROWS * qk_type_row_bytes(type, COLS);
    float *x = tu_poisoned(ROWS * COLS * sizeof *x), *y_cpu = tu_poisoned(ROWS * COLS * sizeof *y_cpu),
          *y_vk = tu_poisoned(ROWS * COLS * sizeof *y_vk);
    uint8_t *q = tu_poisoned(qbytes);
    for (int i = 0; i < ROWS * COLS; i++) x[i] = tu_gauss(&rng);
    qk_context_params p = qk_context_default_params();
    qk_context *cpu = NULL, *vk = NULL;
    p.device = "cpu";
    CHECK(qk_context_create(&p, &cpu) == QK_OK, "cpu: %s", qk_last_error(NULL));
    p.device = "vulkan:0";
    CHECK(qk_context_create(&p, &vk) == QK_OK, "%s: vulkan:0: %s", why, qk_last_error(NULL));
    if (!cpu || !vk) goto done;
    qk_quantize_desc qd = qk_quantize_default_desc();
    qd.type = type, qd.rows = ROWS, qd.cols = COLS;
    qd.src = qk_host(x, ROWS * COLS * sizeof *x);
    qd.dst = qk_host(q, qbytes);
    CHECK(qk_quantize(cpu, &qd) == QK_OK, "cpu quantize: %s", qk_last_error(cpu));
    qk_dequantize_desc dd = qk_dequantize_default_desc();
    dd.type = type, dd.rows = ROWS, dd.cols = COLS;
    dd.src = qk_host(q, qbytes);
    dd.dst = qk_host(y_cpu, ROWS * COLS * sizeof *y_cpu);
    CHECK(qk_dequantize(cpu, &dd) == QK_OK, "cpu dequantize: %s", qk_last_error(cpu));
    dd.dst = qk_host(y_vk, ROWS * COLS * sizeof *y_vk);
    CHECK(qk_dequantize(vk, &dd) == QK_OK, "%s: vulkan dequantize: %s", why, qk_last_error(vk));
    CHECK(!memcmp(y_cpu, y_vk, ROWS * COLS * sizeof *y_vk), "%s: vulkan's dequantized values differ from the cpu's",
          why);
done:
    qk_context_destroy(vk);
    qk_context_destroy(cpu);
    free(x), free(y_cpu), free(y_vk), free(q);
}

int main(void) {
    rng.s = tu_seed();
    int vulkan = 0;
    for (int i = 0; i < qk_device_count(); i++) {
        qk_device_info info;
        if (qk_device_get(i, &info) == QK_OK && info.kind == QK_DEVICE_VULKAN) vulkan = 1;
    }
    if (!vulkan) {
        printf("SKIPPED: no Vulkan device (this build has no Vulkan backend, or no driver or device is present)\n");
        return SKIP;
    }
    char dir[] = "/tmp/qk_vk_cache_XXXXXX", sub[64], name[512], path[1024];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    /* a folder that does not exist yet: the cache makes it */
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    setenv("QK_CACHE_DIR", sub, 1);
    unsetenv("QK_VK_PIPELINE_CACHE");

    run_once("first context");
    CHECK(cache_files(sub, name, sizeof name) == 1, "after the first context: %d cache files in %s, expected 1",
          cache_files(sub, name, sizeof name), sub);
    size_t len = 0;
    uint8_t *data = tu_read_file(sub, name, &len);
    CHECK(data && len >= 32, "the cache file %s is %zu bytes, less than its header", name, len);
    /* VkPipelineCacheHeaderVersionOne: its length (32) and version (1), little-endian */
    CHECK(data && len >= 8 && data[0] == 32 && data[4] == 1, "the cache file %s has no version-one header", name);
    free(data);

    run_once("second context, from the cache");
    CHECK(cache_files(sub, name, sizeof name) == 1, "after the second context: %d cache files",
          cache_files(sub, name, sizeof name));

    /* a damaged file: ignored, and replaced by the driver's cache at close */
    snprintf(path, sizeof path, "%s/%s", sub, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fputc(0xff, f); /* not the header's length */
        for (int i = 1; i < 100; i++) fputc((int)(tu_next(&rng) & 0xff), f);
        fclose(f);
    }
    run_once("a damaged cache file");
    data = tu_read_file(sub, name, &len);
    CHECK(data && len >= 32 && data[0] == 32 && data[4] == 1, "the damaged cache file was not replaced");
    free(data);

    /* turned off: nothing written */
    char off[64];
    snprintf(off, sizeof off, "%s/off", dir);
    setenv("QK_CACHE_DIR", off, 1);
    setenv("QK_VK_PIPELINE_CACHE", "0", 1);
    run_once("QK_VK_PIPELINE_CACHE=0");
    CHECK(!tu_exists(off), "QK_VK_PIPELINE_CACHE=0 still made %s", off);

    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    CHECK(system(path) == 0, "cannot remove %s", dir);
    return tu_finish();
}
