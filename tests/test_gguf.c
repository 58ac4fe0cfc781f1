/* GGUF reader and writer: round trips of every value type and layout option, the byte layout
 * of GGUF.md §7 reproduced exactly, split models, and every kind of malformed input refused
 * with a one-line message (never a crash or a leak). Expected encodings are built here by a
 * small independent byte builder, not by the code under test. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byte_builder.h"
#include "gguf.h"
#include "test_util.h"

static char tmpdir[] = "/tmp/qk_test_gguf_XXXXXX";
static tu_rng rng;

/* ---- an independent little-endian byte builder ----------------------------------------------- */

/* ---- helpers --------------------------------------------------------------------------------- */

static void path_in_tmp(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Entries of the temporary folder whose name contains `part`. */
static int count_files_with(const char *part) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, part)) n++;
    if (d) closedir(d);
    return n;
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        path_in_tmp(p, sizeof p, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(tmpdir);
}

/* Parses an exact-size heap copy, so any read past the end is caught by ASan, then closes
 * the handle (which points into the copy) and frees the copy. */
static qk_status parse_copy(const void *data, size_t n) {
    void *copy = malloc(n ? n : 1);
    memcpy(copy, data, n);
    qk_gguf *g = NULL;
    qk_status s = qk_gguf_parse(copy, n, "img.gguf", &g);
    if ((s == QK_OK) != (g != NULL)) {
        CHECK(0, "status %d but handle %p", (int)s, (void *)g);
    }
    qk_gguf_close(g);
    free(copy);
    return s;
}

/* Error messages name the file and fit one line. */
static int good_message(const char *name) {
    const char *m = qk_last_error(NULL);
    return m[0] && strstr(m, name) && !strchr(m, '\n');
}

static void fill_random(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)tu_next(&rng);
}

/* ---- GGUF.md §7, built by hand ------------------------------------------------------------------ */

static void build_doc_example(bytes *b, const unsigned char *q8, const float *f32) {
    b_put(b, "GGUF", 4);
    b_u32(b, 3);
    b_u64(b, 2);
    b_u64(b, 5);
    b_str(b, "general.architecture");
    b_u32(b, 8);
    b_str(b, "llama");
    b_str(b, "general.quantization_version");
    b_u32(b, 4);
    b_u32(b, 2);
    b_str(b, "general.file_type");
    b_u32(b, 4);
    b_u32(b, 7);
    b_str(b, "general.tags");
    b_u32(b, 9);
    b_u32(b, 8);
    b_u64(b, 2);
    b_str(b, "a");
    b_str(b, "bc");
    b_str(b, "general.flag");
    b_u32(b, 7);
    b_put(b, "\x01", 1);
    b_str(b, "blk.0.attn_q.weight");
    b_u32(b, 2);
    b_u64(b, 64);
    b_u64(b, 2);
    b_u32(b, 8);
    b_u64(b, 0);
    b_str(b, "output_norm.weight");
    b_u32(b, 1);
    b_u64(b, 4);
    b_u32(b, 0);
    b_u64(b, 160);
    b_align(b, 32);
    b_put(b, q8, 136);
    b_align(b, 32);
    b_put(b, f32, 16);
    b_align(b, 32);
}

/* The same file through the writer. */
static qk_status write_doc_example(const char *path, const unsigned char *q8, const float *f32) {
    qk_gguf_writer *w;
    qk_status s = qk_gguf_writer_create(&w);
    if (s != QK_OK) return s;
    const char *tags[] = {"a", "bc"};
    int64_t ne_q[] = {64, 2}, ne_f[] = {4};
    s = qk_gguf_writer_set_string(w, "general.architecture", "llama");
    if (!s) s = qk_gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (!s) s = qk_gguf_writer_set_u32(w, "general.file_type", 7);
    if (!s) s = qk_gguf_writer_set_string_array(w, "general.tags", tags, 2);
    if (!s) s = qk_gguf_writer_set_bool(w, "general.flag", 1);
    if (!s) s = qk_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", QK_TYPE_Q8_0, 2, ne_q);
    if (!s) s = qk_gguf_writer_add_tensor(w, "output_norm.weight", QK_TYPE_F32, 1, ne_f);
    if (!s) s = qk_gguf_writer_begin(w, path);
    if (!s) s = qk_gguf_writer_write(w, q8, 100); /* in pieces, across nothing in particular */
    if (!s) s = qk_gguf_writer_write(w, q8 + 100, 36);
    if (!s) s = qk_gguf_writer_write(w, f32, 16);
    if (!s) s = qk_gguf_writer_finish(w);
    qk_gguf_writer_free(w);
    return s;
}

/* The writer reproduces §7 byte for byte, and the document's own numbers hold. */
static void test_doc_example_layout(void) {
    unsigned char q8[136];
    float f32[4];
    fill_random(q8, sizeof q8);
    for (int i = 0; i < 4; i++) f32[i] = tu_gauss(&rng);
    bytes want = {0};
    build_doc_example(&want, q8, f32);
    CHECK(want.len == 544, "hand-built §7 file is %zu bytes, the document says 544", want.len);
    CHECK(want.len > 0x160 && want.p[0xe2] == 0x13 && !memcmp(want.p + 0xe2 + 8, "blk.0.attn_q.weight", 19),
          "first tensor info at 0xe2");

    char path[512];
    path_in_tmp(path, sizeof path, "doc.gguf");
    qk_status s = write_doc_example(path, q8, f32);
    CHECK(s == QK_OK, "writing the §7 file: %s", qk_last_error(NULL));
    size_t n = 0;
    unsigned char *got = tu_read_file(tmpdir, "doc.gguf", &n);
    CHECK(got && n == 544, "written §7 file is %zu bytes, expected 544", n);
    if (got && n == 544) {
        static const unsigned char head[24] = {0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 2, 0, 0, 0,
                                               0,    0,    0,    0,    5, 0, 0, 0, 0, 0, 0, 0};
        CHECK(!memcmp(got, head, 24), "header bytes differ from §7");
        CHECK(got[0x18] == 20 && !memcmp(got + 0x20, "general.architecture", 20), "first key at 0x18");
        CHECK(got[0xe2] == 0x13, "first tensor info at 0xe2");
        CHECK(got[0x11d + 8] == 'o' && got[0x14f - 8] == 0xa0, "second tensor's offset field holds 160 (0xa0)");
        int pad_zero = 1;
        for (size_t i = 0x14f; i < 0x160; i++) pad_zero &= got[i] == 0;
        for (size_t i = 0x160 + 136; i < 0x200; i++) pad_zero &= got[i] == 0;
        for (size_t i = 0x210; i < 0x220; i++) pad_zero &= got[i] == 0;
        CHECK(pad_zero, "padding at 0x14f..0x160, after the Q8_0 data and after the F32 data is zero");
        CHECK(!memcmp(got + 0x160, q8, 136) && !memcmp(got + 0x200, f32, 16), "tensor data at 0x160 and 0x200");
        for (size_t i = 0; i < 544; i++)
            if (got[i] != want.p[i]) {
                CHECK(0, "writer output differs from the hand-built §7 bytes at 0x%zx", i);
                break;
            }
    }

    qk_gguf *g = NULL;
    s = qk_gguf_open(path, &g);
    CHECK(s == QK_OK, "reading the §7 file: %s", qk_last_error(NULL));
    if (g) {
        CHECK(qk_gguf_version(g) == 3 && qk_gguf_alignment(g) == 32 && qk_gguf_kv_count(g) == 5 &&
                  qk_gguf_tensor_count(g) == 2 && qk_gguf_file_bytes(g) == 544 && qk_gguf_split_count(g) == 1,
              "§7 header facts");
        const qk_gguf_tensor *t0 = qk_gguf_find_tensor(g, "blk.0.attn_q.weight");
        const qk_gguf_tensor *t1 = qk_gguf_find_tensor(g, "output_norm.weight");
        CHECK(t0 && t0->type == QK_TYPE_Q8_0 && t0->n_dims == 2 && t0->ne[0] == 64 && t0->ne[1] == 2 &&
                  t0->ne[2] == 1 && t0->offset == 0 && t0->bytes == 136,
              "Q8_0 tensor info");
        CHECK(t1 && t1->type == QK_TYPE_F32 && t1->n_dims == 1 && t1->ne[0] == 4 && t1->offset == 160 &&
                  t1->bytes == 16,
              "F32 tensor info");
        CHECK(t0 && t1 && !memcmp(t0->data, q8, 136) && !memcmp(t1->data, f32, 16), "mapped tensor data");
        char buf[64];
        CHECK(qk_gguf_get_string(g, "general.architecture", buf, sizeof buf) && !strcmp(buf, "llama"), "architecture");
        CHECK(qk_gguf_get_int(g, "general.file_type", -1) == 7 && qk_gguf_get_int(g, "general.flag", -1) == 1,
              "file_type and flag");
        for (size_t i = 0; i < 2; i++) qk_gguf_release_tensor(g, i);
        CHECK(t0 && !memcmp(t0->data, q8, 136), "data still readable after release (read again from the file)");
        qk_gguf_close(g);
    }

    /* Every truncation fails cleanly, except those that only drop the last tensor's padding
     * (0x210 = 528 bytes is where the F32 data end). */
    int wrong = 0;
    for (size_t len = 0; len < want.len; len++) {
        qk_status st = parse_copy(want.p, len);
        int should_pass = len >= 0x210;
        if ((st == QK_OK) != should_pass || (!should_pass && (st != QK_ERR_FORMAT || !good_message("img.gguf")))) {
            if (wrong++ < 3) CHECK(0, "truncated to %zu bytes: status %d (%s)", len, (int)st, qk_last_error(NULL));
        }
    }
    CHECK(wrong == 0, "%d truncation lengths misjudged", wrong);
    free(got);
    b_free(&want);
}

/* ---- malformed images -------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *what;
    size_t at;    /* byte offset to patch */
    uint64_t val; /* little-endian value */
    int size;     /* bytes */
    qk_status want;
    const char *msg; /* part of the message, or NULL */
} bad_case;

/* Patches of the §7 image at offsets derived from its documented layout. */
static void test_doc_example_patches(void) {
    unsigned char q8[136] = {0};
    float f32[4] = {1, 2, 3, 4};
    bytes img = {0};
    build_doc_example(&img, q8, f32);
    /* pairs: arch at 0x18, quantization_version at 0x45, file_type at 0x71, tags at 0x92,
     * flag at 0xc9; tensor infos at 0xe2 and 0x11d */
    const bad_case cases[] = {
        {"bad magic", 0, 'X', 1, QK_ERR_FORMAT, "not a GGUF file"},
        {"version 1", 4, 1, 4, QK_ERR_FORMAT, "version 1"},
        {"version 4", 4, 4, 4, QK_ERR_FORMAT, "version 4"},
        {"version 0", 4, 0, 4, QK_ERR_FORMAT, "version"},
        {"byte-swapped version", 4, 0x03000000, 4, QK_ERR_FORMAT, "byte-swapped"},
        {"2^62 tensors", 8, 1ull << 62, 8, QK_ERR_FORMAT, NULL},
        {"2^62 pairs", 16, 1ull << 62, 8, QK_ERR_FORMAT, NULL},
        {"negative tensor count", 8, 1ull << 63, 8, QK_ERR_FORMAT, "negative"},
        {"3 tensors", 8, 3, 8, QK_ERR_FORMAT, NULL},
        {"6 pairs", 16, 6, 8, QK_ERR_FORMAT, NULL},
        {"key length 2^62", 0x18, 1ull << 62, 8, QK_ERR_FORMAT, NULL},
        {"key length 0", 0x18, 0, 8, QK_ERR_FORMAT, NULL},
        {"string length 2^62", 0x18 + 8 + 20 + 4, 1ull << 62, 8, QK_ERR_FORMAT, "2^30"},
        {"string length past the end", 0x18 + 8 + 20 + 4, 600, 8, QK_ERR_FORMAT, NULL},
        {"duplicate key", 0xc9 + 8 + 8, 0x73676174, 4, QK_ERR_FORMAT, "duplicate key 'general.tags'"}, /* flag->tags */
        {"NUL in a key", 0xc9 + 8 + 3, 0, 1, QK_ERR_FORMAT, "NUL"},
        {"unknown value type 13", 0xc9 + 8 + 12, 13, 4, QK_ERR_FORMAT, "unknown value type 13"},
        {"unknown value type 2^32-1", 0xc9 + 8 + 12, 0xffffffffu, 4, QK_ERR_FORMAT, "unknown value type"},
        {"array of unknown type", 0x92 + 8 + 12 + 4, 77, 4, QK_ERR_FORMAT, "unknown element type"},
        {"array count 2^62", 0x92 + 8 + 12 + 8, 1ull << 62, 8, QK_ERR_FORMAT, "2^30"},
        {"array count 3", 0x92 + 8 + 12 + 8, 3, 8, QK_ERR_FORMAT, NULL},
        {"array of arrays (garbage inside)", 0x92 + 8 + 12 + 4, 9, 4, QK_ERR_FORMAT, NULL},
        {"tensor name length 64", 0xe2, 64, 8, QK_ERR_FORMAT, "64 bytes"},
        {"tensor name length 2^62", 0xe2, 1ull << 62, 8, QK_ERR_FORMAT, NULL},
        {"second name 1 byte too long", 0x11d, 19, 8, QK_ERR_FORMAT, NULL}, /* fields shift by one */
        {"n_dims 5", 0xe2 + 8 + 19, 5, 4, QK_ERR_FORMAT, "n_dims = 5"},
        {"n_dims 0", 0xe2 + 8 + 19, 0, 4, QK_ERR_FORMAT, "n_dims = 0"},
        {"negative ne[1]", 0xe2 + 8 + 19 + 4 + 8, (uint64_t)-2, 8, QK_ERR_FORMAT, "negative"},
        {"ne[0] not a multiple of 32", 0xe2 + 8 + 19 + 4, 48, 8, QK_ERR_FORMAT, "multiple"},
        {"element count overflow", 0xe2 + 8 + 19 + 4 + 8, 1ull << 60, 8, QK_ERR_FORMAT, "overflow"},
        {"removed type 4 (Q4_2)", 0xe2 + 8 + 19 + 4 + 16, 4, 4, QK_ERR_TYPE, "type id 4"},
        {"unknown type 38", 0xe2 + 8 + 19 + 4 + 16, 38, 4, QK_ERR_TYPE, "type id 38"},
        {"type 2^32-1", 0xe2 + 8 + 19 + 4 + 16, 0xffffffffu, 4, QK_ERR_TYPE, NULL},
        {"Q8_0 retyped as F32: size beyond the file", 0xe2 + 8 + 19 + 4 + 16, 0, 4, QK_ERR_FORMAT, "[352, 864)"},
        {"first offset 32", 0xe2 + 8 + 19 + 4 + 16 + 4, 32, 8, QK_ERR_FORMAT, "expected 0"},
        {"second offset 192 (gap)", 0x14f - 8, 192, 8, QK_ERR_FORMAT, "expected 160"},
        {"second offset 2^63", 0x14f - 8, 1ull << 63, 8, QK_ERR_FORMAT, "expected 160"},
        {"F32 ne 4 -> 12: data beyond the end", 0x11d + 8 + 18 + 4, 12, 8, QK_ERR_FORMAT,
         "tensor 'output_norm.weight' data [512, 560) lies beyond the end of the file (544 bytes)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        unsigned char *p = malloc(img.len);
        memcpy(p, img.p, img.len);
        for (int k = 0; k < c->size; k++) p[c->at + (size_t)k] = (unsigned char)(c->val >> (8 * k));
        qk_gguf *g = NULL;
        qk_status s = qk_gguf_parse(p, img.len, "img.gguf", &g);
        CHECK(s == c->want && !g, "%s: status %d, expected %d (%s)", c->what, (int)s, (int)c->want,
              qk_last_error(NULL));
        CHECK(good_message("img.gguf") && (!c->msg || strstr(qk_last_error(NULL), c->msg)), "%s: message '%s'", c->what,
              qk_last_error(NULL));
        qk_gguf_close(g);
        free(p);
    }
    b_free(&img);
}

/* Images with two same-length tensor names, to duplicate one; alignment keys; nesting. */
static void image_with_tensors(bytes *b, const char *n0, const char *n1, const bytes *kvs, uint64_t n_kv,
                               size_t align) {
    b_put(b, "GGUF", 4);
    b_u32(b, 3);
    b_u64(b, 2);
    b_u64(b, n_kv);
    if (kvs) b_put(b, kvs->p, kvs->len);
    const char *names[2] = {n0, n1};
    for (int i = 0; i < 2; i++) {
        b_str(b, names[i]);
        b_u32(b, 1);
        b_u64(b, 8);
        b_u32(b, 0); /* F32: 32 bytes */
        b_u64(b, (uint64_t)i * (32 > align ? 32 : align));
    }
    b_align(b, align);
    b_zeros(b, 32);
    b_align(b, align);
    b_zeros(b, 32);
    b_align(b, align);
}

static qk_status parse_built(const bytes *b) { return parse_copy(b->p, b->len); }

static void nested_array(bytes *b, int depth) {
    if (depth == 0) {
        b_u32(b, 5); /* INT32 */
        b_u64(b, 1);
        b_u32(b, 7);
        return;
    }
    b_u32(b, 9);
    b_u64(b, 1);
    nested_array(b, depth - 1);
}

static void test_built_images(void) {
    bytes b = {0};
    image_with_tensors(&b, "aaaa", "bbbb", NULL, 0, 32);
    CHECK(parse_built(&b) == QK_OK, "two-tensor image: %s", qk_last_error(NULL));
    b_free(&b);
    image_with_tensors(&b, "aaaa", "aaaa", NULL, 0, 32);
    CHECK(parse_built(&b) == QK_ERR_FORMAT && strstr(qk_last_error(NULL), "duplicate tensor name 'aaaa'"),
          "duplicate tensor name: %s", qk_last_error(NULL));
    b_free(&b);

    char n63[64], n64[65];
    memset(n63, 'x', 63);
    n63[63] = 0;
    memset(n64, 'y', 64);
    n64[64] = 0;
    image_with_tensors(&b, n63, "b", NULL, 0, 32);
    CHECK(parse_built(&b) == QK_OK, "63-byte tensor name is accepted: %s", qk_last_error(NULL));
    b_free(&b);
    image_with_tensors(&b, n64, "b", NULL, 0, 32);
    CHECK(parse_built(&b) == QK_ERR_FORMAT, "64-byte tensor name is refused");
    b_free(&b);

    /* general.alignment: UINT32 power of two only */
    struct {
        uint32_t type;
        uint64_t value;
        int size;
        size_t layout;
        qk_status want;
    } al[] = {{4, 64, 4, 64, QK_OK},          {4, 1, 4, 1, QK_OK},
              {4, 48, 4, 48, QK_ERR_FORMAT},  {4, 0, 4, 32, QK_ERR_FORMAT},
              {10, 64, 8, 64, QK_ERR_FORMAT}, {5, 64, 4, 64, QK_ERR_FORMAT},
              {4, 64, 4, 32, QK_ERR_FORMAT}}; /* last: file laid out with 32 but claiming 64 */
    for (size_t i = 0; i < sizeof al / sizeof al[0]; i++) {
        bytes kv = {0};
        b_str(&kv, "general.alignment");
        b_u32(&kv, al[i].type);
        b_uint(&kv, al[i].value, al[i].size);
        image_with_tensors(&b, "a", "b", &kv, 1, al[i].layout);
        qk_status s = parse_built(&b);
        CHECK(s == al[i].want, "alignment case %zu: status %d (%s)", i, (int)s, qk_last_error(NULL));
        b_free(&b);
        b_free(&kv);
    }

    /* arrays nested up to 16 deep are read, 17 deep refused */
    static const int depths[] = {1, 2, 15, 16, 17, 40};
    for (size_t di = 0; di < sizeof depths / sizeof depths[0]; di++) {
        int depth = depths[di];
        bytes kv = {0};
        b_str(&kv, "nested");
        b_u32(&kv, 9);
        nested_array(&kv, depth - 1);
        image_with_tensors(&b, "a", "b", &kv, 1, 32);
        qk_status s = parse_built(&b);
        CHECK((s == QK_OK) == (depth <= 16), "arrays nested %d deep: status %d (%s)", depth, (int)s,
              qk_last_error(NULL));
        b_free(&b);
        b_free(&kv);
    }

    /* empty key */
    bytes kv = {0};
    b_u64(&kv, 0);
    b_u32(&kv, 0);
    b_put(&kv, "\x01", 1);
    image_with_tensors(&b, "a", "b", &kv, 1, 32);
    CHECK(parse_built(&b) == QK_ERR_FORMAT && strstr(qk_last_error(NULL), "empty key"), "empty key: %s",
          qk_last_error(NULL));
    b_free(&b);
    b_free(&kv);

    /* version 2 and zero tensors, no padding at all: accepted */
    b_put(&b, "GGUF", 4);
    b_u32(&b, 2);
    b_u64(&b, 0);
    b_u64(&b, 0);
    CHECK(parse_built(&b) == QK_OK, "bare v2 header: %s", qk_last_error(NULL));
    b_free(&b);
}

/* ---- round trips ------------------------------------------------------------------------------- */

typedef struct tensor_spec {
    const char *name;
    qk_type type;
    int n_dims;
    int64_t ne[4];
    int stored_dims;
    size_t bytes;
} tensor_spec;

static const tensor_spec specs[] = {
    {"token_embd.weight", QK_TYPE_Q4_K, 2, {256, 3}, 2, 144 * 3},
    {"blk.0.ffn_down_exps.weight", QK_TYPE_Q8_0, 3, {64, 2, 3}, 3, 34 * 2 * 2 * 3},
    {"blk.0.attn_norm.weight", QK_TYPE_F32, 2, {5, 1}, 1, 20},
    {"blk.0.trail.weight", QK_TYPE_F16, 4, {6, 1, 1, 1}, 1, 12},
    {"blk.0.mid.weight", QK_TYPE_BF16, 4, {2, 1, 3, 1}, 3, 12},
    {"empty.weight", QK_TYPE_F32, 2, {0, 4}, 2, 0},
    {"blk.0.iq.weight", QK_TYPE_IQ2_XXS, 2, {256, 2}, 2, 66 * 2},
    {"output.weight", QK_TYPE_MXFP4, 2, {32, 1}, 1, 17},
};
#define N_SPECS (sizeof specs / sizeof specs[0])

typedef struct values {
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    float f32;
    uint64_t u64;
    int64_t i64;
    double f64;
    int32_t arr_i32[5];
    uint64_t arr_u64[3];
    int16_t arr_i16[4];
    double arr_f64[2];
    char str[40];
} values;

static void random_values(values *v) {
    v->u8 = (uint8_t)tu_next(&rng);
    v->i8 = (int8_t)tu_next(&rng);
    v->u16 = (uint16_t)tu_next(&rng);
    v->i16 = (int16_t)tu_next(&rng);
    v->u32 = (uint32_t)tu_next(&rng);
    v->i32 = (int32_t)tu_next(&rng);
    v->f32 = tu_gauss(&rng);
    v->u64 = tu_next(&rng) >> 1; /* fits int64 */
    v->i64 = (int64_t)tu_next(&rng);
    v->f64 = tu_gauss(&rng);
    for (int i = 0; i < 5; i++) v->arr_i32[i] = (int32_t)tu_next(&rng);
    for (int i = 0; i < 3; i++) v->arr_u64[i] = tu_next(&rng) >> 2;
    for (int i = 0; i < 4; i++) v->arr_i16[i] = (int16_t)tu_next(&rng);
    for (int i = 0; i < 2; i++) v->arr_f64[i] = tu_gauss(&rng);
    int n = 1 + (int)(tu_next(&rng) % 30);
    for (int i = 0; i < n; i++) v->str[i] = (char)('a' + tu_next(&rng) % 26);
    v->str[n] = 0;
}

/* Nested array value: [[1, 2, 3] (INT32), ["x", "yz"] (STRING), [] (UINT8)]. */
static void nested_raw(bytes *b) {
    b_u32(b, 9);
    b_u64(b, 3);
    b_u32(b, 5);
    b_u64(b, 3);
    for (uint32_t i = 1; i <= 3; i++) b_u32(b, i);
    b_u32(b, 8);
    b_u64(b, 2);
    b_str(b, "x");
    b_str(b, "yz");
    b_u32(b, 0);
    b_u64(b, 0);
}

static qk_status write_round_trip(const char *path, const values *v, unsigned char **data, uint32_t version,
                                  uint32_t alignment, int n_tensors, uint64_t *file_bytes, uint64_t *min_bytes) {
    qk_gguf_writer *w;
    qk_status s = qk_gguf_writer_create(&w);
    if (s) return s;
    bytes nest = {0};
    nested_raw(&nest);
    const char *strs[] = {v->str, "", "second string", "\xe4\xb8\xad"};
    s = qk_gguf_writer_set_version(w, version);
    if (!s && alignment != 32) s = qk_gguf_writer_set_u32(w, "general.alignment", alignment);
    if (!s) s = qk_gguf_writer_set_string(w, "v.string", "placeholder"); /* set again below: moves */
    if (!s) s = qk_gguf_writer_set_kv(w, "v.u8", QK_GGUF_UINT8, &v->u8, 1);
    if (!s) s = qk_gguf_writer_set_kv(w, "v.i8", QK_GGUF_INT8, &v->i8, 1);
    if (!s) s = qk_gguf_writer_set_u16(w, "v.u16", v->u16);
    {
        unsigned char b2[2] = {(unsigned char)v->i16, (unsigned char)((uint16_t)v->i16 >> 8)};
        if (!s) s = qk_gguf_writer_set_kv(w, "v.i16", QK_GGUF_INT16, b2, 2);
    }
    if (!s) s = qk_gguf_writer_set_u32(w, "v.u32", v->u32);
    if (!s) s = qk_gguf_writer_set_i32(w, "v.i32", v->i32);
    if (!s) s = qk_gguf_writer_set_f32(w, "v.f32", v->f32);
    if (!s) s = qk_gguf_writer_set_bool(w, "v.bool", 7);
    if (!s) s = qk_gguf_writer_set_string(w, "v.string", v->str);
    if (!s) s = qk_gguf_writer_set_string(w, "v.empty_string", "");
    {
        unsigned char b8[8];
        uint64_t bits;
        for (int k = 0; k < 8; k++) b8[k] = (unsigned char)(v->u64 >> (8 * k));
        if (!s) s = qk_gguf_writer_set_kv(w, "v.u64", QK_GGUF_UINT64, b8, 8);
        for (int k = 0; k < 8; k++) b8[k] = (unsigned char)((uint64_t)v->i64 >> (8 * k));
        if (!s) s = qk_gguf_writer_set_kv(w, "v.i64", QK_GGUF_INT64, b8, 8);
        memcpy(&bits, &v->f64, 8);
        for (int k = 0; k < 8; k++) b8[k] = (unsigned char)(bits >> (8 * k));
        if (!s) s = qk_gguf_writer_set_kv(w, "v.f64", QK_GGUF_FLOAT64, b8, 8);
    }
    if (!s) s = qk_gguf_writer_set_array(w, "a.i32", QK_GGUF_INT32, v->arr_i32, 5);
    if (!s) s = qk_gguf_writer_set_array(w, "a.u64", QK_GGUF_UINT64, v->arr_u64, 3);
    if (!s) s = qk_gguf_writer_set_array(w, "a.i16", QK_GGUF_INT16, v->arr_i16, 4);
    if (!s) s = qk_gguf_writer_set_array(w, "a.f64", QK_GGUF_FLOAT64, v->arr_f64, 2);
    if (!s) s = qk_gguf_writer_set_array(w, "a.empty", QK_GGUF_FLOAT32, NULL, 0);
    if (!s) s = qk_gguf_writer_set_string_array(w, "a.strings", strs, 4);
    if (!s) s = qk_gguf_writer_set_kv(w, "a.nested", QK_GGUF_ARRAY, nest.p, nest.len);
    if (!s) s = qk_gguf_writer_set_string(w, "v.removed", "gone");
    if (!s) qk_gguf_writer_remove_kv(w, "v.removed");
    for (int i = 0; i < n_tensors && !s; i++)
        s = qk_gguf_writer_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].ne);
    for (int i = 0; i < n_tensors && !s; i++) {
        uint64_t tb = qk_gguf_writer_tensor_bytes(w, (size_t)i);
        if (tb != specs[i].bytes) {
            CHECK(0, "%s: writer says %llu bytes, expected %zu", specs[i].name, (unsigned long long)tb, specs[i].bytes);
        }
    }
    *file_bytes = qk_gguf_writer_file_bytes(w);
    uint64_t last = n_tensors ? specs[n_tensors - 1].bytes : 0;
    *min_bytes = n_tensors ? *file_bytes - ((alignment - last % alignment) % alignment) : 0;
    if (!s) s = qk_gguf_writer_begin(w, path);
    if (!s)
        CHECK(qk_gguf_writer_temp_path(w) && file_exists(qk_gguf_writer_temp_path(w)),
              "temp file exists while writing");
    /* data in pieces of random sizes that straddle tensors */
    bytes all = {0};
    for (int i = 0; i < n_tensors; i++) b_put(&all, data[i], specs[i].bytes);
    for (size_t pos = 0; pos < all.len && !s;) {
        size_t k = 1 + (size_t)(tu_next(&rng) % 200);
        if (k > all.len - pos) k = all.len - pos;
        s = qk_gguf_writer_write(w, all.p + pos, k);
        pos += k;
    }
    if (!s) s = qk_gguf_writer_finish(w);
    qk_gguf_writer_free(w);
    b_free(&all);
    b_free(&nest);
    return s;
}

static int raw_is(const qk_gguf *g, const char *key, qk_gguf_vtype type, const bytes *want) {
    const qk_gguf_kv *kv = qk_gguf_find_kv(g, key);
    return kv && kv->type == type && kv->raw_len == want->len && !memcmp(kv->raw, want->p, want->len);
}

static void check_round_trip(const qk_gguf *g, const values *v, unsigned char **data, int n_tensors, uint32_t alignment,
                             const char *label) {
    int64_t x;
    CHECK(qk_gguf_kv_count(g) == 20 + (alignment != 32), "%s: %zu pairs", label, qk_gguf_kv_count(g));
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.u8"), &x) && x == v->u8, "%s: u8", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.i8"), &x) && x == v->i8, "%s: i8", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.u16"), &x) && x == v->u16, "%s: u16", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.i16"), &x) && x == v->i16, "%s: i16", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.u32"), &x) && x == v->u32, "%s: u32", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.i32"), &x) && x == v->i32, "%s: i32", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.u64"), &x) && (uint64_t)x == v->u64, "%s: u64", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.i64"), &x) && x == v->i64, "%s: i64", label);
    CHECK(!qk_gguf_kv_int(qk_gguf_find_kv(g, "v.bool"), &x) && x == 1, "%s: bool", label);
    CHECK(qk_gguf_kv_int(qk_gguf_find_kv(g, "v.f32"), &x) == QK_ERR_TYPE, "%s: a float is not an integer", label);
    CHECK(qk_gguf_get_int(g, "v.string", -5) == -5 && qk_gguf_get_int(g, "absent", -6) == -6, "%s: fallbacks", label);
    CHECK(qk_gguf_find_kv(g, "v.removed") == NULL, "%s: removed key absent", label);
    /* ggml set semantics: setting v.string again removed it from the front and appended it */
    const qk_gguf_kv *k0 = qk_gguf_kv_at(g, alignment != 32 ? 1 : 0);
    CHECK(k0 && !strcmp(k0->key, "v.u8"), "%s: order of pairs", label);
    const qk_gguf_kv *k8 = qk_gguf_kv_at(g, alignment != 32 ? 9 : 8);
    CHECK(k8 && !strcmp(k8->key, "v.string"), "%s: a re-set key moves to the end (v.string after v.bool)", label);

    bytes e = {0};
    uint32_t fb;
    memcpy(&fb, &v->f32, 4);
    b_u32(&e, fb);
    CHECK(raw_is(g, "v.f32", QK_GGUF_FLOAT32, &e), "%s: f32 bits", label);
    b_free(&e);
    uint64_t db;
    memcpy(&db, &v->f64, 8);
    b_u64(&e, db);
    CHECK(raw_is(g, "v.f64", QK_GGUF_FLOAT64, &e), "%s: f64 bits", label);
    b_free(&e);
    b_str(&e, v->str);
    CHECK(raw_is(g, "v.string", QK_GGUF_STRING, &e), "%s: string encoding", label);
    b_free(&e);
    b_u64(&e, 0);
    CHECK(raw_is(g, "v.empty_string", QK_GGUF_STRING, &e), "%s: empty string", label);
    b_free(&e);
    b_u32(&e, 5);
    b_u64(&e, 5);
    for (int i = 0; i < 5; i++) b_u32(&e, (uint32_t)v->arr_i32[i]);
    CHECK(raw_is(g, "a.i32", QK_GGUF_ARRAY, &e), "%s: INT32 array encoding", label);
    b_free(&e);
    b_u32(&e, 10);
    b_u64(&e, 3);
    for (int i = 0; i < 3; i++) b_u64(&e, v->arr_u64[i]);
    CHECK(raw_is(g, "a.u64", QK_GGUF_ARRAY, &e), "%s: UINT64 array encoding", label);
    b_free(&e);
    b_u32(&e, 3);
    b_u64(&e, 4);
    for (int i = 0; i < 4; i++) b_uint(&e, (uint16_t)v->arr_i16[i], 2);
    CHECK(raw_is(g, "a.i16", QK_GGUF_ARRAY, &e), "%s: INT16 array encoding", label);
    b_free(&e);
    b_u32(&e, 12);
    b_u64(&e, 2);
    for (int i = 0; i < 2; i++) {
        memcpy(&db, &v->arr_f64[i], 8);
        b_u64(&e, db);
    }
    CHECK(raw_is(g, "a.f64", QK_GGUF_ARRAY, &e), "%s: FLOAT64 array encoding", label);
    b_free(&e);
    b_u32(&e, 6);
    b_u64(&e, 0);
    CHECK(raw_is(g, "a.empty", QK_GGUF_ARRAY, &e), "%s: empty array", label);
    b_free(&e);
    b_u32(&e, 8);
    b_u64(&e, 4);
    b_str(&e, v->str);
    b_str(&e, "");
    b_str(&e, "second string");
    b_str(&e, "\xe4\xb8\xad");
    CHECK(raw_is(g, "a.strings", QK_GGUF_ARRAY, &e), "%s: string array encoding", label);
    b_free(&e);
    nested_raw(&e);
    CHECK(raw_is(g, "a.nested", QK_GGUF_ARRAY, &e), "%s: nested array encoding", label);
    b_free(&e);

    for (uint64_t i = 0; i < 5; i++)
        CHECK(!qk_gguf_kv_array_int(qk_gguf_find_kv(g, "a.i32"), i, &x) && x == v->arr_i32[i], "%s: a.i32[%llu]", label,
              (unsigned long long)i);
    CHECK(qk_gguf_kv_array_int(qk_gguf_find_kv(g, "a.i32"), 5, &x) != QK_OK, "%s: index 5 of 5 refused", label);
    CHECK(qk_gguf_get_int(g, "a.i32", 0) == v->arr_i32[0], "%s: get_int of an array gives element 0", label);
    CHECK(!qk_gguf_kv_array_int(qk_gguf_find_kv(g, "a.i16"), 3, &x) && x == v->arr_i16[3], "%s: a.i16[3]", label);
    const char *s;
    uint64_t n;
    CHECK(!qk_gguf_kv_array_string(qk_gguf_find_kv(g, "a.strings"), 2, &s, &n) && n == 13 &&
              !memcmp(s, "second string", 13),
          "%s: a.strings[2]", label);
    CHECK(!qk_gguf_kv_array_string(qk_gguf_find_kv(g, "a.strings"), 1, &s, &n) && n == 0, "%s: a.strings[1]", label);
    CHECK(qk_gguf_kv_array_string(qk_gguf_find_kv(g, "a.strings"), 4, &s, &n) != QK_OK, "%s: a.strings[4]", label);
    CHECK(qk_gguf_kv_array_string(qk_gguf_find_kv(g, "a.i32"), 0, &s, &n) == QK_ERR_TYPE, "%s: not strings", label);
    CHECK(qk_gguf_kv_array_int(qk_gguf_find_kv(g, "a.nested"), 0, &x) == QK_ERR_TYPE, "%s: nested is not ints", label);
    qk_gguf_vtype et;
    const unsigned char *first;
    CHECK(!qk_gguf_kv_array(qk_gguf_find_kv(g, "a.nested"), &et, &n, &first) && et == QK_GGUF_ARRAY && n == 3,
          "%s: nested array header", label);
    CHECK(!qk_gguf_kv_string(qk_gguf_find_kv(g, "v.string"), &s, &n) && n == strlen(v->str) && !memcmp(s, v->str, n),
          "%s: kv_string", label);
    char buf[8];
    CHECK(qk_gguf_get_string(g, "v.string", buf, sizeof buf) &&
              strlen(buf) == (strlen(v->str) < 7 ? strlen(v->str) : 7),
          "%s: get_string truncates", label);

    CHECK(qk_gguf_tensor_count(g) == (size_t)n_tensors, "%s: %zu tensors", label, qk_gguf_tensor_count(g));
    uint64_t expect_offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, (size_t)i);
        const tensor_spec *sp = &specs[i];
        int ne_ok = 1;
        for (int d = 0; d < 4; d++) ne_ok &= t->ne[d] == (d < sp->n_dims ? sp->ne[d] : 1);
        CHECK(t && !strcmp(t->name, sp->name) && t->type == sp->type && t->n_dims == sp->stored_dims && ne_ok &&
                  t->bytes == sp->bytes && t->split == 0,
              "%s: tensor %d (%s) info: n_dims %d", label, i, sp->name, t ? t->n_dims : -1);
        CHECK(t && t->offset == expect_offset && t->offset % alignment == 0, "%s: %s offset %llu, expected %llu", label,
              sp->name, t ? (unsigned long long)t->offset : 0, (unsigned long long)expect_offset);
        CHECK(t && (sp->bytes == 0 || !memcmp(t->data, data[i], sp->bytes)), "%s: %s data", label, sp->name);
        CHECK(qk_gguf_find_tensor(g, sp->name) == t, "%s: find %s", label, sp->name);
        expect_offset += (sp->bytes + alignment - 1) / alignment * alignment;
    }
    CHECK(qk_gguf_find_tensor(g, "nope") == NULL, "%s: unknown tensor", label);
}

static void test_round_trips(void) {
    struct {
        uint32_t version, alignment;
        int n_tensors;
    } variants[] = {{3, 32, (int)N_SPECS}, {3, 64, (int)N_SPECS}, {2, 32, (int)N_SPECS}, {3, 32, 0}, {2, 64, 3}};
    for (size_t vi = 0; vi < sizeof variants / sizeof variants[0]; vi++) {
        values v;
        random_values(&v);
        unsigned char *data[N_SPECS];
        for (size_t i = 0; i < N_SPECS; i++) {
            data[i] = tu_poisoned(specs[i].bytes);
            fill_random(data[i], specs[i].bytes);
        }
        char label[64], path[512];
        snprintf(label, sizeof label, "v%u align %u, %d tensors", variants[vi].version, variants[vi].alignment,
                 variants[vi].n_tensors);
        path_in_tmp(path, sizeof path, "rt.gguf");
        uint64_t file_bytes = 0, min_bytes = 0;
        qk_status s = write_round_trip(path, &v, data, variants[vi].version, variants[vi].alignment,
                                       variants[vi].n_tensors, &file_bytes, &min_bytes);
        CHECK(s == QK_OK, "%s: write: %s", label, qk_last_error(NULL));
        CHECK(file_size(path) == (long)file_bytes && file_bytes % variants[vi].alignment == 0,
              "%s: file is %ld bytes, writer said %llu", label, file_size(path), (unsigned long long)file_bytes);
        CHECK(count_files_with(".tmp.") == 0, "%s: no temporary file left", label);
        qk_gguf *g = NULL;
        s = qk_gguf_open(path, &g);
        CHECK(s == QK_OK, "%s: read: %s", label, qk_last_error(NULL));
        if (g) {
            CHECK(qk_gguf_version(g) == variants[vi].version && qk_gguf_alignment(g) == variants[vi].alignment,
                  "%s: version/alignment", label);
            check_round_trip(g, &v, data, variants[vi].n_tensors, variants[vi].alignment, label);
            char fmt[256];
            for (size_t i = 0; i < qk_gguf_kv_count(g); i++) qk_gguf_kv_format(qk_gguf_kv_at(g, i), fmt, sizeof fmt);
            qk_gguf_close(g);
        }
        /* the first variant, truncated at every length */
        if (vi == 0) {
            size_t n;
            unsigned char *img = tu_read_file(tmpdir, "rt.gguf", &n);
            int wrong = 0;
            for (size_t len = 0; img && len <= n; len++) {
                qk_status st = parse_copy(img, len);
                int should_pass = len >= min_bytes;
                if ((st == QK_OK) != should_pass || (!should_pass && !good_message("img.gguf")))
                    if (wrong++ < 3) CHECK(0, "%s: truncated to %zu: status %d", label, len, (int)st);
            }
            CHECK(img && wrong == 0, "%s: %d truncation lengths misjudged (of %zu)", label, wrong, n);
            free(img);
        }
        unlink(path);
        for (size_t i = 0; i < N_SPECS; i++) free(data[i]);
    }
}

/* ---- formatting and accessors on odd values ------------------------------------------------------ */

static void test_format(void) {
    char buf[256];
    bytes raw = {0};
    qk_gguf_kv kv = {"k", QK_GGUF_UINT32, NULL, 0};
    b_u32(&raw, 3);
    kv.raw = raw.p;
    kv.raw_len = raw.len;
    qk_gguf_kv_format(&kv, buf, sizeof buf);
    CHECK(!strcmp(buf, "3"), "UINT32 3 -> '%s'", buf);
    b_free(&raw);

    b_str(&raw, "llama");
    kv = (qk_gguf_kv){"k", QK_GGUF_STRING, raw.p, raw.len};
    qk_gguf_kv_format(&kv, buf, sizeof buf);
    CHECK(!strcmp(buf, "llama"), "STRING -> '%s'", buf);
    b_free(&raw);

    b_u32(&raw, 8);
    b_u64(&raw, 151936);
    for (int i = 0; i < 151936; i++) b_str(&raw, i % 2 ? "ab" : "\n");
    kv = (qk_gguf_kv){"k", QK_GGUF_ARRAY, raw.p, raw.len};
    qk_gguf_kv_format(&kv, buf, sizeof buf);
    CHECK(!strncmp(buf, "[151936 \xc3\x97 STRING", 17) && !strchr(buf, '\n') && strlen(buf) < 100,
          "string array -> '%s'", buf);
    for (size_t len = 0; len < 40; len++) {
        memset(buf, 'Z', sizeof buf);
        qk_gguf_kv_format(&kv, buf, len);
        CHECK(len == 0 ? buf[0] == 'Z' : strlen(buf) < len, "buffer of %zu bytes respected", len);
    }
    b_free(&raw);

    nested_raw(&raw);
    kv = (qk_gguf_kv){"k", QK_GGUF_ARRAY, raw.p, raw.len};
    qk_gguf_kv_format(&kv, buf, sizeof buf);
    CHECK(strstr(buf, "[3 \xc3\x97 ARRAY") && strstr(buf, "[3 \xc3\x97 INT32: 1, 2, 3]") && strstr(buf, "\"yz\""),
          "nested -> '%s'", buf);
    /* a hand-made pair with a malformed encoding is summarized, not over-read */
    kv.raw_len = 20;
    qk_gguf_kv_format(&kv, buf, sizeof buf);
    CHECK(strstr(buf, "malformed") != NULL, "malformed -> '%s'", buf);
    b_free(&raw);

    b_u64(&raw, 1ull << 63);
    kv = (qk_gguf_kv){"k", QK_GGUF_UINT64, raw.p, raw.len};
    int64_t x = 1;
    CHECK(qk_gguf_kv_int(&kv, &x) == QK_ERR_TYPE && x == 0, "UINT64 2^63 does not fit int64");
    qk_gguf_kv_format(&kv, buf, sizeof buf);
    CHECK(!strcmp(buf, "9223372036854775808"), "UINT64 2^63 -> '%s'", buf);
    b_free(&raw);

    /* UTF-8 is shown as is, and a short buffer never ends inside a character */
    b_str(&raw, "h\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80z\x01\xff");
    kv = (qk_gguf_kv){"k", QK_GGUF_STRING, raw.p, raw.len};
    qk_gguf_kv_format(&kv, buf, sizeof buf);
    CHECK(!strcmp(buf, "h\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80z\\x01\\xff"), "UTF-8 string -> '%s'", buf);
    static const size_t cut_at[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const size_t kept[] = {1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};
    for (size_t i = 0; i < sizeof cut_at / sizeof cut_at[0]; i++) {
        qk_gguf_kv_format(&kv, buf, cut_at[i]);
        CHECK(strlen(buf) == kept[i], "UTF-8 cut to a %zu-byte buffer keeps %zu bytes, got %zu", cut_at[i], kept[i],
              strlen(buf));
    }
    b_free(&raw);

    CHECK(!strcmp(qk_gguf_vtype_name(QK_GGUF_FLOAT64), "FLOAT64") && !strcmp(qk_gguf_vtype_name(QK_GGUF_BOOL), "BOOL"),
          "type names");
}

/* ---- the writer refuses bad input ---------------------------------------------------------------- */

static void test_writer_refusals(void) {
    qk_gguf_writer *w;
    CHECK(qk_gguf_writer_create(&w) == QK_OK, "create");
    int64_t ne[4] = {32, 2, 1, 1};
    char n63[64], n64[65];
    memset(n63, 'a', 63);
    n63[63] = 0;
    memset(n64, 'b', 64);
    n64[64] = 0;
    CHECK(qk_gguf_writer_add_tensor(w, "t", QK_TYPE_F32, 2, ne) == QK_OK, "add t");
    CHECK(qk_gguf_writer_add_tensor(w, "t", QK_TYPE_F16, 1, ne) == QK_ERR_INVALID_ARG, "duplicate tensor refused");
    CHECK(qk_gguf_writer_add_tensor(w, n64, QK_TYPE_F32, 1, ne) == QK_ERR_INVALID_ARG, "64-byte name refused");
    CHECK(qk_gguf_writer_add_tensor(w, n63, QK_TYPE_F32, 1, ne) == QK_OK, "63-byte name accepted: %s",
          qk_last_error(NULL));
    CHECK(qk_gguf_writer_add_tensor(w, "d0", QK_TYPE_F32, 0, ne) == QK_ERR_SHAPE, "0 dims refused");
    CHECK(qk_gguf_writer_add_tensor(w, "d5", QK_TYPE_F32, 5, ne) == QK_ERR_SHAPE, "5 dims refused");
    CHECK(qk_gguf_writer_add_tensor(w, "ty", (qk_type)4, 1, ne) == QK_ERR_TYPE, "removed type refused");
    int64_t ne33[1] = {33}, neg[2] = {32, -1}, huge[4] = {1ll << 40, 1ll << 40, 1, 1};
    CHECK(qk_gguf_writer_add_tensor(w, "q", QK_TYPE_Q8_0, 1, ne33) == QK_ERR_SHAPE, "ne[0] %% 32 refused");
    CHECK(qk_gguf_writer_add_tensor(w, "n", QK_TYPE_F32, 2, neg) == QK_ERR_SHAPE, "negative dim refused");
    CHECK(qk_gguf_writer_add_tensor(w, "h", QK_TYPE_F32, 2, huge) == QK_ERR_SHAPE, "overflowing size refused");
    CHECK(qk_gguf_writer_set_u32(w, "general.alignment", 48) == QK_ERR_VALUE, "alignment 48 refused");
    CHECK(qk_gguf_writer_set_i32(w, "general.alignment", 64) == QK_ERR_TYPE, "INT32 alignment refused");
    CHECK(qk_gguf_writer_set_u32(w, "", 1) == QK_ERR_INVALID_ARG, "empty key refused");
    unsigned char bad_string[12] = {5, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c', 'd'};
    CHECK(qk_gguf_writer_set_kv(w, "s", QK_GGUF_STRING, bad_string, 12) == QK_ERR_INVALID_ARG, "short string refused");
    CHECK(qk_gguf_writer_set_kv(w, "s", QK_GGUF_UINT32, bad_string, 3) == QK_ERR_INVALID_ARG, "short UINT32 refused");
    CHECK(qk_gguf_writer_set_kv(w, "s", (qk_gguf_vtype)13, bad_string, 1) == QK_ERR_INVALID_ARG, "type 13 refused");
    CHECK(qk_gguf_writer_set_version(w, 1) == QK_ERR_INVALID_ARG &&
              qk_gguf_writer_set_version(w, 4) == QK_ERR_INVALID_ARG,
          "versions 1 and 4 refused");
    CHECK(qk_gguf_writer_set_array(w, "a", QK_GGUF_STRING, "x", 1) == QK_ERR_INVALID_ARG,
          "set_array of STRING refused");
    qk_gguf_writer_free(w);

    /* too little data: finish fails, nothing at the target, no temporary left */
    char path[512];
    path_in_tmp(path, sizeof path, "short.gguf");
    float data[64] = {0};
    qk_gguf_writer_create(&w);
    qk_gguf_writer_add_tensor(w, "t", QK_TYPE_F32, 2, ne);
    qk_gguf_writer_add_tensor(w, "u", QK_TYPE_F32, 1, ne);
    CHECK(qk_gguf_writer_begin(w, path) == QK_OK, "begin: %s", qk_last_error(NULL));
    CHECK(qk_gguf_writer_add_tensor(w, "late", QK_TYPE_F32, 1, ne) == QK_ERR_INVALID_ARG, "add after begin refused");
    CHECK(qk_gguf_writer_set_u32(w, "late", 1) == QK_ERR_INVALID_ARG, "set after begin refused");
    CHECK(qk_gguf_writer_write(w, data, 64 * 4) == QK_OK, "write all of t");
    CHECK(qk_gguf_writer_write(w, data, 100) == QK_OK, "write part of u");
    CHECK(qk_gguf_writer_finish(w) == QK_ERR_INVALID_ARG && strstr(qk_last_error(NULL), "'u'"),
          "incomplete file refused: %s", qk_last_error(NULL));
    CHECK(!file_exists(path) && count_files_with(".tmp.") == 0, "no file and no temporary after a refused finish");
    CHECK(qk_gguf_writer_write(w, data, 4) == QK_ERR_INVALID_ARG, "write after failure refused");
    qk_gguf_writer_free(w);

    /* too much data */
    qk_gguf_writer_create(&w);
    qk_gguf_writer_add_tensor(w, "t", QK_TYPE_F32, 1, ne);
    qk_gguf_writer_begin(w, path);
    CHECK(qk_gguf_writer_write(w, data, 33 * 4) == QK_ERR_INVALID_ARG, "extra data refused");
    CHECK(qk_gguf_writer_finish(w) != QK_OK, "finish after the failure refused");
    CHECK(!file_exists(path) && count_files_with(".tmp.") == 0, "no file and no temporary after extra data");
    qk_gguf_writer_free(w);

    /* abort, and free without finishing, leave nothing */
    for (int how = 0; how < 2; how++) {
        qk_gguf_writer_create(&w);
        qk_gguf_writer_add_tensor(w, "t", QK_TYPE_F32, 1, ne);
        qk_gguf_writer_begin(w, path);
        qk_gguf_writer_write(w, data, 8);
        CHECK(count_files_with(".tmp.") == 1, "one temporary while writing");
        if (how == 0) {
            qk_gguf_writer_abort(w);
            CHECK(qk_gguf_writer_temp_path(w) == NULL, "no temp path after abort");
            CHECK(qk_gguf_writer_finish(w) != QK_OK, "finish after abort refused");
        }
        qk_gguf_writer_free(w);
        CHECK(!file_exists(path) && count_files_with(".tmp.") == 0, "abort/free (%d) leaves no file", how);
    }

    /* begin into a missing folder */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.gguf", tmpdir);
    qk_gguf_writer_create(&w);
    CHECK(qk_gguf_writer_begin(w, missing) == QK_ERR_IO && strstr(qk_last_error(NULL), "x.gguf"), "missing folder: %s",
          qk_last_error(NULL));
    qk_gguf_writer_free(w);

    /* an I/O error while writing (file size limit standing in for a full disk) */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = old;
    lim.rlim_cur = 1 << 20;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        size_t big = 3u << 20;
        unsigned char *chunk = calloc(1, big);
        int64_t ne_big[1] = {(int64_t)big / 4};
        qk_gguf_writer_create(&w);
        qk_gguf_writer_add_tensor(w, "big", QK_TYPE_F32, 1, ne_big);
        qk_status s = qk_gguf_writer_begin(w, path);
        if (s == QK_OK) s = qk_gguf_writer_write(w, chunk, big);
        if (s == QK_OK) s = qk_gguf_writer_finish(w);
        CHECK(s == QK_ERR_IO && strstr(qk_last_error(NULL), "File too large"), "write beyond the size limit: %d %s",
              (int)s, qk_last_error(NULL));
        CHECK(!file_exists(path) && count_files_with(".tmp.") == 0, "no file and no temporary after an I/O error");
        qk_gguf_writer_free(w);
        free(chunk);
        setrlimit(RLIMIT_FSIZE, &old);
    }
    signal(SIGXFSZ, prev);
}

/* ---- split models ------------------------------------------------------------------------------- */

typedef struct split_opts {
    int tensors_count; /* value of split.tensors.count */
    int dup;           /* part 3 repeats a tensor of part 1 */
    int bad_no;        /* part 2 says split.no = 0 */
} split_opts;

static qk_status write_split(const char *prefix, split_opts o, unsigned char data[6][64]) {
    qk_gguf_writer *w[3] = {0};
    qk_status s = QK_OK;
    char path[600], name[32];
    int64_t ne[1] = {16};
    for (int p = 0; p < 3 && !s; p++) {
        s = qk_gguf_writer_create(&w[p]);
        if (!s && p == 0) s = qk_gguf_writer_set_string(w[p], "general.name", "split test");
        if (!s) s = qk_gguf_writer_set_u16(w[p], "split.no", (uint16_t)(o.bad_no && p == 1 ? 0 : p));
        if (!s) s = qk_gguf_writer_set_u16(w[p], "split.count", 3);
        if (!s) s = qk_gguf_writer_set_i32(w[p], "split.tensors.count", o.tensors_count);
        for (int t = 0; t < 2 && !s; t++) {
            snprintf(name, sizeof name, "blk.%d.w", o.dup && p == 2 && t == 1 ? 0 : 2 * p + t);
            s = qk_gguf_writer_add_tensor(w[p], name, QK_TYPE_F32, 1, ne);
        }
        qk_gguf_split_name(path, sizeof path, prefix, p + 1, 3);
        if (!s) s = qk_gguf_writer_begin(w[p], path);
        for (int t = 0; t < 2 && !s; t++) s = qk_gguf_writer_write(w[p], data[2 * p + t], 64);
    }
    for (int p = 0; p < 3 && !s; p++) s = qk_gguf_writer_close(w[p]);
    for (int p = 0; p < 3 && !s; p++) s = qk_gguf_writer_commit(w[p]);
    for (int p = 0; p < 3; p++) qk_gguf_writer_free(w[p]);
    return s;
}

static void remove_split(const char *prefix) {
    char path[600];
    for (int p = 1; p <= 3; p++) {
        qk_gguf_split_name(path, sizeof path, prefix, p, 3);
        unlink(path);
    }
}

static void test_split(void) {
    char prefix[520], path[600], pre[64];
    int no = 0, count = 0;
    CHECK(qk_gguf_split_name_parse("dir/model-00002-of-00003.gguf", pre, sizeof pre, &no, &count) && no == 2 &&
              count == 3 && !strcmp(pre, "dir/model"),
          "split name parsed");
    CHECK(qk_gguf_split_name_parse("a-b-00010-of-00012.gguf", pre, sizeof pre, &no, &count) && no == 10 &&
              count == 12 && !strcmp(pre, "a-b"),
          "split name with dashes");
    const char *not_split[] = {
        "model.gguf",           "m-0001-of-00003.gguf",  "m-00004-of-00003.gguf", "m-00000-of-00003.gguf",
        "m-00001-of-00003.bin", "m-00001_of-00003.gguf", "00001-of-00003.gguf",   ""};
    for (size_t i = 0; i < sizeof not_split / sizeof not_split[0]; i++)
        CHECK(!qk_gguf_split_name_parse(not_split[i], pre, sizeof pre, &no, &count), "'%s' is not a split name",
              not_split[i]);
    qk_gguf_split_name(path, sizeof path, "x/m", 7, 12);
    CHECK(!strcmp(path, "x/m-00007-of-00012.gguf"), "split name '%s'", path);

    unsigned char data[6][64];
    for (int i = 0; i < 6; i++) fill_random(data[i], 64);
    path_in_tmp(prefix, sizeof prefix, "sm");
    split_opts good = {6, 0, 0};
    CHECK(write_split(prefix, good, data) == QK_OK, "writing 3 parts: %s", qk_last_error(NULL));
    for (int via = 1; via <= 3; via++) {
        qk_gguf_split_name(path, sizeof path, prefix, via, 3);
        qk_gguf *g = NULL;
        qk_status s = qk_gguf_open(path, &g);
        CHECK(s == QK_OK, "open via part %d: %s", via, qk_last_error(NULL));
        if (!g) continue;
        CHECK(qk_gguf_split_count(g) == 3 && qk_gguf_tensor_count(g) == 6, "3 parts, 6 tensors");
        char buf[32];
        CHECK(qk_gguf_get_string(g, "general.name", buf, sizeof buf) && qk_gguf_get_int(g, "split.no", -1) == 0,
              "metadata of part 1");
        for (int i = 0; i < 6; i++) {
            char name[16];
            snprintf(name, sizeof name, "blk.%d.w", i);
            const qk_gguf_tensor *t = qk_gguf_tensor_at(g, (size_t)i);
            CHECK(t && !strcmp(t->name, name) && t->split == i / 2 && t->offset == (uint64_t)(i % 2) * 64 &&
                      !memcmp(t->data, data[i], 64) && qk_gguf_find_tensor(g, name) == t,
                  "tensor %d of the split model", i);
            qk_gguf_release_tensor(g, (size_t)i);
        }
        long total = 0;
        for (int p = 1; p <= 3; p++) {
            char part[600];
            qk_gguf_split_name(part, sizeof part, prefix, p, 3);
            total += file_size(part);
        }
        CHECK(qk_gguf_file_bytes(g) == (uint64_t)total, "file bytes of all parts");
        qk_gguf_close(g);
    }
    /* a missing part */
    qk_gguf_split_name(path, sizeof path, prefix, 2, 3);
    unlink(path);
    qk_gguf *g = NULL;
    qk_gguf_split_name(path, sizeof path, prefix, 1, 3);
    CHECK(qk_gguf_open(path, &g) == QK_ERR_IO && !g && strstr(qk_last_error(NULL), "-00002-of-00003.gguf"),
          "missing part: %s", qk_last_error(NULL));
    remove_split(prefix);

    split_opts bad[] = {{5, 0, 0}, {6, 1, 0}, {6, 0, 1}};
    const char *want[] = {"split.tensors.count is 5, expected 6", "also in split part 1", "split.no is 0, expected 1"};
    for (int i = 0; i < 3; i++) {
        CHECK(write_split(prefix, bad[i], data) == QK_OK, "writing bad split %d: %s", i, qk_last_error(NULL));
        qk_gguf_split_name(path, sizeof path, prefix, 3, 3);
        qk_status s = qk_gguf_open(path, &g);
        CHECK(s == QK_ERR_FORMAT && !g && strstr(qk_last_error(NULL), want[i]), "bad split %d: %s", i,
              qk_last_error(NULL));
        remove_split(prefix);
    }
    CHECK(count_files_with("sm-") == 0, "split files cleaned up");
}

int main(void) {
    rng.s = tu_seed();
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 2;
    }
    test_doc_example_layout();
    test_doc_example_patches();
    test_built_images();
    test_round_trips();
    test_format();
    test_writer_refusals();
    test_split();
    remove_tmpdir();
    return tu_finish();
}
