/* The format table: every type qkern knows, one row each, and the only place that says so.
 *
 * qkern.h builds its qk_type enum from it; the library derives from it its format traits, the
 * CPU and CUDA dispatch (a row whose backend column says Y must have that backend's kernels, or
 * the library does not link), the Vulkan shader variants and their GLSL defines
 * (scripts/gen_formats.py reads this file), and the test and benchmark type lists.
 *
 * Columns:
 *   NAME    ggml's name; the enum constant is QK_TYPE_<NAME>
 *   codec   the lower-case stem of the kernels' names (qk_cpu_quant_<codec>, ...) and of the
 *           block layout's byte count QK_BYTES_<codec>, which the kernels check against `bytes`
 *   id      ggml's type id, as GGUF files store it
 *   elems   values per block (1 for the float types)
 *   bytes   bytes per block
 *   family  FLOAT, LEGACY, KQUANT, IQUANT, FP4 or TERNARY
 *   source  the family's code: kernels/cpu/<source>_block.h, shaders/formats/<source>.glsl
 *   imatrix NONE (ignored), USES (weights its search when given) or NEEDS (ggml refuses without)
 *   cpu, cuda, vulkan
 *           Y where that backend implements quantize, dequantize and the MoE matmul of the type
 *
 * Adding a format: its row here, its block code (kernels/cpu/<source>_block.h, shared with
 * CUDA, and the row functions and CUDA traits of its family), its 8-bit part decoder
 * (kernels/cuda/dot_i8_<family>.h: the MoE dot path; without it tests/test_dot_i8.c does not
 * compile), its GLSL code (shaders/formats/<source>.glsl) and its golden vectors
 * (tests/data/golden). Nothing else.
 * Keep one row per line: the shader generator reads the lines. */
#ifndef QKERN_FORMATS_H
#define QKERN_FORMATS_H

/* clang-format off */
#define QK_FORMATS(X) \
/* NAME     codec    id  elems bytes family   source        imatrix cpu cuda vulkan */ \
  X(F32,     f32,      0,    1,   4, FLOAT,   floats,       NONE,   Y,  Y,   Y) \
  X(F16,     f16,      1,    1,   2, FLOAT,   floats,       NONE,   Y,  Y,   Y) \
  X(Q4_0,    q4_0,     2,   32,  18, LEGACY,  legacy,       USES,   Y,  Y,   Y) \
  X(Q4_1,    q4_1,     3,   32,  20, LEGACY,  legacy,       USES,   Y,  Y,   Y) \
  X(Q5_0,    q5_0,     6,   32,  22, LEGACY,  legacy,       USES,   Y,  Y,   Y) \
  X(Q5_1,    q5_1,     7,   32,  24, LEGACY,  legacy,       USES,   Y,  Y,   Y) \
  X(Q8_0,    q8_0,     8,   32,  34, LEGACY,  legacy,       NONE,   Y,  Y,   Y) \
  X(Q2_K,    q2_k,    10,  256,  84, KQUANT,  kquants,      USES,   Y,  Y,   Y) \
  X(Q3_K,    q3_k,    11,  256, 110, KQUANT,  kquants,      USES,   Y,  Y,   Y) \
  X(Q4_K,    q4_k,    12,  256, 144, KQUANT,  kquants,      USES,   Y,  Y,   Y) \
  X(Q5_K,    q5_k,    13,  256, 176, KQUANT,  kquants,      USES,   Y,  Y,   Y) \
  X(Q6_K,    q6_k,    14,  256, 210, KQUANT,  kquants,      USES,   Y,  Y,   Y) \
  X(IQ2_XXS, iq2_xxs, 16,  256,  66, IQUANT,  iquants_grid, NEEDS,  Y,  Y,   Y) \
  X(IQ2_XS,  iq2_xs,  17,  256,  74, IQUANT,  iquants_grid, NEEDS,  Y,  Y,   Y) \
  X(IQ3_XXS, iq3_xxs, 18,  256,  98, IQUANT,  iquants_grid, USES,   Y,  Y,   Y) \
  X(IQ1_S,   iq1_s,   19,  256,  50, IQUANT,  iquants_iq1,  NEEDS,  Y,  Y,   Y) \
  X(IQ4_NL,  iq4_nl,  20,   32,  18, IQUANT,  iquants_iq4,  USES,   Y,  Y,   Y) \
  X(IQ3_S,   iq3_s,   21,  256, 110, IQUANT,  iquants_grid, USES,   Y,  Y,   Y) \
  X(IQ2_S,   iq2_s,   22,  256,  82, IQUANT,  iquants_grid, USES,   Y,  Y,   Y) \
  X(IQ4_XS,  iq4_xs,  23,  256, 136, IQUANT,  iquants_iq4,  USES,   Y,  Y,   Y) \
  X(IQ1_M,   iq1_m,   29,  256,  56, IQUANT,  iquants_iq1,  USES,   Y,  Y,   Y) \
  X(BF16,    bf16,    30,    1,   2, FLOAT,   floats,       NONE,   Y,  Y,   Y) \
  X(TQ1_0,   tq1_0,   34,  256,  54, TERNARY, ternary,      NONE,   Y,  Y,   Y) \
  X(TQ2_0,   tq2_0,   35,  256,  66, TERNARY, ternary,      NONE,   Y,  Y,   Y) \
  X(MXFP4,   mxfp4,   39,   32,  17, FP4,     fp4,          NONE,   Y,  Y,   Y) \
  X(NVFP4,   nvfp4,   40,   64,  36, FP4,     fp4,          NONE,   Y,  Y,   Y) \
  X(Q1_0,    q1_0,    41,  128,  18, TERNARY, ternary,      NONE,   Y,  Y,   Y) \
  X(Q2_0,    q2_0,    42,   64,  18, TERNARY, ternary,      NONE,   Y,  Y,   Y)
/* clang-format on */

/* Ids are below this; not every id below it is a qkern type. */
#define QK_FORMAT_ID_LIMIT 43

/* QK_IF_<Y|N>(code): code where a backend column says Y, nothing where it says N. */
#define QK_IF_Y(...) __VA_ARGS__
#define QK_IF_N(...)

#endif
