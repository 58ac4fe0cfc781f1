/* Which MoE kernel runs, and the tiled path's scratch: the one table of thresholds (DESIGN.md:
 * kernels are chosen by operation, type and shape; the thresholds are data, tuned by
 * measurement, bench/results). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "moe_launch.h"
#include "qkern.h"

namespace {

/* A row per type where it differs from the first (every type). vec_max_tokens: at the exact
 * precision (and for the float weights), up to this many tokens the vector kernel runs (each slot reads its expert's
 * rows; with so few tokens per expert a tile would be mostly empty and its grouping steps cost more than they save).
 * bn64_min_tokens_per_expert: the tiled kernel takes 64 slots per tile from this mean number
 * of slots per expert the routing touches, 32 below it. tile_m: the weight rows of such a 64-slot
 * tile of one tensor, 64 or 128; 64 is taken only where two such tiles fit an SM
 * (two_narrow_tiles_fit in moe_kernels.cuh; Q6_K and Q8_0 keep 128). From the H100 run at a3b190f
 * (bench/results/2026-12-07-cuda-h100-a3b190f-forms.md), 2048 tokens: 64 rows were 0.87-1.00x
 * the time on down and 0.93-1.02x on one gate/up tensor for every fitting type but Q1_0 (1.06x on
 * gate/up, 0.99x on down). bn128_min_tokens_per_expert: from this mean, one tensor's tiles
 * (not gate/up's pairs) with rows of at least BN128_MIN_K values take 128 slots and 128 rows
 * instead: at 64 slots an expert on average, 64-slot tiles cut an expert's slots into about 1.5
 * tiles, each decoding the expert's rows again, 128-slot tiles into about one. NEVER for Q8_0,
 * whose 128-slot tile does not fit an SM (wide_tiles_fit in moe_kernels.cuh). From the H100 run
 * at 1f50882 (bench/results/2026-12-07-cuda-h100-1f50882-wide-tiles.md), 2048 tokens: on the
 * 512x2048 tensor (k = 2048) 128-slot tiles took 0.88-0.98x the time of 64-slot ones for every
 * type; on the 2048x512 one (k = 512: two steps of 256 values a tile, so each tile's fixed start
 * weighs more) 0.92-1.06x, slower on 19 of 24 types. k between 512 and 2048 is not measured. */
constexpr int NEVER = INT_MAX;
constexpr int64_t BN128_MIN_K = 1024;
/* The weight rows of a 32-slot tile of one tensor, 64 or 128 (64: two or three such tiles an SM
 * for every type; 128: two for the types whose 256 values pack into at most 160 bytes, one for
 * Q5_0, Q5_1, Q5_K, Q6_K and Q8_0). Not measured yet: 128 for every type, as before the 64-row
 * form existed; a column of the table below once a run tells the types apart. */
constexpr int TILE_M32 = 128;
struct threshold {
    int type; /* -1: the default */
    int vec_max_tokens;
    int bn64_min_tokens_per_expert;
    int tile_m;
    int bn128_min_tokens_per_expert;
};

constexpr threshold thresholds[] = {
    {-1, 8, 48, 64, 64},
    /* From the H100 run at 49ab965 (bench/results): for these types the vector kernel at 8
     * tokens, scaled to 32, beat the tiled kernel at 32 on both Qwen3.5-35B-A3B shapes (their
     * decode is the tiled kernel's bottleneck); not at 128. */
    {QK_TYPE_Q8_0, 32, 48, 64, NEVER},
    {QK_TYPE_Q2_K, 32, 48, 64, 64},
    {QK_TYPE_Q3_K, 32, 48, 64, 64},
    {QK_TYPE_Q4_K, 32, 48, 64, 64},
    {QK_TYPE_Q6_K, 32, 48, 64, 64},
    {QK_TYPE_IQ2_XS, 32, 48, 64, 64},
    {QK_TYPE_IQ2_S, 32, 48, 64, 64},
    {QK_TYPE_IQ3_XXS, 32, 48, 64, 64},
    {QK_TYPE_IQ3_S, 32, 48, 64, 64},
    {QK_TYPE_IQ1_S, 32, 48, 64, 64},
    {QK_TYPE_IQ1_M, 32, 48, 64, 64},
    {QK_TYPE_IQ4_XS, 32, 48, 64, 64},
    {QK_TYPE_TQ1_0, 32, 48, 64, 64},
    {QK_TYPE_TQ2_0, 32, 48, 64, 64},
    /* The new types as their nearest measured kin: Q1_0 and Q2_0 as TQ1_0/TQ2_0 (1-2 bits a
     * weight, so the vector path's rereads of the rows stay cheap longer), NVFP4 as MXFP4 (the
     * default: the same E2M1 decode at 4.5 bits, the scale a byte per 16 values). Not measured. */
    {QK_TYPE_Q1_0, 32, 48, 128, 64},
    {QK_TYPE_Q2_0, 32, 48, 64, 64},
    {QK_TYPE_NVFP4, 8, 48, 64, 64},
    /* Float weights (a dense layer an engine did not quantize) take the vector path at every
     * size: a tile of their 256-value steps would not fit in shared memory double-buffered,
     * and cuBLAS is the better tool for them anyway. */
    {QK_TYPE_F32, INT_MAX, 0, 64, NEVER},
    {QK_TYPE_F16, INT_MAX, 0, 64, NEVER},
    {QK_TYPE_BF16, INT_MAX, 0, 64, NEVER},
};

/* The dot path's (8-bit activations: the default precision, quantized weights): up to max_tokens
 * tokens, the tiled kernel above. From the H100 run at 6334de0 (bench/results/2026-12-06-cuda-h100-*):
 * on both Qwen3.5-35B-A3B shapes and every type the dot path was the faster at 32 tokens (by
 * 1.3x to 3x) and the tiled kernel at 128; interpolated, they cross between 52 and 81 tokens. */
struct dot_threshold {
    int type; /* -1: the default */
    int max_tokens;
    int warps;            /* a CTA's */
    int rows4_min_tokens; /* a lane group takes 4 rows from this many tokens, 2 below */
};

/* rows4_min_tokens, from the H100 run at a3b190f (bench/results/2026-12-07-cuda-h100-a3b190f-forms.md,
 * both Qwen3.5-35B-A3B shapes, 1, 8 and 32 tokens): 4 rows a lane group were 1.00-1.25x the time
 * of 2 at 1 token on gate/up for every type (half as many CTAs), and from 8 tokens 0.85-0.97x on
 * down for the I-quants, the ternary and the FP4 types and Q1_0/Q2_0 (0.89-1.09x on gate/up); for
 * the legacy and K-quants 4 rows lost (up to 1.20x, Q8_0) or were even. IQ2_XXS gained only at 32
 * tokens, IQ2_XS and IQ2_S nowhere. */
constexpr dot_threshold dot_thresholds[] = {
    {-1, 64, 4, NEVER},         {QK_TYPE_IQ2_XXS, 64, 4, 32}, {QK_TYPE_IQ3_XXS, 64, 4, 8}, {QK_TYPE_IQ1_S, 64, 4, 8},
    {QK_TYPE_IQ4_NL, 64, 4, 8}, {QK_TYPE_IQ3_S, 64, 4, 8},    {QK_TYPE_IQ4_XS, 64, 4, 8},  {QK_TYPE_IQ1_M, 64, 4, 8},
    {QK_TYPE_TQ1_0, 64, 4, 8},  {QK_TYPE_TQ2_0, 64, 4, 8},    {QK_TYPE_MXFP4, 64, 4, 8},   {QK_TYPE_NVFP4, 64, 4, 8},
    {QK_TYPE_Q1_0, 64, 4, 8},   {QK_TYPE_Q2_0, 64, 4, 8},
};

template <class R, size_t N> const R &row_of(const R (&table)[N], int type) {
    for (const R &t : table)
        if (t.type == type) return t;
    return table[0];
}

size_t align_up(size_t n) { return (n + 255) & ~(size_t)255; }

bool plain_type(int t) { return t == QK_TYPE_F32 || t == QK_TYPE_F16 || t == QK_TYPE_BF16; }

/* QK_MOE_PATH=vec|dot|tiled forces a path where the type and precision allow it: for measuring
 * the thresholds above (bench/, scripts/gpu_peer.sh's QK_PEER_PATHS), never needed for correct
 * results. Read once. */
int forced_path() {
    static const int f = [] {
        const char *v = getenv("QK_MOE_PATH");
        if (!v) return -1;
        if (!strcmp(v, "vec")) return (int)QK_CUDA_MOE_VEC;
        if (!strcmp(v, "dot")) return (int)QK_CUDA_MOE_DOT;
        if (!strcmp(v, "tiled")) return (int)QK_CUDA_MOE_TILED;
        return -1;
    }();
    return f;
}

/* A measuring override from the environment (scripts/gpu_peer.sh's QK_PEER_PATHS entries): the
 * integer in `name` where it lies in [lo, hi] (and is a power of two where pow2 says so), else 0.
 * Never needed for correct results; each caller reads it once. */
int env_override(const char *name, int lo, int hi, bool pow2) {
    const char *v = getenv(name);
    const int n = v ? atoi(v) : 0;
    return n >= lo && n <= hi && (!pow2 || !(n & (n - 1))) ? n : 0;
}

/* The measuring overrides from the environment, read once (0: unset or out of range; entries of
 * scripts/gpu_peer.sh's QK_PEER_PATHS): QK_MOE_DOT_LANES (dot@N: lanes a row, a power of two up
 * to 32), QK_MOE_DOT_WARPS (dot:N: warps a CTA, 1 to 8), QK_MOE_DOT_ROWS (dot#R: rows a lane
 * group, 2 or 4, at every token count), QK_MOE_TILE_M (tiled%M: rows a 32- or 64-slot tile of one
 * tensor, 64 or 128), QK_MOE_TILE_N (tiled^N: slots a tile, 32, 64 or 128; 128 only where the
 * table would take it at some size: one tensor, a type whose wide tile fits, long rows; 64
 * elsewhere). Each replaces the table's choice. */
struct overrides {
    int dot_lanes, dot_warps, dot_rows, tile_m, tile_n;
};
const overrides &forced() {
    static const overrides o = {
        env_override("QK_MOE_DOT_LANES", 1, 32, true), env_override("QK_MOE_DOT_WARPS", 1, 8, false),
        env_override("QK_MOE_DOT_ROWS", 2, 4, true),   env_override("QK_MOE_TILE_M", 64, 128, true),
        env_override("QK_MOE_TILE_N", 32, 128, true),
    };
    return o;
}

/* The dot path's lanes per row: the row's 32-value parts strided over them, as many as leave
 * each lane at least two parts (at most 32). */
int dot_lanes(int64_t k) {
    if (forced().dot_lanes) return forced().dot_lanes;
    int l = 1;
    while (l < 32 && 2 * l <= k / 32) l *= 2;
    return l;
}

} // namespace

/* The path and the layout do not depend on the kind; the weighted sum only adds its per-slot
 * products at the end, so its size is the most any kind needs (bytes_any). */
extern "C" qk_cuda_moe_plan qk_cuda_moe_plan_for(const qk_cuda_moe_args *a) {
    qk_cuda_moe_plan p = {};
    const threshold &t = row_of(thresholds, a->type);
    const dot_threshold &dt = row_of(dot_thresholds, a->type);
    const int64_t slots = a->n_tokens * a->n_used;
    const size_t partial = align_up((size_t)(slots * a->m) * sizeof(float));
    const bool plain = plain_type(a->type), dot_ok = !plain && !a->exact;
    int path = dot_ok ? (a->n_tokens <= (int64_t)dt.max_tokens ? QK_CUDA_MOE_DOT : QK_CUDA_MOE_TILED)
                      : (a->n_tokens <= (int64_t)t.vec_max_tokens ? QK_CUDA_MOE_VEC : QK_CUDA_MOE_TILED);
    const int f = forced_path();
    if (f == QK_CUDA_MOE_VEC || (f == QK_CUDA_MOE_DOT && dot_ok) || (f == QK_CUDA_MOE_TILED && !plain)) path = f;
    if (path == QK_CUDA_MOE_VEC) { /* scratch: the weighted sum's per-slot products */
        p.path = QK_CUDA_MOE_VEC;
        p.partial = 0;
        p.bytes_any = partial;
        if (a->kind == QK_CUDA_MOE_WEIGHTED_SUM) p.bytes = partial;
        return p;
    }
    const int64_t x_rows = a->x_per_slot ? slots : a->n_tokens;
    if (path == QK_CUDA_MOE_DOT) {
        /* the 8-bit activations, the weighted sum's per-slot products */
        size_t at = 0;
        p.path = QK_CUDA_MOE_DOT;
        p.lanes = dot_lanes(a->k);
        p.dot_warps = forced().dot_warps ? forced().dot_warps : dt.warps;
        p.dot_rows = forced().dot_rows ? forced().dot_rows : a->n_tokens >= (int64_t)dt.rows4_min_tokens ? 4 : 2;
        p.xq = at, at += align_up((size_t)(x_rows * a->k));
        p.xm = at, at += align_up((size_t)(x_rows * a->k / 32) * 4 * sizeof(float));
        p.partial = at;
        p.bytes_any = at + partial;
        p.bytes = a->kind == QK_CUDA_MOE_WEIGHTED_SUM ? at + partial : at;
        return p;
    }
    p.path = QK_CUDA_MOE_TILED;
    const int64_t touched = a->n_expert < slots ? a->n_expert : slots;
    const bool wide_ok =
        a->kind != QK_CUDA_MOE_GATE_UP && t.bn128_min_tokens_per_expert != NEVER && a->k >= BN128_MIN_K;
    p.bn = wide_ok && slots >= (int64_t)t.bn128_min_tokens_per_expert * touched ? 128
           : slots >= (int64_t)t.bn64_min_tokens_per_expert * touched           ? 64
                                                                                : 32;
    if (forced().tile_n) p.bn = forced().tile_n == 128 && !wide_ok ? 64 : forced().tile_n;
    p.tile_m = forced().tile_m ? forced().tile_m : p.bn == 32 ? TILE_M32 : t.tile_m;
    const int64_t tiles = touched + slots / p.bn + 1;
    p.max_tiles = tiles > (1 << 30) ? (1 << 30) : (int)tiles;
    size_t at = 0;
    p.counts = at, at += align_up(2 * (size_t)a->n_expert * sizeof(int));
    p.tiles = at, at += align_up((size_t)p.max_tiles * sizeof(int4));
    p.n_tiles = at, at += align_up(sizeof(int));
    p.sorted = at, at += align_up((size_t)slots * sizeof(int));
    p.xh = at, at += align_up((size_t)(x_rows * a->k) * sizeof(__half));
    p.partial = at;
    p.bytes_any = at + partial;
    p.bytes = a->kind == QK_CUDA_MOE_WEIGHTED_SUM ? at + partial : at;
    return p;
}
