/* The MoE matmul on the CPU backend: the case matrix of moe_harness (every type, small and
 * ragged shapes, one model shape for a few types) against the float64 reference; results that
 * do not depend on the thread count; and bad input refused with a clear error, y untouched. */
#include "moe_harness.h"
#include "qkern_cuda.h"

static qk_context *cpu;
static moe_harness h;

static int untouched(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0xA5) return 0;
    return 1;
}

/* A small valid call of each entry point, its inputs and weights, for the checks to break. */
typedef struct fixture {
    moe_pool pool;
    moe_weights w;
    moe_inputs in;
    float *y;
    qk_moe_desc d;
} fixture;

static void fixture_make(fixture *f, moe_call call, qk_type type, int64_t n_expert, moe_routing routing) {
    const moe_case c = {call, n_expert, 24, 512, 5, n_expert > 1 ? 3 : 2, QK_TYPE_F32, 0, routing};
    moe_pool_make(&h, type, c.k, 32, &f->pool);
    moe_weights_make(&h, &f->pool, c.n_expert, c.m, 1, &f->w);
    moe_inputs_make(&h, &c, &f->in);
    f->y = tu_poisoned(f->in.y_bytes);
    f->d = moe_desc_for(&f->in, &f->w, f->y);
}

static void fixture_free(fixture *f) {
    free(f->y);
    moe_inputs_free(&f->in);
    moe_weights_free(&f->w);
    moe_pool_free(&f->pool);
}

/* An id outside [0, n_expert) is refused before anything runs; the message names its token and
 * slot; y keeps its poison. Negative ids too. */
static void test_id_out_of_range_is_named_and_nothing_is_written(void) {
    fixture f;
    fixture_make(&f, MOE_MATMUL, QK_TYPE_Q4_K, 6, MOE_UNIFORM);
    f.in.ids[2 * 3 + 1] = 6;
    CHECK(qk_moe_matmul(cpu, &f.d) == QK_ERR_VALUE, "id 6 of 6 experts accepted");
    CHECK(strstr(qk_last_error(cpu), "[2][1]") && strstr(qk_last_error(cpu), "6"),
          "message does not name token 2, slot 1: %s", qk_last_error(cpu));
    CHECK(untouched(f.y, f.in.y_bytes), "y written although an id was out of range");
    f.in.ids[2 * 3 + 1] = 0;
    f.in.ids[4 * 3 + 2] = -1;
    CHECK(qk_moe_matmul(cpu, &f.d) == QK_ERR_VALUE && strstr(qk_last_error(cpu), "[4][2]"),
          "id -1 at token 4, slot 2: %s", qk_last_error(cpu));
    CHECK(untouched(f.y, f.in.y_bytes), "y written although an id was negative");
    fixture_free(&f);
}

/* k must be a multiple of the weight type's block size. */
static void test_k_not_a_multiple_of_the_block_is_a_shape_error(void) {
    fixture f;
    fixture_make(&f, MOE_MATMUL, QK_TYPE_Q4_K, 6, MOE_UNIFORM);
    f.d.k = 500;
    CHECK(qk_moe_matmul(cpu, &f.d) == QK_ERR_SHAPE, "k 500 for Q4_K accepted");
    CHECK(strstr(qk_last_error(cpu), "500") && strstr(qk_last_error(cpu), "256"), "message: %s", qk_last_error(cpu));
    f.d.k = 512, f.d.n_used = 0;
    CHECK(qk_moe_matmul(cpu, &f.d) == QK_ERR_SHAPE, "n_used 0 accepted");
    CHECK(untouched(f.y, f.in.y_bytes), "y written on a shape error");
    fixture_free(&f);
}

/* Each call reads its own operands and refuses the others': a mistaken call is not silently a
 * different product. */
static void test_operands_belong_to_their_call(void) {
    fixture f;
    fixture_make(&f, MOE_WEIGHTED_SUM, QK_TYPE_Q8_0, 6, MOE_UNIFORM);
    qk_moe_desc d = f.d;
    d.router = (qk_mem){0};
    CHECK(qk_moe_weighted_sum(cpu, &d) == QK_ERR_INVALID_ARG, "weighted sum without router accepted");
    CHECK(qk_moe_matmul(cpu, &f.d) == QK_ERR_INVALID_ARG && strstr(qk_last_error(cpu), "router"),
          "matmul with a router accepted: %s", qk_last_error(cpu));
    CHECK(qk_moe_gate_up(cpu, &d) == QK_ERR_INVALID_ARG && strstr(qk_last_error(cpu), "w_up"),
          "gate_up without w_up accepted: %s", qk_last_error(cpu));
    d.w_up = qk_host(f.w.w_up, f.w.bytes);
    CHECK(qk_moe_matmul(cpu, &d) == QK_ERR_INVALID_ARG && strstr(qk_last_error(cpu), "w_up"),
          "matmul with w_up accepted: %s", qk_last_error(cpu));
    d = f.d;
    d.x_per_slot = 2;
    CHECK(qk_moe_weighted_sum(cpu, &d) == QK_ERR_INVALID_ARG, "x_per_slot 2 accepted");
    d = f.d;
    d.x_type = QK_TYPE_Q8_0;
    CHECK(qk_moe_weighted_sum(cpu, &d) == QK_ERR_TYPE, "Q8_0 activations accepted");
    d = f.d;
    d.struct_size = sizeof d - 8;
    CHECK(qk_moe_weighted_sum(cpu, &d) == QK_ERR_INVALID_ARG && strstr(qk_last_error(cpu), "struct_size"),
          "a short struct_size accepted: %s", qk_last_error(cpu));
    CHECK(qk_moe_weighted_sum(cpu, NULL) == QK_ERR_INVALID_ARG, "NULL desc accepted");
    CHECK(untouched(f.y, f.in.y_bytes), "y written on an argument error");
    fixture_free(&f);
}

/* Every operand must hold what the shapes say; y and w one byte short are refused. */
static void test_small_operands_are_buffer_errors(void) {
    fixture f;
    fixture_make(&f, MOE_GATE_UP, QK_TYPE_IQ4_NL, 6, MOE_UNIFORM);
    qk_moe_desc d = f.d;
    d.y.bytes--;
    CHECK(qk_moe_gate_up(cpu, &d) == QK_ERR_BUFFER && strstr(qk_last_error(cpu), "y"), "short y: %s",
          qk_last_error(cpu));
    d = f.d;
    d.w.bytes--;
    CHECK(qk_moe_gate_up(cpu, &d) == QK_ERR_BUFFER, "short w accepted");
    d = f.d;
    d.w_up.bytes--;
    CHECK(qk_moe_gate_up(cpu, &d) == QK_ERR_BUFFER, "short w_up accepted");
    /* ids one slot short, in an allocation of just that size: refused before any id is read */
    int32_t *short_ids = malloc(f.in.ids_bytes - 4);
    memcpy(short_ids, f.in.ids, f.in.ids_bytes - 4);
    d = f.d;
    d.ids = qk_host(short_ids, f.in.ids_bytes - 4);
    CHECK(qk_moe_gate_up(cpu, &d) == QK_ERR_BUFFER && strstr(qk_last_error(cpu), "ids"), "short ids: %s",
          qk_last_error(cpu));
    free(short_ids);
    d = f.d;
    d.x.bytes--;
    CHECK(qk_moe_gate_up(cpu, &d) == QK_ERR_BUFFER, "short x accepted");
    CHECK(untouched(f.y, f.in.y_bytes), "y written on a buffer error");
    fixture_free(&f);
}

/* ids may be left empty only for a single expert (a dense layer), and then mean expert 0. */
static void test_empty_ids_mean_the_single_expert(void) {
    fixture f;
    fixture_make(&f, MOE_MATMUL, QK_TYPE_Q5_K, 6, MOE_UNIFORM);
    qk_moe_desc d = f.d;
    d.ids = (qk_mem){0};
    CHECK(qk_moe_matmul(cpu, &d) == QK_ERR_INVALID_ARG && strstr(qk_last_error(cpu), "ids"),
          "ids empty with 6 experts accepted: %s", qk_last_error(cpu));
    CHECK(untouched(f.y, f.in.y_bytes), "y written without ids");
    fixture_free(&f);

    fixture_make(&f, MOE_MATMUL, QK_TYPE_Q5_K, 1, MOE_DENSE);
    CHECK(qk_moe_matmul(cpu, &f.d) == QK_OK, "dense: %s", qk_last_error(cpu));
    moe_check(&h, &f.in, &f.w, f.y, MOE_CHECK_ALL, "dense");
    /* the same call with every id 0 gives the same bits */
    const int64_t slots = f.in.c.n_tokens * f.in.c.n_used;
    int32_t *zeros = calloc((size_t)slots, sizeof *zeros);
    float *y0 = tu_poisoned(f.in.y_bytes);
    qk_moe_desc d0 = f.d;
    d0.ids = qk_host(zeros, (size_t)slots * sizeof *zeros);
    d0.y = qk_host(y0, f.in.y_bytes);
    CHECK(qk_moe_matmul(cpu, &d0) == QK_OK && !memcmp(y0, f.y, f.in.y_bytes), "ids all 0 differ from ids empty");
    free(zeros);
    free(y0);
    fixture_free(&f);
}

/* The asynchronous forms are for CUDA contexts only. */
static void test_async_calls_refuse_a_cpu_context(void) {
    fixture f;
    fixture_make(&f, MOE_MATMUL, QK_TYPE_Q4_0, 6, MOE_UNIFORM);
    CHECK(qk_cuda_moe_matmul_async(cpu, &f.d, NULL) == QK_ERR_UNSUPPORTED, "async matmul on cpu: %s",
          qk_last_error(cpu));
    CHECK(qk_cuda_moe_gate_up_async(cpu, &f.d, NULL) == QK_ERR_UNSUPPORTED, "async gate_up on cpu");
    CHECK(qk_cuda_moe_weighted_sum_async(cpu, &f.d, NULL) == QK_ERR_UNSUPPORTED, "async weighted sum on cpu");
    CHECK(untouched(f.y, f.in.y_bytes), "y written by a refused async call");
    fixture_free(&f);
}

/* The workspace query answers for all three calls; a workspace given explicitly (a buffer) is
 * used and gives the bits of the one the call allocates itself; one too small is refused. */
static void test_workspace_query_and_explicit_workspace(void) {
    fixture f;
    fixture_make(&f, MOE_WEIGHTED_SUM, QK_TYPE_Q6_K, 6, MOE_UNIFORM);
    size_t bytes = 1;
    CHECK(qk_moe_workspace_size(cpu, &f.d, &bytes) == QK_OK, "workspace size: %s", qk_last_error(cpu));
    const size_t slot_products = (size_t)(f.in.c.n_tokens * f.in.c.n_used * f.in.c.m) * sizeof(float);
    CHECK(bytes >= slot_products, "workspace %zu bytes, the slots' products need %zu", bytes, slot_products);
    CHECK(qk_moe_workspace_size(cpu, &f.d, NULL) == QK_ERR_INVALID_ARG, "NULL bytes accepted");
    qk_moe_desc bad = f.d;
    bad.k = 100;
    CHECK(qk_moe_workspace_size(cpu, &bad, &bytes) == QK_ERR_SHAPE, "workspace size of a bad shape");

    CHECK(qk_moe_weighted_sum(cpu, &f.d) == QK_OK, "own workspace: %s", qk_last_error(cpu));
    qk_buffer *ws = NULL;
    float *y = tu_poisoned(f.in.y_bytes);
    CHECK(qk_buffer_create(cpu, slot_products + 64, &ws) == QK_OK, "buffer: %s", qk_last_error(cpu));
    qk_moe_desc d = f.d;
    d.y = qk_host(y, f.in.y_bytes);
    d.workspace = qk_buf(ws, 64, slot_products);
    CHECK(qk_moe_weighted_sum(cpu, &d) == QK_OK && !memcmp(y, f.y, f.in.y_bytes),
          "an explicit workspace changes the result: %s", qk_last_error(cpu));
    moe_check(&h, &f.in, &f.w, y, MOE_CHECK_ALL, "explicit workspace");
    memset(y, 0xA5, f.in.y_bytes);
    d.workspace = qk_buf(ws, 64, slot_products - 4);
    CHECK(qk_moe_weighted_sum(cpu, &d) == QK_ERR_BUFFER && strstr(qk_last_error(cpu), "workspace"),
          "a short workspace accepted: %s", qk_last_error(cpu));
    CHECK(untouched(y, f.in.y_bytes), "y written with a short workspace");
    qk_buffer_destroy(ws);
    free(y);
    fixture_free(&f);
}

/* Every output is one dot product of a fixed order: 1, 2 and 5 threads give the same bits. */
static void test_result_does_not_depend_on_threads(void) {
    static const moe_call calls[] = {MOE_MATMUL, MOE_GATE_UP, MOE_WEIGHTED_SUM};
    for (int i = 0; i < 3; i++) {
        const moe_case c = {calls[i], 16, 40, 512, 37, 4, QK_TYPE_BF16, i == 2, MOE_FEW};
        moe_pool pool;
        moe_weights w;
        moe_inputs in;
        moe_pool_make(&h, QK_TYPE_Q3_K, c.k, 64, &pool);
        moe_weights_make(&h, &pool, c.n_expert, c.m, 1, &w);
        moe_inputs_make(&h, &c, &in);
        float *y[3];
        static const int threads[] = {1, 2, 5};
        for (int t = 0; t < 3; t++) {
            qk_context_params p = qk_context_default_params();
            p.device = "cpu", p.n_threads = threads[t];
            qk_context *ctx = NULL;
            y[t] = tu_poisoned(in.y_bytes);
            qk_moe_desc d = moe_desc_for(&in, &w, y[t]);
            CHECK(qk_context_create(&p, &ctx) == QK_OK && moe_run(ctx, c.call, &d) == QK_OK, "%d threads: %s",
                  threads[t], qk_last_error(ctx));
            qk_context_destroy(ctx);
        }
        CHECK(!memcmp(y[0], y[1], in.y_bytes) && !memcmp(y[0], y[2], in.y_bytes),
              "case %d: the result depends on the thread count", i);
        moe_check(&h, &in, &w, y[0], MOE_CHECK_ALL, "threads");
        for (int t = 0; t < 3; t++) free(y[t]);
        moe_inputs_free(&in);
        moe_weights_free(&w);
        moe_pool_free(&pool);
    }
}

int main(void) {
    const uint64_t seed = tu_seed();
    qk_context_params p = qk_context_default_params();
    p.device = "cpu";
    if (qk_context_create(&p, &cpu) != QK_OK) return fprintf(stderr, "cpu: %s\n", qk_last_error(NULL)), 1;
    moe_harness_init(&h, cpu, cpu, seed);

    test_id_out_of_range_is_named_and_nothing_is_written();
    test_k_not_a_multiple_of_the_block_is_a_shape_error();
    test_operands_belong_to_their_call();
    test_small_operands_are_buffer_errors();
    test_empty_ids_mean_the_single_expert();
    test_async_calls_refuse_a_cpu_context();
    test_workspace_query_and_explicit_workspace();
    test_result_does_not_depend_on_threads();
    moe_run_matrix(&h, MOE_LEVEL_UNIT);

    tu_failed += h.failures;
    moe_harness_free(&h);
    qk_context_destroy(cpu);
    return tu_finish();
}
