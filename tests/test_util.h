/* A small test harness: named checks, a seeded PRNG, file loading, poisoned buffers.
 * Each test program ends with "N passed, N failed" so ctest and CI read the counts. */
#ifndef QK_TEST_UTIL_H
#define QK_TEST_UTIL_H

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static int tu_passed, tu_failed;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            tu_passed++;                                                                                               \
        } else {                                                                                                       \
            tu_failed++;                                                                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

static inline int tu_finish(void) {
    printf("%d passed, %d failed\n", tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}

/* splitmix64: the golden data's generator, reused for fresh random test inputs. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;

static inline uint64_t tu_next(tu_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double tu_u01(tu_rng *r) { return ((double)(tu_next(r) >> 11) + 0.5) * 0x1.0p-53; }
static inline float tu_gauss(tu_rng *r) {
    double u1 = tu_u01(r), u2 = tu_u01(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A seed from the environment (QK_TEST_SEED) or the clock; always printed, so a failure
 * can be replayed. */
static inline uint64_t tu_seed(void) {
    const char *e = getenv("QK_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
    printf("seed: QK_TEST_SEED=0x%016" PRIx64 "\n", s);
    return s;
}

/* QK_TEST_FLUSH_SUBNORMALS=1: threads started between tu_flush_subnormals_begin() and _end()
 * (lavapipe's workers, started with its device, inherit the creating thread's MXCSR) run with
 * x86's flush-to-zero and denormals-are-zero: subnormal operands of float arithmetic and
 * compares read as zero and subnormal results become zero, as on a GPU driver that flushes them
 * (the H100's Vulkan driver does, whatever the module's DenormPreserve mode). The calling thread
 * gets its own mode back; elsewhere than x86 it does nothing and says so. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
static inline unsigned tu_flush_subnormals_begin(void) {
    const unsigned old = _mm_getcsr();
    const char *e = getenv("QK_TEST_FLUSH_SUBNORMALS");
    if (e && *e && strcmp(e, "0")) {
        _mm_setcsr(old | 0x8040u); /* FTZ (bit 15) and DAZ (bit 6) */
        printf("subnormals flushed in the device's threads (QK_TEST_FLUSH_SUBNORMALS)\n");
    }
    return old;
}
static inline void tu_flush_subnormals_end(unsigned old) { _mm_setcsr(old); }
#else
static inline unsigned tu_flush_subnormals_begin(void) {
    if (getenv("QK_TEST_FLUSH_SUBNORMALS")) printf("QK_TEST_FLUSH_SUBNORMALS: not on this CPU, ignored\n");
    return 0;
}
static inline void tu_flush_subnormals_end(unsigned old) { (void)old; }
#endif

/* 32 activations as the MoE paths that round them to 8 bits do (kernels/cuda/moe_route.cu,
 * quantize_x_group), in the same f32 operations: codes q[i] = round(x[i] * 127 / max |x|), half
 * to even; returns the scale d = max |x| / 127. */
static inline float tu_round_8bit(const float *x, int *q) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < 32; i++) q[i] = (int)nearbyintf(x[i] * inv);
    return d;
}

static inline void *tu_poisoned(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    memset(p, 0xA5, bytes);
    return p;
}

/* Reads a whole file; NULL (and a message) if it cannot. */
static inline void *tu_read_file(const char *dir, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(p);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Entries of folder `dir`, not counting hidden ones: what a failed run must not have added to. */
static inline int tu_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static inline int tu_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* 1 if the two files hold the same bytes; says where they first differ otherwise. */
static inline int tu_same_files(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    long at = 0;
    for (int ca = 0, cb = 0; same; at++) {
        ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (!same) fprintf(stderr, "  %s and %s differ at byte %ld\n", a, b, at);
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Runs the program `bin` with `args` (paths that need no quoting), its output dropped; its exit
 * code, -1 if it did not exit. */
static inline int tu_run(const char *bin, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null", bin, args);
    const int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#endif
