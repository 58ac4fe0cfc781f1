/* The imatrix module against files assembled byte by byte from docs/formats/GGUF.md §5
 * (never with the module's own writer): values, the never-routed-expert rule, every kind of
 * broken input, the writers' round trips and byte layout, filter and find. */
#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byte_builder.h"
#include "gguf.h"
#include "imatrix.h"
#include "test_util.h"

static tu_rng rng;

static void patch_i32(bytes *b, size_t off, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) b->p[off + (size_t)i] = (unsigned char)(u >> (8 * i));
}
static void patch_f32(bytes *b, size_t off, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    patch_i32(b, off, (int32_t)u);
}
static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static float rd_f32(const unsigned char *p) {
    uint32_t u = rd_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}
static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- a GGUF file from §1-§3: KV pairs, tensor infos, 32-byte aligned data --------------------- */

enum { GT_F32 = 0, GT_F16 = 1 };

typedef struct g_tensor {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    const void *data;
    size_t bytes;
} g_tensor;

typedef struct g_file {
    bytes kv;
    uint64_t n_kv;
    g_tensor t[16];
    size_t nt;
} g_file;

static void kv_head(g_file *f, const char *key, uint32_t type) {
    b_str(&f->kv, key);
    b_u32(&f->kv, type);
    f->n_kv++;
}
static void kv_u32(g_file *f, const char *key, uint32_t v) {
    kv_head(f, key, 4);
    b_u32(&f->kv, v);
}
static void kv_i32(g_file *f, const char *key, int32_t v) {
    kv_head(f, key, 5);
    b_i32(&f->kv, v);
}
static void kv_string(g_file *f, const char *key, const char *s) {
    kv_head(f, key, 8);
    b_str(&f->kv, s);
}
static void kv_strings(g_file *f, const char *key, const char *const *s, size_t n) {
    kv_head(f, key, 9);
    b_u32(&f->kv, 8);
    b_u64(&f->kv, n);
    for (size_t i = 0; i < n; i++) b_str(&f->kv, s[i]);
}
static void g_add(g_file *f, const char *name, uint32_t type, uint32_t n_dims, int64_t ne0, int64_t ne1, int64_t ne2,
                  const void *data, size_t nbytes) {
    g_tensor *t = &f->t[f->nt++];
    *t = (g_tensor){name, type, n_dims, {ne0, ne1, ne2, 1}, data, nbytes};
}
static size_t align32(size_t x) { return (x + 31) / 32 * 32; }

static bytes g_build(const g_file *f) {
    bytes b = {0};
    b_put(&b, "GGUF", 4);
    b_u32(&b, 3);
    b_u64(&b, f->nt);
    b_u64(&b, f->n_kv);
    b_put(&b, f->kv.p, f->kv.len);
    size_t off = 0;
    for (size_t i = 0; i < f->nt; i++) {
        const g_tensor *t = &f->t[i];
        b_str(&b, t->name);
        b_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) b_u64(&b, (uint64_t)t->ne[d]);
        b_u32(&b, t->type);
        b_u64(&b, off);
        off += align32(t->bytes);
    }
    b_zeros(&b, align32(b.len) - b.len);
    for (size_t i = 0; i < f->nt; i++) {
        b_put(&b, f->t[i].data, f->t[i].bytes);
        b_zeros(&b, align32(f->t[i].bytes) - f->t[i].bytes);
    }
    return b;
}

/* ---- the reference GGUF imatrix and its broken variants --------------------------------------- */

#define E0 "blk.1.ffn_down_exps.weight" /* 4 experts of 32 columns, expert 2 never routed */
#define E1 "blk.0.attn_q.weight"        /* 64 columns, written 1-D as llama-imatrix does */
#define E2 "blk.0.attn_k.weight"        /* 64 columns, written [64, 1] / [1, 1] */

typedef struct ref_gguf {
    float s0[32 * 4], c0[4], in_sum0[32 * 4], s1[64], c1[1], in_sum1[64], s2[64], c2[1];
    uint16_t half[64];
} ref_gguf;

static float rand_count(void) { return (float)(1 + tu_next(&rng) % 4096); }

static void ref_fill(ref_gguf *r) {
    for (int m = 0; m < 4; m++) r->c0[m] = rand_count();
    r->c0[2] = 0;
    r->c1[0] = rand_count();
    r->c2[0] = rand_count();
    for (int i = 0; i < 128; i++) {
        float g = tu_gauss(&rng);
        r->s0[i] = r->c0[i / 32] * g * g;
    }
    for (int i = 0; i < 128; i++) r->in_sum0[i] = r->c0[i / 32] * tu_gauss(&rng);
    for (int i = 32 * 2; i < 32 * 3; i++) {
        r->s0[i] = 123.0f + (float)i; /* must be ignored: count 0 */
        r->in_sum0[i] = -55.0f;
    }
    for (int i = 0; i < 64; i++) {
        float g = tu_gauss(&rng), h = tu_gauss(&rng);
        r->s1[i] = r->c1[0] * g * g;
        r->s2[i] = r->c2[0] * h * h;
        r->in_sum1[i] = r->c1[0] * g * (float)(tu_u01(&rng) < 0.5 ? -0.5 : 0.5);
    }
    memset(r->half, 0, sizeof r->half);
}

enum {
    NO_DATASETS = 1 << 0,
    NO_CHUNK_COUNT = 1 << 1,
    NO_CHUNK_SIZE = 1 << 2,
    NO_COUNTS = 1 << 3,
    NO_SUM2 = 1 << 4,
    SUM2_F16 = 1 << 5,
    COUNTS_F16 = 1 << 6,
    COUNTS_SHAPE = 1 << 7,
    SUM2_3D = 1 << 8,
    DATASETS_STRING = 1 << 9,
    CHUNK_COUNT_NEG = 1 << 10,
    DATASETS_EMPTY = 1 << 11,
    IN_SUM_F16 = 1 << 12,
    IN_SUM_SHAPE = 1 << 13,
};

#define REF_CHUNK_COUNT 7
#define REF_CHUNK_SIZE  512

/* Tensor order is deliberately not the entry order, and counts sometimes precede sums: the
 * reader must pair by name. The last tensor's data is 256 bytes, so the file has no final
 * padding and every shorter prefix is truly truncated. */
static bytes ref_build(const ref_gguf *r, unsigned flags) {
    g_file f = {0};
    static const char *const datasets[] = {"calib.txt", "second.txt"};
    kv_string(&f, "general.type", "imatrix");
    if (flags & DATASETS_STRING)
        kv_string(&f, "imatrix.datasets", "calib.txt");
    else if (!(flags & NO_DATASETS))
        kv_strings(&f, "imatrix.datasets", datasets, (flags & DATASETS_EMPTY) ? 0 : 2);
    if (flags & CHUNK_COUNT_NEG)
        kv_i32(&f, "imatrix.chunk_count", -1);
    else if (!(flags & NO_CHUNK_COUNT))
        kv_u32(&f, "imatrix.chunk_count", REF_CHUNK_COUNT);
    if (!(flags & NO_CHUNK_SIZE)) kv_u32(&f, "imatrix.chunk_size", REF_CHUNK_SIZE);

    g_add(&f, E0 ".counts", GT_F32, 2, 1, (flags & COUNTS_SHAPE) ? 3 : 4, 1, r->c0, (flags & COUNTS_SHAPE) ? 12 : 16);
    if (flags & SUM2_3D)
        g_add(&f, E0 ".in_sum2", GT_F32, 3, 32, 2, 2, r->s0, sizeof r->s0);
    else
        g_add(&f, E0 ".in_sum2", GT_F32, 2, 32, 4, 1, r->s0, sizeof r->s0);
    if (flags & IN_SUM_F16)
        g_add(&f, E1 ".in_sum", GT_F16, 1, 64, 1, 1, r->half, sizeof r->half);
    else if (flags & IN_SUM_SHAPE)
        g_add(&f, E1 ".in_sum", GT_F32, 2, 32, 2, 1, r->in_sum1, sizeof r->in_sum1);
    else
        g_add(&f, E1 ".in_sum", GT_F32, 1, 64, 1, 1, r->in_sum1, sizeof r->in_sum1);
    g_add(&f, E0 ".in_sum", GT_F32, 2, 32, 4, 1, r->in_sum0, sizeof r->in_sum0);
    if (flags & SUM2_F16)
        g_add(&f, E1 ".in_sum2", GT_F16, 1, 64, 1, 1, r->half, sizeof r->half);
    else
        g_add(&f, E1 ".in_sum2", GT_F32, 1, 64, 1, 1, r->s1, sizeof r->s1);
    if (!(flags & NO_COUNTS)) g_add(&f, E1 ".counts", GT_F32, 1, 1, 1, 1, r->c1, 4);
    if (flags & COUNTS_F16)
        g_add(&f, E2 ".counts", GT_F16, 2, 1, 1, 1, r->half, 2);
    else
        g_add(&f, E2 ".counts", GT_F32, 2, 1, 1, 1, r->c2, 4);
    if (!(flags & NO_SUM2)) g_add(&f, E2 ".in_sum2", GT_F32, 2, 64, 1, 1, r->s2, sizeof r->s2);
    bytes b = g_build(&f);
    free(f.kv.p);
    return b;
}

/* ---- checks ---------------------------------------------------------------------------------- */

/* Parses from an exactly sized heap copy, so the sanitizers see any read past the end. */
static qk_status parse_copy(const void *p, size_t n, const char *name, qk_imatrix **out) {
    void *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    qk_status st = qk_imatrix_parse(copy, n, name, out);
    free(copy);
    return st;
}

/* A clean refusal: an error status, no result, a message naming the file and the `want`s. */
static int expect_fail(const void *p, size_t n, const char *file, const char *what, ...) {
    qk_imatrix *im = (qk_imatrix *)&rng; /* must be cleared */
    qk_status st = parse_copy(p, n, file, &im);
    const char *msg = qk_last_error(NULL);
    int ok = st != QK_OK && im == NULL && strstr(msg, file) != NULL;
    CHECK(st != QK_OK, "%s: accepted (%zu bytes)", what, n);
    CHECK(im == NULL, "%s: result not cleared on failure", what);
    CHECK(strstr(msg, file) != NULL, "%s: message does not name the file: %s", what, msg);
    va_list ap;
    va_start(ap, what);
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;) {
        CHECK(strstr(msg, want) != NULL, "%s: message lacks '%s': %s", what, want, msg);
        ok &= strstr(msg, want) != NULL;
    }
    va_end(ap);
    if (st == QK_OK) qk_imatrix_free(im);
    return ok;
}

static void check_sorted(const qk_imatrix *im, const char *what) {
    for (size_t i = 1; i < im->n_entries; i++)
        CHECK(strcmp(im->entries[i - 1].name, im->entries[i].name) < 0, "%s: entries %zu and %zu out of order", what,
              i - 1, i);
}

/* ---- GGUF reader ----------------------------------------------------------------------------- */

/* A hand-made GGUF imatrix: values are in_sum2 / counts, the never-routed expert reads 1.0,
 * 1-D and [K, 1] shapes are equivalent, the first dataset is kept; means are in_sum / counts
 * where an entry has in_sum (0.0 for the never-routed expert), and absent where it has none. */
static void test_gguf_values_from_hand_made_file(void) {
    ref_gguf r;
    ref_fill(&r);
    bytes b = ref_build(&r, 0);
    qk_imatrix *im = NULL;
    qk_status st = parse_copy(b.p, b.len, "hand.gguf", &im);
    CHECK(st == QK_OK, "hand-made GGUF imatrix refused: %s", qk_last_error(NULL));
    if (st == QK_OK) {
        CHECK(im->n_entries == 3, "%zu entries, expected 3", im->n_entries);
        CHECK(!im->legacy && im->chunk_count == REF_CHUNK_COUNT && im->chunk_size == REF_CHUNK_SIZE,
              "legacy %d chunk_count %lld chunk_size %lld", im->legacy, (long long)im->chunk_count,
              (long long)im->chunk_size);
        CHECK(strcmp(im->dataset, "calib.txt") == 0, "dataset '%s'", im->dataset);
        check_sorted(im, "GGUF");
        const qk_imatrix_entry *e0 = qk_imatrix_find(im, E0), *e1 = qk_imatrix_find(im, E1),
                               *e2 = qk_imatrix_find(im, E2);
        CHECK(e0 && e0->n_mat == 4 && e0->cols == 32, "expert entry shape");
        CHECK(e1 && e1->n_mat == 1 && e1->cols == 64, "1-D entry shape");
        CHECK(e2 && e2->n_mat == 1 && e2->cols == 64, "[K, 1] entry shape");
        if (e0 && e1 && e2 && e0->n_mat == 4 && e1->cols == 64 && e2->cols == 64) {
            int bad = 0;
            for (int i = 0; i < 128; i++) {
                float want = r.c0[i / 32] > 0 ? r.s0[i] / r.c0[i / 32] : 1.0f;
                if (!same_bits(e0->values[i], want) && bad++ < 3)
                    CHECK(0, "expert entry value %d: %g, expected %g", i, e0->values[i], want);
            }
            for (int i = 0; i < 64; i++) {
                if (!same_bits(e1->values[i], r.s1[i] / r.c1[0]) && bad++ < 6)
                    CHECK(0, "E1 value %d: %g, expected %g", i, e1->values[i], r.s1[i] / r.c1[0]);
                if (!same_bits(e2->values[i], r.s2[i] / r.c2[0]) && bad++ < 9)
                    CHECK(0, "E2 value %d: %g, expected %g", i, e2->values[i], r.s2[i] / r.c2[0]);
            }
            CHECK(bad == 0, "%d values differ", bad);
            CHECK(e0->values[2 * 32] == 1.0f && e0->values[3 * 32 - 1] == 1.0f, "never-routed expert is not 1.0");
            CHECK(e0->means && e1->means && !e2->means, "means: E0 %p, E1 %p (both expected), E2 %p (none expected)",
                  (void *)e0->means, (void *)e1->means, (void *)e2->means);
            for (int i = 0; e0->means && i < 128; i++) {
                float want = r.c0[i / 32] > 0 ? r.in_sum0[i] / r.c0[i / 32] : 0.0f;
                if (!same_bits(e0->means[i], want) && bad++ < 3)
                    CHECK(0, "expert entry mean %d: %g, expected %g", i, e0->means[i], want);
            }
            for (int i = 0; e1->means && i < 64; i++)
                if (!same_bits(e1->means[i], r.in_sum1[i] / r.c1[0]) && bad++ < 6)
                    CHECK(0, "E1 mean %d: %g, expected %g", i, e1->means[i], r.in_sum1[i] / r.c1[0]);
            CHECK(bad == 0, "%d means differ", bad);
        }
        CHECK(!qk_imatrix_find(im, E1 ".in_sum") && !qk_imatrix_find(im, E1 ".in_sum2"),
              "suffixed names must not be entries");
    }
    qk_imatrix_free(im);

    /* An empty dataset list is allowed: the dataset is then "". */
    b.len = 0;
    free(b.p);
    b = ref_build(&r, DATASETS_EMPTY);
    im = NULL;
    st = parse_copy(b.p, b.len, "nodata.gguf", &im);
    CHECK(st == QK_OK && strcmp(im->dataset, "") == 0, "empty imatrix.datasets: %s", qk_last_error(NULL));
    qk_imatrix_free(im);
    free(b.p);
}

/* Each prefix of a GGUF imatrix is refused (and read nothing past its end under ASan). */
static void test_gguf_truncated_at_every_length(void) {
    ref_gguf r;
    ref_fill(&r);
    bytes b = ref_build(&r, 0);
    int bad = 0;
    for (size_t n = 0; n < b.len; n++) {
        qk_imatrix *im = NULL;
        if (parse_copy(b.p, n, "cut.gguf", &im) == QK_OK) {
            if (bad++ < 3) CHECK(0, "GGUF imatrix cut to %zu of %zu bytes accepted", n, b.len);
            qk_imatrix_free(im);
        } else if (!strstr(qk_last_error(NULL), "cut.gguf") && bad++ < 3) {
            CHECK(0, "cut to %zu: message does not name the file: %s", n, qk_last_error(NULL));
        }
    }
    CHECK(bad == 0, "%d of %zu GGUF prefixes misbehaved", bad, b.len);
    free(b.p);
}

static void test_gguf_broken_files_are_refused(void) {
    ref_gguf r;
    ref_fill(&r);
    static const struct {
        unsigned flags;
        const char *what, *want;
    } cases[] = {
        {NO_DATASETS, "missing imatrix.datasets", "imatrix.datasets"},
        {NO_CHUNK_COUNT, "missing imatrix.chunk_count", "imatrix.chunk_count"},
        {NO_CHUNK_SIZE, "missing imatrix.chunk_size", "imatrix.chunk_size"},
        {DATASETS_STRING, "imatrix.datasets not an array", "imatrix.datasets"},
        {CHUNK_COUNT_NEG, "negative chunk count", "imatrix.chunk_count"},
        {NO_COUNTS, "in_sum2 without counts", E1 ".counts"},
        {NO_SUM2, "counts without in_sum2", E2 ".in_sum2"},
        {SUM2_F16, "F16 in_sum2", "F32"},
        {COUNTS_F16, "F16 counts", "F32"},
        {COUNTS_SHAPE, "counts of the wrong length", E0 ".counts"},
        {SUM2_3D, "3-D in_sum2", E0 ".in_sum2"},
        {IN_SUM_F16, "F16 in_sum", "F32"},
        {IN_SUM_SHAPE, "in_sum of another shape than in_sum2", E1 ".in_sum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = ref_build(&r, cases[i].flags);
        expect_fail(b.p, b.len, "broken.gguf", cases[i].what, cases[i].want, (const char *)NULL);
        free(b.p);
    }

    /* Bad numbers, named by entry and index. */
    ref_gguf v = r;
    v.s1[5] = NAN;
    bytes b = ref_build(&v, 0);
    expect_fail(b.p, b.len, "nan.gguf", "NaN in in_sum2", E1, "value 5", (const char *)NULL);
    free(b.p);
    v = r;
    v.s0[32 + 7] = INFINITY;
    b = ref_build(&v, 0);
    expect_fail(b.p, b.len, "inf.gguf", "Inf in in_sum2", E0, "value 39", (const char *)NULL);
    free(b.p);
    v = r;
    v.s2[63] = -1.0f;
    b = ref_build(&v, 0);
    expect_fail(b.p, b.len, "neg.gguf", "negative in_sum2", E2, "value 63", (const char *)NULL);
    free(b.p);
    v = r;
    v.in_sum0[32 * 3 + 4] = NAN;
    b = ref_build(&v, 0);
    expect_fail(b.p, b.len, "nanmean.gguf", "NaN in in_sum", E0, "mean 100", (const char *)NULL);
    free(b.p);
    v = r;
    v.c0[1] = -2.0f;
    b = ref_build(&v, 0);
    expect_fail(b.p, b.len, "negcount.gguf", "negative count", E0, "count 1", (const char *)NULL);
    free(b.p);
    v = r;
    v.c0[3] = NAN;
    b = ref_build(&v, 0);
    expect_fail(b.p, b.len, "nancount.gguf", "NaN count", E0, "count 3", (const char *)NULL);
    free(b.p);

    /* A valid GGUF file without imatrix tensors, and one without any tensor. */
    static const float one = 1.0f;
    g_file f = {0};
    kv_strings(&f, "imatrix.datasets", (const char *const[]){"x"}, 1);
    kv_u32(&f, "imatrix.chunk_count", 1);
    kv_u32(&f, "imatrix.chunk_size", 1);
    bytes e = g_build(&f);
    expect_fail(e.p, e.len, "empty.gguf", "GGUF without tensors", (const char *)NULL);
    free(e.p);
    g_add(&f, "output_norm.weight", GT_F32, 1, 1, 1, 1, &one, 4);
    e = g_build(&f);
    expect_fail(e.p, e.len, "model.gguf", "GGUF without imatrix tensors", (const char *)NULL);
    free(e.p);
    f.nt = 0;
    g_add(&f, ".in_sum2", GT_F32, 1, 1, 1, 1, &one, 4);
    g_add(&f, ".counts", GT_F32, 1, 1, 1, 1, &one, 4);
    e = g_build(&f);
    expect_fail(e.p, e.len, "noname.gguf", "empty entry name", (const char *)NULL);
    free(e.p);
    free(f.kv.p);
}

/* ---- legacy reader --------------------------------------------------------------------------- */

#define L0        "output.weight"            /* ncall 5, 48 values */
#define L1        "blk.0.ffn_up_exps.weight" /* ncall 3, 16 columns x 4 experts */
#define L2        "blk.0.attn_v.weight"      /* ncall 0: values are stored as means */
#define L_DATASET "wiki.train.raw"

typedef struct ref_legacy {
    float v0[48], v1[64], v2[32];
    bytes b;
    size_t off_n, off_len[3], off_ncall[3], off_nval[3], off_vals[3], off_trailer;
} ref_legacy;

static void leg_entry(ref_legacy *r, int k, const char *name, int32_t ncall, const float *v, int32_t n) {
    r->off_len[k] = r->b.len;
    b_i32(&r->b, (int32_t)strlen(name));
    b_put(&r->b, name, strlen(name));
    r->off_ncall[k] = r->b.len;
    b_i32(&r->b, ncall);
    r->off_nval[k] = r->b.len;
    b_i32(&r->b, n);
    r->off_vals[k] = r->b.len;
    for (int32_t i = 0; i < n; i++) b_f32(&r->b, v[i]);
}

static void legacy_build(ref_legacy *r, int trailer) {
    for (int i = 0; i < 48; i++) r->v0[i] = 5.0f * (float)fabs(tu_gauss(&rng));
    for (int i = 0; i < 64; i++) r->v1[i] = 3.0f * (float)fabs(tu_gauss(&rng));
    for (int i = 0; i < 32; i++) r->v2[i] = (float)fabs(tu_gauss(&rng));
    r->v1[2 * 16] = 3.0f; /* a never-routed expert is stored as 1.0 * ncall */
    r->b = (bytes){0};
    r->off_n = 0;
    b_i32(&r->b, 3);
    leg_entry(r, 0, L0, 5, r->v0, 48);
    leg_entry(r, 1, L1, 3, r->v1, 64);
    leg_entry(r, 2, L2, 0, r->v2, 32);
    r->off_trailer = r->b.len;
    if (trailer) {
        b_i32(&r->b, 5);
        b_i32(&r->b, (int32_t)strlen(L_DATASET));
        b_put(&r->b, L_DATASET, strlen(L_DATASET));
    }
}

static void check_legacy_values(const qk_imatrix *im, const ref_legacy *r, const char *what) {
    const qk_imatrix_entry *e[3] = {qk_imatrix_find(im, L0), qk_imatrix_find(im, L1), qk_imatrix_find(im, L2)};
    const float *v[3] = {r->v0, r->v1, r->v2};
    const int n[3] = {48, 64, 32}, ncall[3] = {5, 3, 0};
    for (int k = 0; k < 3; k++) {
        CHECK(e[k] && e[k]->n_mat == 1 && e[k]->cols == n[k], "%s: entry %d missing or shape wrong", what, k);
        if (!e[k] || e[k]->cols != n[k]) continue;
        int bad = 0;
        for (int i = 0; i < n[k]; i++) {
            float want = ncall[k] > 0 ? v[k][i] / (float)ncall[k] : v[k][i];
            if (!same_bits(e[k]->values[i], want) && bad++ < 3)
                CHECK(0, "%s: entry %d value %d: %g, expected %g", what, k, i, e[k]->values[i], want);
        }
        CHECK(bad == 0, "%s: entry %d: %d values differ", what, k, bad);
    }
}

static void test_legacy_values_from_hand_made_file(void) {
    ref_legacy r;
    legacy_build(&r, 1);
    qk_imatrix *im = NULL;
    qk_status st = parse_copy(r.b.p, r.b.len, "hand.dat", &im);
    CHECK(st == QK_OK, "hand-made legacy imatrix refused: %s", qk_last_error(NULL));
    if (st == QK_OK) {
        CHECK(im->n_entries == 3 && im->legacy == 1, "%zu entries, legacy %d", im->n_entries, im->legacy);
        CHECK(im->chunk_count == 5 && im->chunk_size == 0, "chunk_count %lld chunk_size %lld",
              (long long)im->chunk_count, (long long)im->chunk_size);
        CHECK(strcmp(im->dataset, L_DATASET) == 0, "dataset '%s'", im->dataset);
        check_sorted(im, "legacy");
        check_legacy_values(im, &r, "with trailer");
        const qk_imatrix_entry *e1 = qk_imatrix_find(im, L1);
        CHECK(e1 && e1->values[32] == 1.0f, "never-routed expert stored as ncall reads 1.0");
    }
    qk_imatrix_free(im);
    free(r.b.p);

    legacy_build(&r, 0);
    im = NULL;
    st = parse_copy(r.b.p, r.b.len, "old.dat", &im);
    CHECK(st == QK_OK, "legacy imatrix without trailer refused: %s", qk_last_error(NULL));
    if (st == QK_OK) {
        CHECK(im->chunk_count == 0 && strcmp(im->dataset, "") == 0, "no trailer: chunk_count %lld dataset '%s'",
              (long long)im->chunk_count, im->dataset);
        check_legacy_values(im, &r, "without trailer");
    }
    qk_imatrix_free(im);

    /* A negative ncall also means "stored as is". */
    patch_i32(&r.b, r.off_ncall[2], -4);
    im = NULL;
    st = parse_copy(r.b.p, r.b.len, "negcall.dat", &im);
    CHECK(st == QK_OK, "negative ncall refused: %s", qk_last_error(NULL));
    if (st == QK_OK) check_legacy_values(im, &r, "negative ncall");
    qk_imatrix_free(im);
    free(r.b.p);
}

/* Every prefix is refused, except the one that ends exactly where the optional trailer starts. */
static void test_legacy_truncated_at_every_length(void) {
    ref_legacy r;
    legacy_build(&r, 1);
    int bad = 0;
    for (size_t n = 0; n < r.b.len; n++) {
        qk_imatrix *im = NULL;
        qk_status st = parse_copy(r.b.p, n, "cut.dat", &im);
        if (n == r.off_trailer) {
            CHECK(st == QK_OK, "prefix without the trailer refused: %s", qk_last_error(NULL));
        } else if (st == QK_OK) {
            if (bad++ < 3) CHECK(0, "legacy imatrix cut to %zu of %zu bytes accepted", n, r.b.len);
        } else if (!strstr(qk_last_error(NULL), "cut.dat") && bad++ < 3) {
            CHECK(0, "cut to %zu: message does not name the file: %s", n, qk_last_error(NULL));
        }
        qk_imatrix_free(im);
    }
    CHECK(bad == 0, "%d of %zu legacy prefixes misbehaved", bad, r.b.len);
    free(r.b.p);
}

static void test_legacy_bad_lengths_and_values(void) {
    ref_legacy r;
    legacy_build(&r, 1);
    const size_t ds_len_off = r.off_trailer + 4;
    static const struct {
        int field; /* 0 n_entries, 1 name_len[1], 2 nval[1], 3 last_chunk, 4 dataset_len */
        int32_t v;
        const char *what;
    } cases[] = {
        {0, -1, "negative entry count"},
        {0, 0, "zero entries"},
        {0, INT32_MAX, "huge entry count"},
        {0, 4, "one entry more than present"},
        {1, -1, "negative name length"},
        {1, 0, "empty name"},
        {1, INT32_MAX, "huge name length"},
        {1, QK_IMATRIX_MAX_NAME + 1, "name length over the bound"},
        {1, 1000, "name past the end"},
        {2, -1, "negative value count"},
        {2, 0, "zero values"},
        {2, INT32_MAX, "huge value count"},
        {2, 0x40000000, "value count whose byte size wraps 32 bits"},
        {2, 0x40000001, "value count whose byte size wraps 32 bits, plus one"},
        {3, -1, "negative chunk count in the trailer"},
        {4, -1, "negative dataset length"},
        {4, INT32_MAX, "huge dataset length"},
        {4, (int32_t)strlen(L_DATASET) + 1, "dataset one byte past the end"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = {0};
        b_put(&b, r.b.p, r.b.len);
        size_t off = cases[i].field == 0   ? r.off_n
                     : cases[i].field == 1 ? r.off_len[1]
                     : cases[i].field == 2 ? r.off_nval[1]
                     : cases[i].field == 3 ? r.off_trailer
                                           : ds_len_off;
        patch_i32(&b, off, cases[i].v);
        expect_fail(b.p, b.len, "bad.dat", cases[i].what, (const char *)NULL);
        free(b.p);
    }

    /* One stray byte after the trailer. */
    bytes b = {0};
    b_put(&b, r.b.p, r.b.len);
    b_put(&b, "x", 1);
    expect_fail(b.p, b.len, "tail.dat", "byte after the trailer", (const char *)NULL);
    free(b.p);

    /* A NUL inside a name. */
    b = (bytes){0};
    b_put(&b, r.b.p, r.b.len);
    b.p[r.off_len[0] + 4 + 3] = 0;
    expect_fail(b.p, b.len, "nul.dat", "NUL in a name", "NUL", (const char *)NULL);
    free(b.p);

    /* Non-finite and negative values name the entry and the index. */
    static const struct {
        int entry, index;
        float v;
        const char *name, *want;
    } vals[] = {
        {0, 7, NAN, L0, "value 7"},
        {2, 0, INFINITY, L2, "value 0"},
        {1, 33, -1.0f, L1, "value 33"},
        {1, 63, -INFINITY, L1, "value 63"},
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        b = (bytes){0};
        b_put(&b, r.b.p, r.b.len);
        patch_f32(&b, r.off_vals[vals[i].entry] + 4 * (size_t)vals[i].index, vals[i].v);
        expect_fail(b.p, b.len, "value.dat", "bad value", vals[i].name, vals[i].want, (const char *)NULL);
        free(b.p);
    }

    /* A control byte in a name stays out of the one-line message. */
    b = (bytes){0};
    b_put(&b, r.b.p, r.b.len);
    b.p[r.off_len[0] + 4 + 6] = '\n'; /* "output\nweight" */
    patch_f32(&b, r.off_vals[0], NAN);
    expect_fail(b.p, b.len, "ctl.dat", "newline in a name", "output?weight", (const char *)NULL);
    CHECK(!strchr(qk_last_error(NULL), '\n'), "message spans lines: %s", qk_last_error(NULL));
    free(b.p);

    /* A duplicated entry. */
    b = (bytes){0};
    b_put(&b, r.b.p, r.off_trailer);
    b_put(&b, r.b.p + r.off_len[2], r.off_trailer - r.off_len[2]);
    patch_i32(&b, 0, 4);
    expect_fail(b.p, b.len, "dup.dat", "duplicate entry", "duplicate", L2, (const char *)NULL);
    free(b.p);

    expect_fail("", 0, "zero.dat", "empty file", (const char *)NULL);
    expect_fail("GG", 2, "two.dat", "two bytes", (const char *)NULL);
    expect_fail("GGUF", 4, "magic.gguf", "only the GGUF magic", (const char *)NULL);
    free(r.b.p);
}

/* ---- writers --------------------------------------------------------------------------------- */

static char tmpdir[256];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static int temp_files_left(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) n += strstr(de->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return n;
}

typedef struct owned {
    qk_imatrix im;
    qk_imatrix_entry e[5];
    float *counts[5];
} owned;

/* An imatrix built in memory, entries not in name order ("blk.10" sorts before "blk.2"). */
static void owned_make(owned *o, int64_t chunk_count, int64_t chunk_size) {
    static const char *const names[5] = {"output.weight", "blk.2.ffn_gate_exps.weight", "blk.10.attn_q.weight",
                                         "blk.0.attn_output.weight", "blk.2.ffn_down_exps.weight"};
    static const int64_t n_mat[5] = {1, 8, 1, 1, 3}, cols[5] = {128, 32, 64, 64, 96};
    memset(o, 0, sizeof *o);
    for (int i = 0; i < 5; i++) {
        qk_imatrix_entry *e = &o->e[i];
        e->name = (char *)names[i];
        e->n_mat = n_mat[i];
        e->cols = cols[i];
        e->values = malloc((size_t)(n_mat[i] * cols[i]) * sizeof(float));
        o->counts[i] = malloc((size_t)n_mat[i] * sizeof(float));
        for (int64_t j = 0; j < n_mat[i] * cols[i]; j++) {
            float g = tu_gauss(&rng);
            e->values[j] = g * g * (float)(1 + i);
        }
        for (int64_t m = 0; m < n_mat[i]; m++) o->counts[i][m] = (float)(1 + tu_next(&rng) % 6000);
    }
    o->counts[1][3] = 0; /* a never-routed expert */
    o->im.entries = o->e;
    o->im.n_entries = 5;
    o->im.dataset = (char *)"calibration_datav3.txt";
    o->im.chunk_count = chunk_count;
    o->im.chunk_size = chunk_size;
}

static void owned_free(owned *o) {
    for (int i = 0; i < 5; i++) {
        free(o->e[i].values);
        free(o->counts[i]);
    }
}

/* The file the GGUF writer produced, checked through the GGUF reader against §5.1. */
static void check_gguf_layout(const char *path, const owned *o, const float *const *counts, float dflt) {
    size_t len = 0;
    void *data = tu_read_file(tmpdir, strrchr(path, '/') + 1, &len);
    qk_gguf *g = NULL;
    CHECK(data && qk_gguf_parse(data, len, path, &g) == QK_OK, "written GGUF imatrix unreadable: %s",
          qk_last_error(NULL));
    if (!g) {
        free(data);
        return;
    }
    char buf[64];
    CHECK(qk_gguf_get_string(g, "general.type", buf, sizeof buf) && strcmp(buf, "imatrix") == 0, "general.type");
    const qk_gguf_kv *cc = qk_gguf_find_kv(g, "imatrix.chunk_count"), *cs = qk_gguf_find_kv(g, "imatrix.chunk_size");
    const qk_gguf_kv *ds = qk_gguf_find_kv(g, "imatrix.datasets");
    int64_t v = -1;
    CHECK(cc && cc->type == QK_GGUF_UINT32 && qk_gguf_kv_int(cc, &v) == QK_OK && v == o->im.chunk_count,
          "imatrix.chunk_count");
    CHECK(cs && cs->type == QK_GGUF_UINT32 && qk_gguf_kv_int(cs, &v) == QK_OK && v == o->im.chunk_size,
          "imatrix.chunk_size");
    qk_gguf_vtype elem = QK_GGUF_UINT8;
    uint64_t n = 0;
    const unsigned char *first;
    const char *s = NULL;
    uint64_t slen = 0;
    CHECK(ds && qk_gguf_kv_array(ds, &elem, &n, &first) == QK_OK && elem == QK_GGUF_STRING && n == 1 &&
              qk_gguf_kv_array_string(ds, 0, &s, &slen) == QK_OK && slen == strlen(o->im.dataset) &&
              memcmp(s, o->im.dataset, slen) == 0,
          "imatrix.datasets");

    /* Pairs in entry-name order: in_sum2 = value * count, then counts. */
    static const int order[5] = {3, 2, 4, 1, 0};
    CHECK(qk_gguf_tensor_count(g) == 10, "%zu tensors, expected 10", qk_gguf_tensor_count(g));
    for (int k = 0; k < 5 && qk_gguf_tensor_count(g) == 10; k++) {
        const qk_imatrix_entry *e = &o->e[order[k]];
        const qk_gguf_tensor *ts = qk_gguf_tensor_at(g, 2 * (size_t)k), *tc = qk_gguf_tensor_at(g, 2 * (size_t)k + 1);
        char want[96];
        snprintf(want, sizeof want, "%s.in_sum2", e->name);
        CHECK(strcmp(ts->name, want) == 0, "tensor %d is '%s', expected '%s'", 2 * k, ts->name, want);
        snprintf(want, sizeof want, "%s.counts", e->name);
        CHECK(strcmp(tc->name, want) == 0, "tensor %d is '%s', expected '%s'", 2 * k + 1, tc->name, want);
        int dims = e->n_mat > 1 ? 2 : 1;
        CHECK(ts->type == QK_TYPE_F32 && ts->n_dims == dims && ts->ne[0] == e->cols && ts->ne[1] == e->n_mat,
              "%s: type %d dims %d [%lld, %lld]", ts->name, ts->type, ts->n_dims, (long long)ts->ne[0],
              (long long)ts->ne[1]);
        CHECK(tc->type == QK_TYPE_F32 && tc->n_dims == dims && tc->ne[0] == 1 && tc->ne[1] == e->n_mat,
              "%s: type %d dims %d [%lld, %lld]", tc->name, tc->type, tc->n_dims, (long long)tc->ne[0],
              (long long)tc->ne[1]);
        if (ts->ne[0] != e->cols || ts->ne[1] != e->n_mat || tc->ne[1] != e->n_mat) continue;
        int bad = 0;
        for (int64_t m = 0; m < e->n_mat; m++) {
            float c = counts ? counts[order[k]][m] : dflt;
            bad += !same_bits(rd_f32(tc->data + 4 * m), c);
            for (int64_t j = 0; j < e->cols; j++)
                bad += !same_bits(rd_f32(ts->data + 4 * (m * e->cols + j)), e->values[m * e->cols + j] * c);
        }
        CHECK(bad == 0, "%s: %d stored numbers differ from value * count", e->name, bad);
    }
    qk_gguf_close(g);
    free(data);
}

static void check_gguf_readback(const qk_imatrix *back, const owned *o, const float *const *counts, float dflt,
                                const char *what) {
    CHECK(back->n_entries == 5 && !back->legacy, "%s: %zu entries, legacy %d", what, back->n_entries, back->legacy);
    CHECK(back->chunk_count == o->im.chunk_count && back->chunk_size == o->im.chunk_size, "%s: chunk numbers", what);
    CHECK(strcmp(back->dataset, o->im.dataset) == 0, "%s: dataset '%s'", what, back->dataset);
    check_sorted(back, what);
    for (int i = 0; i < 5; i++) {
        const qk_imatrix_entry *e = &o->e[i], *b = qk_imatrix_find(back, e->name);
        CHECK(b && b->n_mat == e->n_mat && b->cols == e->cols, "%s: entry '%s' missing or reshaped", what, e->name);
        if (!b || b->n_mat != e->n_mat || b->cols != e->cols) continue;
        int bad = 0;
        for (int64_t m = 0; m < e->n_mat; m++) {
            float c = counts ? counts[i][m] : dflt;
            for (int64_t j = 0; j < e->cols; j++) {
                float v = e->values[m * e->cols + j], got = b->values[m * e->cols + j];
                float want = c > 0 ? v * c / c : 1.0f;
                if ((!same_bits(got, want) || (c > 0 && fabsf(got - v) > 1e-6f * v)) && bad++ < 3)
                    CHECK(0, "%s: '%s' matrix %lld column %lld: %g, expected %g", what, e->name, (long long)m,
                          (long long)j, got, want);
            }
        }
        CHECK(bad == 0, "%s: '%s': %d values differ", what, e->name, bad);
    }
}

static void test_gguf_writer_round_trip(void) {
    owned o;
    owned_make(&o, 11, 512);
    char path[512];
    path_in(path, sizeof path, "im.gguf");
    const float *const *counts = (const float *const *)o.counts;

    qk_status st = qk_imatrix_save_gguf(&o.im, counts, path);
    CHECK(st == QK_OK, "save_gguf with counts: %s", qk_last_error(NULL));
    if (st == QK_OK) {
        check_gguf_layout(path, &o, counts, 0);
        qk_imatrix *back = NULL;
        st = qk_imatrix_load(path, &back);
        CHECK(st == QK_OK, "reload: %s", qk_last_error(NULL));
        if (st == QK_OK) check_gguf_readback(back, &o, counts, 0, "GGUF with counts");
        qk_imatrix_free(back);
    }

    /* Without counts every matrix saw chunk_count * chunk_size rows. */
    st = qk_imatrix_save_gguf(&o.im, NULL, path);
    CHECK(st == QK_OK, "save_gguf without counts: %s", qk_last_error(NULL));
    if (st == QK_OK) {
        check_gguf_layout(path, &o, NULL, 11.0f * 512.0f);
        qk_imatrix *back = NULL;
        CHECK(qk_imatrix_load(path, &back) == QK_OK, "reload: %s", qk_last_error(NULL));
        if (back) check_gguf_readback(back, &o, NULL, 11.0f * 512.0f, "GGUF default counts");
        qk_imatrix_free(back);
    }

    /* Unknown chunk size (an imatrix from a legacy file): counts of 1 keep the values. */
    o.im.chunk_size = 0;
    st = qk_imatrix_save_gguf(&o.im, NULL, path);
    CHECK(st == QK_OK, "save_gguf with chunk_size 0: %s", qk_last_error(NULL));
    if (st == QK_OK) {
        check_gguf_layout(path, &o, NULL, 1.0f);
        qk_imatrix *back = NULL;
        CHECK(qk_imatrix_load(path, &back) == QK_OK, "reload: %s", qk_last_error(NULL));
        if (back) check_gguf_readback(back, &o, NULL, 1.0f, "GGUF unit counts");
        qk_imatrix_free(back);
    }
    CHECK(temp_files_left() == 0, "temporary files left after GGUF writes");
    owned_free(&o);
}

/* Entries with means get `<name>.in_sum` = mean * count, which reads back as in_sum / count
 * (0.0 for the never-routed expert); entries without means get none and read back without; the
 * legacy form has no place for means and drops them. */
static void test_gguf_writer_round_trip_with_means(void) {
    owned o;
    owned_make(&o, 11, 512);
    char path[512];
    path_in(path, sizeof path, "means.gguf");
    const float *const *counts = (const float *const *)o.counts;
    static const int with[2] = {1, 2}; /* the 8-expert entry (expert 3 never routed) and a 1-D one */
    for (int k = 0; k < 2; k++) {
        qk_imatrix_entry *e = &o.e[with[k]];
        e->means = malloc((size_t)(e->n_mat * e->cols) * sizeof(float));
        for (int64_t j = 0; j < e->n_mat * e->cols; j++) e->means[j] = 0.9f * tu_gauss(&rng) * sqrtf(e->values[j]);
    }
    qk_status st = qk_imatrix_save_gguf(&o.im, counts, path);
    CHECK(st == QK_OK, "save_gguf with means: %s", qk_last_error(NULL));
    size_t len = 0;
    void *data = st == QK_OK ? tu_read_file(tmpdir, "means.gguf", &len) : NULL;
    qk_gguf *g = NULL;
    CHECK(data && qk_gguf_parse(data, len, path, &g) == QK_OK, "written file: %s", qk_last_error(NULL));
    qk_imatrix *back = NULL;
    CHECK(data && qk_imatrix_parse(data, len, path, &back) == QK_OK, "reload: %s", qk_last_error(NULL));
    CHECK(!g || qk_gguf_tensor_count(g) == 12, "%zu tensors, expected 10 + 2 in_sum", g ? qk_gguf_tensor_count(g) : 0);
    for (int i = 0; g && back && i < 5; i++) {
        const qk_imatrix_entry *e = &o.e[i], *b = qk_imatrix_find(back, e->name);
        char name[96];
        snprintf(name, sizeof name, "%s.in_sum", e->name);
        const qk_gguf_tensor *t = qk_gguf_find_tensor(g, name);
        CHECK(b && !t == !e->means && !b->means == !e->means, "%s: in_sum %s, means read %s, written %s", e->name,
              t ? "stored" : "absent", b && b->means ? "yes" : "no", e->means ? "yes" : "no");
        if (!b || !t || !e->means || !b->means || t->ne[0] != e->cols || t->ne[1] != e->n_mat) continue;
        int bad = 0;
        for (int64_t m = 0; m < e->n_mat; m++)
            for (int64_t j = 0; j < e->cols; j++) {
                const float c = counts[i][m], stored = e->means[m * e->cols + j] * c;
                bad += !same_bits(rd_f32(t->data + 4 * (m * e->cols + j)), stored);
                bad += !same_bits(b->means[m * e->cols + j], c > 0 ? stored / c : 0.0f);
            }
        CHECK(bad == 0, "%s: %d means stored or read back wrong", e->name, bad);
        if (i == 1) CHECK(b->means[3 * e->cols] == 0.0f, "never-routed expert's mean %g", b->means[3 * e->cols]);
    }
    qk_imatrix_free(back);
    if (g) qk_gguf_close(g);
    free(data);

    path_in(path, sizeof path, "means.dat");
    back = NULL;
    CHECK(qk_imatrix_save_legacy(&o.im, path) == QK_OK && qk_imatrix_load(path, &back) == QK_OK,
          "legacy with means: %s", qk_last_error(NULL));
    for (size_t i = 0; back && i < back->n_entries; i++)
        CHECK(!back->entries[i].means, "legacy entry '%s' read back with means", back->entries[i].name);
    qk_imatrix_free(back);
    unlink(path);
    path_in(path, sizeof path, "means.gguf");
    unlink(path);
    for (int k = 0; k < 2; k++) free(o.e[with[k]].means);
    owned_free(&o);
}

static void test_gguf_writer_refusals(void) {
    owned o;
    owned_make(&o, 2, 64);
    char path[512], name[80];
    path_in(path, sizeof path, "long.gguf");

    /* 55 + ".in_sum2" = 63 bytes fits; 56 does not. */
    memset(name, 'a', 56);
    name[56] = 0;
    o.e[0].name = name;
    qk_status st = qk_imatrix_save_gguf(&o.im, NULL, path);
    CHECK(st != QK_OK && strstr(qk_last_error(NULL), name) && strstr(qk_last_error(NULL), path),
          "56-byte entry name accepted or error unclear: %s", qk_last_error(NULL));
    CHECK(access(path, F_OK) != 0, "a refused write left %s", path);
    name[55] = 0;
    st = qk_imatrix_save_gguf(&o.im, NULL, path);
    CHECK(st == QK_OK, "55-byte entry name refused: %s", qk_last_error(NULL));

    path_in(path, sizeof path, "refused.gguf");
    o.e[2].values[5] = NAN;
    CHECK(qk_imatrix_save_gguf(&o.im, NULL, path) != QK_OK && strstr(qk_last_error(NULL), o.e[2].name),
          "NaN value written: %s", qk_last_error(NULL));
    CHECK(qk_imatrix_save_legacy(&o.im, path) != QK_OK, "legacy writer wrote a NaN");
    o.e[2].values[5] = 1.0f;
    o.counts[1][0] = -1.0f;
    CHECK(qk_imatrix_save_gguf(&o.im, (const float *const *)o.counts, path) != QK_OK, "negative count written");
    o.e[3].name = o.e[4].name;
    CHECK(qk_imatrix_save_gguf(&o.im, NULL, path) != QK_OK && strstr(qk_last_error(NULL), "duplicate"),
          "duplicate names written: %s", qk_last_error(NULL));
    CHECK(qk_imatrix_save_legacy(&o.im, path) != QK_OK, "legacy writer wrote duplicate names");
    o.im.n_entries = 0;
    CHECK(qk_imatrix_save_gguf(&o.im, NULL, path) != QK_OK, "empty imatrix written");
    CHECK(qk_imatrix_save_legacy(&o.im, path) != QK_OK, "empty legacy imatrix written");
    o.im.n_entries = 1;
    o.im.chunk_count = -1;
    CHECK(qk_imatrix_save_gguf(&o.im, NULL, path) != QK_OK, "negative chunk count written");
    CHECK(access(path, F_OK) != 0, "a refused write left %s", path);
    CHECK(temp_files_left() == 0, "temporary files left after refused writes");
    owned_free(&o);
}

static void test_legacy_writer_round_trip(void) {
    owned o;
    owned_make(&o, 9, 512);
    char path[512];
    path_in(path, sizeof path, "im.dat");
    qk_status st = qk_imatrix_save_legacy(&o.im, path);
    CHECK(st == QK_OK, "save_legacy: %s", qk_last_error(NULL));
    size_t len = 0;
    unsigned char *raw = st == QK_OK ? tu_read_file(tmpdir, "im.dat", &len) : NULL;

    /* Byte layout per §5.2: sorted entries, values * ncall, trailer. */
    static const int order[5] = {3, 2, 4, 1, 0};
    size_t off = 4;
    int ok = raw && len >= 4 && rd_u32(raw) == 5;
    for (int k = 0; k < 5 && ok; k++) {
        const qk_imatrix_entry *e = &o.e[order[k]];
        size_t nl = strlen(e->name), nv = (size_t)(e->n_mat * e->cols);
        ok = off + 12 + nl + 4 * nv <= len && rd_u32(raw + off) == nl && memcmp(raw + off + 4, e->name, nl) == 0 &&
             rd_u32(raw + off + 4 + nl) == 9 && rd_u32(raw + off + 8 + nl) == nv;
        CHECK(ok, "legacy entry %d header wrong", k);
        off += 12 + nl;
        int bad = 0;
        for (size_t j = 0; ok && j < nv; j++) bad += !same_bits(rd_f32(raw + off + 4 * j), e->values[j] * 9.0f);
        CHECK(bad == 0, "legacy entry %d: %d values differ from value * ncall", k, bad);
        off += 4 * nv;
    }
    size_t dl = strlen(o.im.dataset);
    CHECK(ok && off + 8 + dl == len && rd_u32(raw + off) == 9 && rd_u32(raw + off + 4) == dl &&
              memcmp(raw + off + 8, o.im.dataset, dl) == 0,
          "legacy trailer wrong");
    free(raw);

    qk_imatrix *back = NULL;
    st = qk_imatrix_load(path, &back);
    CHECK(st == QK_OK, "reload legacy: %s", qk_last_error(NULL));
    if (st == QK_OK) {
        CHECK(back->legacy == 1 && back->n_entries == 5 && back->chunk_count == 9 && back->chunk_size == 0 &&
                  strcmp(back->dataset, o.im.dataset) == 0,
              "legacy header fields");
        for (int i = 0; i < 5; i++) {
            const qk_imatrix_entry *e = &o.e[i], *b = qk_imatrix_find(back, e->name);
            int64_t n = e->n_mat * e->cols;
            CHECK(b && b->n_mat == 1 && b->cols == n, "'%s' missing or not [1, %lld]", e->name, (long long)n);
            int bad = 0;
            for (int64_t j = 0; b && b->cols == n && j < n; j++)
                bad += !same_bits(b->values[j], e->values[j] * 9.0f / 9.0f);
            CHECK(bad == 0, "'%s': %d values differ", e->name, bad);
        }

        /* Legacy to GGUF: chunk_size is unknown, so counts of 1 must keep every value. */
        char gpath[512];
        path_in(gpath, sizeof gpath, "from_dat.gguf");
        st = qk_imatrix_save_gguf(back, NULL, gpath);
        CHECK(st == QK_OK, "legacy to GGUF: %s", qk_last_error(NULL));
        qk_imatrix *g = NULL;
        if (st == QK_OK && qk_imatrix_load(gpath, &g) == QK_OK) {
            int bad = g->n_entries != back->n_entries;
            for (size_t i = 0; !bad && i < g->n_entries; i++)
                bad += g->entries[i].cols != back->entries[i].cols ||
                       memcmp(g->entries[i].values, back->entries[i].values, (size_t)g->entries[i].cols * 4) != 0;
            CHECK(bad == 0, "legacy to GGUF changed values");
        } else {
            CHECK(0, "legacy to GGUF unreadable: %s", qk_last_error(NULL));
        }
        qk_imatrix_free(g);
    }
    qk_imatrix_free(back);

    /* chunk_count 0: ncall 1, values as they are. */
    o.im.chunk_count = 0;
    st = qk_imatrix_save_legacy(&o.im, path);
    back = NULL;
    CHECK(st == QK_OK && qk_imatrix_load(path, &back) == QK_OK, "chunk_count 0: %s", qk_last_error(NULL));
    if (back) {
        const qk_imatrix_entry *b = qk_imatrix_find(back, o.e[0].name);
        CHECK(b && memcmp(b->values, o.e[0].values, 128 * 4) == 0 && back->chunk_count == 0, "ncall 1 changed values");
    }
    qk_imatrix_free(back);
    CHECK(temp_files_left() == 0, "temporary files left after legacy writes");
    owned_free(&o);
}

static void test_load_errors_name_the_file(void) {
    char path[512];
    qk_imatrix *im = NULL;
    path_in(path, sizeof path, "does-not-exist.dat");
    CHECK(qk_imatrix_load(path, &im) == QK_ERR_IO && !im && strstr(qk_last_error(NULL), path), "missing file: %s",
          qk_last_error(NULL));
    CHECK(qk_imatrix_load(tmpdir, &im) != QK_OK && !im && strstr(qk_last_error(NULL), tmpdir), "directory: %s",
          qk_last_error(NULL));
    path_in(path, sizeof path, "empty.dat");
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    CHECK(qk_imatrix_load(path, &im) != QK_OK && !im && strstr(qk_last_error(NULL), path), "empty file: %s",
          qk_last_error(NULL));
    remove(path);
}

/* ---- find and filter --------------------------------------------------------------------------- */

static const char *const FNAMES[6] = {"blk.1.attn_output.weight",   "output.weight",       "blk.0.attn_q.weight",
                                      "blk.1.ffn_down_exps.weight", "blk.0.ffn_up.weight", "blk.0.attn_k.weight"};

/* Entry i holds the single value i + 1 (ncall 0), so a lookup result can be identified. */
static qk_imatrix *six_entries(void) {
    bytes b = {0};
    b_i32(&b, 6);
    for (int i = 0; i < 6; i++) {
        b_i32(&b, (int32_t)strlen(FNAMES[i]));
        b_put(&b, FNAMES[i], strlen(FNAMES[i]));
        b_i32(&b, 0);
        b_i32(&b, 1);
        b_f32(&b, (float)(i + 1));
    }
    qk_imatrix *im = NULL;
    CHECK(parse_copy(b.p, b.len, "six.dat", &im) == QK_OK, "six entries: %s", qk_last_error(NULL));
    free(b.p);
    return im;
}

static int has(const qk_imatrix *im, int i) {
    const qk_imatrix_entry *e = qk_imatrix_find(im, FNAMES[i]);
    return e && strcmp(e->name, FNAMES[i]) == 0 && e->values[0] == (float)(i + 1);
}

static void test_find_and_filter(void) {
    qk_imatrix *im = six_entries();
    if (!im) return;
    check_sorted(im, "six");
    for (int i = 0; i < 6; i++) CHECK(has(im, i), "find '%s'", FNAMES[i]);
    static const char *const absent[] = {"", "blk.0.attn_q", "blk.0.attn_q.weight ", "a", "zzz", "blk.0.attn_q.weigh"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        CHECK(!qk_imatrix_find(im, absent[i]), "find '%s' matched", absent[i]);
    CHECK(!qk_imatrix_find(NULL, "x") && !qk_imatrix_find(im, NULL), "NULL arguments");

    qk_imatrix_filter(im, NULL, 0, 1);
    CHECK(im->n_entries == 6, "n = 0 changed the entries");

    /* include: names containing "attn_q" or "output" (attn_output contains both "output"). */
    static const char *const inc[] = {"attn_q", "output"};
    qk_imatrix_filter(im, inc, 2, 1);
    CHECK(im->n_entries == 3 && has(im, 0) && has(im, 1) && has(im, 2), "include kept %zu entries", im->n_entries);
    CHECK(!qk_imatrix_find(im, FNAMES[3]) && !qk_imatrix_find(im, FNAMES[4]) && !qk_imatrix_find(im, FNAMES[5]),
          "include kept an unmatched entry");
    check_sorted(im, "after include");
    qk_imatrix_free(im);

    im = six_entries();
    if (!im) return;
    static const char *const exc[] = {"ffn", "nothing-matches"};
    qk_imatrix_filter(im, exc, 2, 0);
    CHECK(im->n_entries == 4 && has(im, 0) && has(im, 1) && has(im, 2) && has(im, 5), "exclude kept %zu entries",
          im->n_entries);
    CHECK(!qk_imatrix_find(im, FNAMES[3]) && !qk_imatrix_find(im, FNAMES[4]), "exclude kept an ffn entry");
    check_sorted(im, "after exclude");
    static const char *const all[] = {""};
    qk_imatrix_filter(im, all, 1, 1);
    CHECK(im->n_entries == 4, "include \"\" must keep everything");
    qk_imatrix_filter(im, all, 1, 0);
    CHECK(im->n_entries == 0 && !qk_imatrix_find(im, FNAMES[0]), "exclude \"\" must drop everything");
    qk_imatrix_free(im);
    qk_imatrix_free(NULL);
}

int main(void) {
    rng.s = tu_seed();
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/qk_imatrix_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot create a temporary directory\n");
        return 2;
    }

    test_gguf_values_from_hand_made_file();
    test_gguf_truncated_at_every_length();
    test_gguf_broken_files_are_refused();
    test_legacy_values_from_hand_made_file();
    test_legacy_truncated_at_every_length();
    test_legacy_bad_lengths_and_values();
    test_gguf_writer_round_trip();
    test_gguf_writer_round_trip_with_means();
    test_gguf_writer_refusals();
    test_legacy_writer_round_trip();
    test_load_errors_name_the_file();
    test_find_and_filter();

    static const char *const files[] = {"im.gguf", "long.gguf", "im.dat", "from_dat.gguf", "refused.gguf"};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_in(path, sizeof path, files[i]);
        remove(path);
    }
    rmdir(tmpdir);
    return tu_finish();
}
