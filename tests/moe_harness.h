/* The MoE matmul (qk_moe_matmul, qk_moe_gate_up, qk_moe_weighted_sum) checked against a float64
 * reference: dequantized weights times the exactly widened inputs, on fresh random data with the
 * outputs poisoned. One case matrix serves the CPU unit test and the GPU test; the pieces it is
 * made of (weights, inputs, the check) also serve tests that call the API in other ways.
 *
 * Weights are realistic blocks: random Gaussian rows (with a few outliers) quantized by
 * qk_quantize on a CPU context, with a random imatrix where the type reads one. An expert stack
 * at model shape (256 x 512 x 2048) is too large to quantize row by row in a test, so every
 * tensor is assembled from a pool of quantized rows: row r of expert e is pool row
 * map(e, r), a hash, so experts and rows differ and a kernel that mixes them up is caught. The
 * reference dequantizes only the pool. */
#ifndef QK_MOE_HARNESS_H
#define QK_MOE_HARNESS_H

#include "qkern.h"
#include "test_util.h"

/* The relative L2 error every path must meet (DESIGN.md: activations not quantized to 8 bits). */
#define MOE_TOLERANCE 2e-3
/* ... and the paths that quantize the activations to 8 bits (CUDA's dot path, at
 * QK_MOE_PRECISION_DEFAULT, for quantized weights). The error is the activations' rounding, the
 * same for every type: 0.5-0.9% typically, 1.06% the worst case of the matrix on an H100
 * (6334de0). ggml's own test holds its 8-bit path to a normalized squared error of 5e-4, a
 * relative L2 error of 2.2e-2. Over few outputs the ratio of two sums of few squares scatters
 * past any such bound by chance (1.84% over the 6 outputs of an m = 1, k = 128 case on an H200,
 * a27a357), so it holds from MOE_8BIT_MIN_OUTPUTS checked outputs. Those must also see enough
 * roundings: every output of a token shares its activations' rounding, so 84 outputs of 3 tokens
 * with k = 96, 9 rounded blocks of 32 values, scattered to 1.78% (IQ4_NL gate/up, H100, dd0db60);
 * the bound holds from MOE_8BIT_MIN_BLOCKS blocks (activation rows times k / 32). At every size
 * the output must also equal, within MOE_TOLERANCE, the reference of the activations rounded as
 * the path rounds them (x8 below), or the exact one. */
#define MOE_TOLERANCE_8BIT   1.5e-2
#define MOE_8BIT_MIN_OUTPUTS 64
#define MOE_8BIT_MIN_BLOCKS  64
/* Multiply-adds of float64 reference per checked call (moe_check): the matrix's, and everything. */
#define MOE_CHECK_BUDGET ((int64_t)1 << 24)
#define MOE_CHECK_ALL    INT64_MAX

typedef enum moe_call { MOE_MATMUL, MOE_GATE_UP, MOE_WEIGHTED_SUM } moe_call;

typedef enum moe_routing {
    MOE_UNIFORM, /* each token picks n_used distinct experts at random (repeats once n_used > n_expert) */
    MOE_FEW,     /* tokens pick among a few experts: most experts get no tokens */
    MOE_ONE,     /* every slot of every token on one expert */
    MOE_DENSE,   /* n_expert = 1 and ids left empty: a shared expert or a dense layer */
} moe_routing;

typedef struct moe_case {
    moe_call call;
    int64_t n_expert, m, k; /* k a multiple of the weight type's block size */
    int64_t n_tokens, n_used;
    qk_type x_type; /* F32, F16 or BF16 */
    int x_per_slot;
    moe_routing routing;
} moe_case;

/* The state every check shares: the contexts, the seed (printed with every failure), the
 * random stream, and the count of failed checks. */
typedef struct moe_harness {
    qk_context *dev; /* the context under test */
    qk_context *cpu; /* quantizes the weights and dequantizes the reference's rows */
    uint64_t seed;
    tu_rng rng;
    int failures;
    qk_moe_precision precision; /* of every call the matrix makes (moe_harness_init: DEFAULT) */
    double tolerance_quantized; /* the bound for quantized weights at DEFAULT precision: MOE_TOLERANCE
                                   unless the device quantizes activations (MOE_TOLERANCE_8BIT) */
    float *gauss;               /* a table of standard normal values, drawn from quickly for large inputs */
} moe_harness;

/* Both contexts may be the same CPU context. The seed is the caller's (tu_seed()). */
void moe_harness_init(moe_harness *h, qk_context *dev, qk_context *cpu, uint64_t seed);
void moe_harness_free(moe_harness *h);

/* Quantized rows of one type and row length, and their dequantized values. */
typedef struct moe_pool {
    qk_type type;
    int64_t k, rows;
    size_t row_bytes;
    uint8_t *blocks; /* rows * row_bytes */
    float *values;   /* rows * k: the blocks dequantized by the CPU backend */
} moe_pool;

/* 0 and a message (counted as a failure) if quantizing or dequantizing fails. */
int moe_pool_make(moe_harness *h, qk_type type, int64_t k, int64_t rows, moe_pool *pool);
void moe_pool_free(moe_pool *pool);

/* W (the gate, for gate_up) and W_up of shape [n_expert][m][k], in host memory. */
typedef struct moe_weights {
    const moe_pool *pool;
    int64_t n_expert, m;
    size_t bytes;            /* of each of w and w_up */
    uint8_t *w, *w_up;       /* host blocks, or NULL */
    int32_t *map_w, *map_up; /* the pool row of each (expert, row) of w and w_up */
} moe_weights;

/* The maps, and with host_blocks the blocks in host memory (tensors at model shape are
 * hundreds of megabytes: the matrix uploads them instead). */
int moe_weights_make(moe_harness *h, const moe_pool *pool, int64_t n_expert, int64_t m, int host_blocks,
                     moe_weights *w);
/* A buffer on h->dev holding w at offset 0 and w_up at offset w->bytes, assembled in chunks
 * from the pool; NULL (a failure counted) if that fails. */
qk_buffer *moe_weights_upload(moe_harness *h, const moe_weights *w);
void moe_weights_free(moe_weights *w);

/* Activations, ids and router weights of one case, in host memory. */
typedef struct moe_inputs {
    moe_case c;
    void *x; /* c.x_type values */
    float *x32;
    float *x8; /* x32 as the 8-bit paths round it: per 32 values, d = max |x| / 127, d * round(x * 127 / max |x|) */
    size_t x_bytes;
    int32_t *ids; /* NULL for MOE_DENSE */
    size_t ids_bytes;
    float *router; /* MOE_WEIGHTED_SUM only */
    size_t router_bytes;
    size_t y_bytes;
} moe_inputs;

void moe_inputs_make(moe_harness *h, const moe_case *c, moe_inputs *in);
void moe_inputs_free(moe_inputs *in);

/* The desc of a case with every operand in host memory, w and w_up from the weights' host blocks
 * (replace them, and any other operand, to run from elsewhere). */
qk_moe_desc moe_desc_for(const moe_inputs *in, const moe_weights *w, float *y);
/* The synchronous entry point of c.call. */
qk_status moe_run(qk_context *ctx, moe_call call, const qk_moe_desc *d);

/* Checks y (poisoned before the call) against the float64 reference: no element still holds the
 * poison, every element is finite, and ||y - ref|| / ||ref|| over the checked outputs is at most
 * MOE_TOLERANCE (for quantized weights at DEFAULT precision on a device that rounds the
 * activations to 8 bits: the bounds at MOE_TOLERANCE_8BIT). Outputs are checked in full up to
 * `budget` multiply-adds, else every output row (slot, or token for the weighted sum) at a few random rows. A slot
 * whose id is outside [0, n_expert) must be NaN (its token, for the weighted sum), as the asynchronous calls promise.
 * Failures name type, case, token, slot and row. Returns the relative error. */
double moe_check(moe_harness *h, const moe_inputs *in, const moe_weights *w, const float *y, int64_t budget,
                 const char *label);

/* Describes a case in a line ("gate_up E=256 m=512 k=2048 T=7 U=8 x=F16 x_per_slot=0 uniform"). */
void moe_case_name(const moe_case *c, char *out, size_t n);

typedef enum moe_level {
    MOE_LEVEL_UNIT, /* small and ragged shapes, n_tokens up to 64; one model shape for a few types */
    MOE_LEVEL_GPU,  /* adds the model shapes at a few token counts (one of each path) */
    MOE_LEVEL_FULL, /* every token count of the issue at the model shapes (QK_TEST_LARGE=1) */
} moe_level;

/* Runs the case matrix on every type on h->dev, printing per type the worst relative error at
 * each n_tokens (few tokens per expert take the vector path, many the tiled one). A float weight
 * type the device has no kernel for is reported and skipped; a quantized one is a failure. */
void moe_run_matrix(moe_harness *h, moe_level level);

#endif
