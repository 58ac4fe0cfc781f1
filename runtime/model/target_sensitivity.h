/* A size target's per-tensor sensitivity (issue 17 item 2): how much of a unit of a tensor's
 * output error reaches the residual stream, its "gain to the residual", from the model's own
 * weights and the imatrix. The error matrix is this factor times the tensor's own expected
 * squared output error (model_quantize.c, measure_matrix), so errors of tensors whose outputs are
 * amplified or damped downstream are weighed as such. Pure logic: the weights come through a
 * callback, no files, no devices.
 *
 * The factor, per tensor (names as llama.cpp's, "blk.N.<kind>.weight"):
 *   - writes into the residual (attn_output, ffn_down*, ssm_out, ...) and everything not named
 *     below: 1;
 *   - ffn_up / ffn_gate (and _exps, _shexp): sum_j m_j c_j / sum_j E[y_j^2], with c_j the squared
 *     norm of the same block's ffn_down column j, m_j its imatrix mean square of input j (the
 *     activation silu(g_j) up_j), y_j the tensor's own output j. E[silu(g_j)^2] = m_j / E[up_j^2]
 *     (gate and up independent), so an error of up's row j reaches the residual with gain
 *     m_j c_j / E[up_j^2]; a row's quantization error scales with its output energy, and
 *     weighting the rows so gives the ratio. For the gate E[silu'(g)^2] ~ E[silu(g)^2] / E[g^2]
 *     (exact for ReLU with a symmetric pre-activation, close for SiLU: the test measures it).
 *     Expert stacks sum numerator and denominator over the experts that were routed;
 *   - attn_v: sum_j m_j c_j / sum_r E[v_r^2], m and c those of attn_output's input columns. The
 *     attention average shrinks an error of v as it shrinks v itself, which m measures; every
 *     query head of a kv group adds its own copy through its own columns, so no division by the
 *     group size (measured: with it the prediction is half the Monte Carlo's). attn_q and attn_k
 *     keep 1: they reach the output through the attention pattern, which has no closed form
 *     here; giving them attn_v's factor (tried) raised SmolLM2's KL divergence at every size
 *     (bench/results/2026-12-07-target-sensitivity-kld-smollm2.md). A fused attn_qkv is measured
 *     on its v rows;
 *   - token_embd without an imatrix entry: 1 / rows, as one row per token is read; 1 where the
 *     model has no output tensor (tied embeddings: it is the output projection too, every row read
 *     for each token's logits; measured: 1 / rows gave it MXFP4 and SmolLM2 a KL divergence of
 *     0.40 against Q4_K_M's 0.038) or where it has an entry.
 * E[y_r^2] = sum_i W_ri^2 (w_i - a_i^2) + (sum_i W_ri a_i)^2 (columns independent; w, a the
 * tensor's imatrix mean square and mean, 1 and 0 without an entry), the same model of the input
 * as the tensor's error. Where a factor cannot be formed (the partner tensor or its imatrix entry
 * missing, shapes that do not pair, a zero or non-finite sum) it is 1, and why[i] says why. */
#ifndef QK_TARGET_SENSITIVITY_H
#define QK_TARGET_SENSITIVITY_H

#include <stddef.h>
#include <stdint.h>

#include "qkern.h"

/* One tensor of the model, as the factors see it. */
typedef struct qk_sens_tensor {
    const char *name;
    int64_t ne[4];      /* ne[0] input columns, ne[1] rows, ne[2] experts */
    const float *w, *a; /* imatrix mean squares and means per input column (expert e's at
                           e * ne[0]), NULL where the tensor has no entry / the entry no means */
} qk_sens_tensor;

/* Reads rows [row, row + n_rows) of tensor i (rows count across experts) as floats into out.
 * A status other than QK_OK stops qk_target_sensitivities, which returns it. */
typedef qk_status (*qk_sens_read_fn)(void *user, size_t i, int64_t row, int64_t n_rows, float *out);

/* The factor of every tensor i with want[i] into sens[i] (others untouched) and, where it fell
 * back to 1, the reason into why[i] (a static string; NULL where the factor was formed or is 1 by
 * its rule). Each tensor the factors need is read once, in chunks of at most `chunk_floats`
 * floats (whole rows); of a large one only evenly spaced rows of each expert (4096 rows in all,
 * at least 8 of each expert), their sums scaled to the whole. n_head and n_head_kv (GGUF <arch>.attention.head_count,
 * _kv) split a fused attn_qkv; 0 where unknown. Fails with QK_ERR_OUT_OF_MEMORY or read's status. */
qk_status qk_target_sensitivities(const qk_sens_tensor *t, size_t n, const unsigned char *want, int64_t n_head,
                                  int64_t n_head_kv, qk_sens_read_fn read, void *user, size_t chunk_floats,
                                  double *sens, const char **why);

/* sum over rows r of E[(W_r . z)^2] = sum_i W_ri^2 max(w_i - a_i^2, 0) + (sum_i W_ri a_i)^2: the
 * expected output energy of `rows` rows of `cols` weights for inputs z with per-column mean
 * square w (NULL: 1) and mean a (NULL: 0). With a = NULL and w = m it is also sum_j m_j c_j,
 * c_j the squared norm of column j: a factor's numerator. */
double qk_sens_energy(const float *W, int64_t rows, int64_t cols, const float *w, const float *a);

/* 1 if other tensors' factors read this tensor's weights and imatrix entry (ffn_down*,
 * attn_output, attn_v): the state file's key must cover them even where pinned. */
int qk_sens_is_partner(const char *name);

/* 1 if the factor of tensor `name` may read tensor `other`: a partner of the same block (blk.N).
 * A superset of what the rules read, for keying a tensor's errors by all they depend on. */
int qk_sens_reads(const char *name, const char *other);

#endif
