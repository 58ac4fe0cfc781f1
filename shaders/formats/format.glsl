/* The format code of the variant being compiled: QK_TYPE_<NAME> picks its family's file
 * (one file per family, as kernels/cpu; the contract is in common.glsl). */
#if defined(QK_TYPE_Q4_0) || defined(QK_TYPE_Q4_1) || defined(QK_TYPE_Q5_0) || defined(QK_TYPE_Q5_1) || defined(QK_TYPE_Q8_0)
#include "legacy.glsl"
#elif defined(QK_TYPE_Q2_K) || defined(QK_TYPE_Q3_K) || defined(QK_TYPE_Q4_K) || defined(QK_TYPE_Q5_K) || defined(QK_TYPE_Q6_K)
#include "kquants.glsl"
#elif defined(QK_TYPE_IQ2_XXS) || defined(QK_TYPE_IQ2_XS) || defined(QK_TYPE_IQ2_S) || defined(QK_TYPE_IQ3_XXS) || defined(QK_TYPE_IQ3_S)
#include "iquants_grid.glsl"
#elif defined(QK_TYPE_IQ1_S) || defined(QK_TYPE_IQ1_M)
#include "iquants_iq1.glsl"
#elif defined(QK_TYPE_IQ4_NL) || defined(QK_TYPE_IQ4_XS)
#include "iquants_iq4.glsl"
#elif defined(QK_TYPE_MXFP4)
#include "mxfp4.glsl"
#elif defined(QK_TYPE_TQ1_0) || defined(QK_TYPE_TQ2_0)
#include "ternary.glsl"
#elif defined(QK_TYPE_F32) || defined(QK_TYPE_F16) || defined(QK_TYPE_BF16)
#include "floats.glsl" /* decode only: the MoE shaders' float weights */
#else
#error "format.glsl: define one QK_TYPE_<NAME> of a quantized or float type"
#endif
