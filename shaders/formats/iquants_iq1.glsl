/* IQ1_S and IQ1_M (FORMATS.md §6.6, §6.7, §6.10): groups of 8 values on a 2048-point grid of
 * {-1, 0, +1} patterns, shifted by ±delta, with 3-bit sub-scales. Ports of
 * kernels/cpu/iquants_block.h (decoders) and kernels/cpu/iquants_iq1_block.h (encoders,
 * which read the lattice map QK_IQ_GRID_1BIT_2048 through qk_grid_*); the contract is in
 * common.glsl. */
#ifndef QK_IQUANTS_IQ1_GLSL
#define QK_IQUANTS_IQ1_GLSL

/* IQ1_S: d, 32 low index bytes, 8 x u16 (index high bits, scale, delta sign); IQ1_M: 32 low
 * index bytes, 16 high-bit/delta bytes, 4 x u16 scales. */
#if defined(QK_TYPE_IQ1_S)
#define QK_IQ1_N 32 /* values per sub-block of the encoder's split search */
#elif defined(QK_TYPE_IQ1_M)
#define QK_IQ1_N 16
#endif

#define QK_IQ1_GROUP     8
#define QK_IQ1_GRID      5u /* QK_IQ_GRID_1BIT_2048 in qk_iq_grid_id order */
#define QK_IQ1_ZERO_CODE 0x5555u /* all eight levels 1, i.e. the pattern of zeros */
#define QK_IQ1S_QS       2u
#define QK_IQ1S_QH       34u
#define QK_IQ1M_QS       0u
#define QK_IQ1M_QH       32u
#define QK_IQ1M_SC       48u

/* ---- decoder ---------------------------------------------------------------------------- */

/* The 8 values dl * (G + delta) of grid entry idx into v[o..o+7]. iq1s_grid_gpu holds G+1 in
 * nibbles: element k < 4 in the low nibble of byte k, element k + 4 in its high nibble. Every
 * G + delta is exact, so G + (delta - 1) with G + 1 from the table is the same float. */
void qk_iq1_unpack_group(uint idx, float dl, float delta, inout float v[32], uint o) {
    const uint g = qk_tab_u32(QK_TAB_iq1s_grid_gpu, idx);
    const float dm1 = delta - 1.0;
    [[unroll]] for (uint k = 0u; k < 4u; k++) {
        v[o + k] = dl * (float((g >> (8u * k)) & 15u) + dm1);
        v[o + k + 4u] = dl * (float((g >> (8u * k + 4u)) & 15u) + dm1);
    }
}

#if defined(QK_TYPE_IQ1_S)
/* a part is one 32-value chunk */
void qk_dequant_part(uint base, uint c, out float v[32]) {
    const float d = qk_rdh(base);
    const uint h = qk_rd16(base + QK_IQ1S_QH + 2u * c);
    const uint qs = qk_rd32(base + QK_IQ1S_QS + 4u * c);
    const float dl = d * float(2u * ((h >> 12) & 7u) + 1u);
    const float delta = (h & 0x8000u) != 0u ? -QKC_IQ1S_DELTA : QKC_IQ1S_DELTA;
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint idx = ((qs >> (8u * l)) & 255u) | (((h >> (3u * l)) & 7u) << 8);
        qk_iq1_unpack_group(idx, dl, delta, v, 8u * l);
    }
}
#else
/* a part is two 16-value sub-blocks: groups 4p..4p+3 */
void qk_dequant_part(uint base, uint p, out float v[32]) {
    /* the fp16 super-scale is spread over the top nibbles of the four scale words */
    const uint sc0 = qk_rd32(base + QK_IQ1M_SC), sc1 = qk_rd32(base + QK_IQ1M_SC + 4u);
    const uint bits = ((sc0 >> 12) & 15u) | ((sc0 >> 28) << 4) | (((sc1 >> 12) & 15u) << 8) | ((sc1 >> 28) << 12);
    const float d = qk_fp16_to_f32(bits);
    const uint sw = ((p < 4u ? sc0 : sc1) >> (16u * ((p >> 1) & 1u))) & 0xffffu; /* scale word p/2 */
    const uint qs = qk_rd32(base + QK_IQ1M_QS + 4u * p);
    const uint qh = qk_rd16(base + QK_IQ1M_QH + 2u * p);
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint s = (sw >> (6u * (p & 1u) + 3u * (l >> 1))) & 7u;
        const float dl = d * float(2u * s + 1u);
        const uint nib = qh >> (4u * l);
        const uint idx = ((qs >> (8u * l)) & 255u) | ((nib & 7u) << 8);
        qk_iq1_unpack_group(idx, dl, (nib & 8u) != 0u ? -QKC_IQ1M_DELTA : QKC_IQ1M_DELTA, v, 8u * l);
    }
}
#endif

/* ---- encoder ---------------------------------------------------------------------------- */

#define QK_IQ1_FLT_MAX uintBitsToFloat(0x7f7fffffu)

/* The level values of the two shifted sets: [0] = {-1,0,1} + delta, [1] = {-1,0,1} - delta. */
void qk_iq1_levels_of(float delta, out vec3 lv[2]) {
    lv[0] = vec3(-1.0 + delta, delta, 1.0 + delta);
    lv[1] = vec3(-1.0 - delta, -delta, 1.0 - delta);
}

/* order[0..n-1] = 0..n-1 sorted by (x, index) ascending (insertion sort, stable). */
void qk_iq1_sort_by_value(in float x[QK_IQ1_N], out uint order[QK_IQ1_N]) {
    for (int i = 0; i < QK_IQ1_N; i++) {
        int j = i;
        while (j > 0 && x[order[j - 1]] > x[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = uint(i);
    }
}

/* Levels 0, 1, 2 of split (i1, i2) written to L by element index; mirror swaps 0 and 2. */
void qk_iq1_split_levels(in uint order[QK_IQ1_N], int i1, int i2, bool mirror, out uint L[QK_IQ1_N]) {
    for (int j = 0; j < QK_IQ1_N; j++) {
        uint l = j < i1 ? 0u : (j < i2 ? 1u : 2u);
        L[order[j]] = mirror ? 2u - l : l;
    }
}

/* Grid index for the 8 levels L[o..o+7]; an off-grid pattern takes the neighbour with the
 * least sum w*(scale*lv[level] - x)^2 (first on ties) and sets moved. */
uint qk_iq1_project_group(in uint L[QK_IQ1_N], in float x[QK_IQ1_N], in float w[QK_IQ1_N], int o, float scale, vec3 lv,
                          inout bool moved) {
    uint u = 0u;
    for (int k = 0; k < QK_IQ1_GROUP; k++) u |= L[o + k] << (2 * k);
    const int m = qk_grid_map(QK_IQ1_GRID, u);
    if (m >= 0) return uint(m);
    moved = true;
    const uint head = uint(-1 - m);
    const uint count = qk_grid_neighbour(QK_IQ1_GRID, head);
    uint best = qk_grid_neighbour(QK_IQ1_GRID, head + 1u);
    float best_d2 = QK_IQ1_FLT_MAX;
    for (uint j = 0u; j < count; j++) {
        const uint nb = qk_grid_neighbour(QK_IQ1_GRID, head + 1u + j);
        const uint code = qk_grid_code(QK_IQ1_GRID, nb);
        float d2 = 0.0;
        for (int k = 0; k < QK_IQ1_GROUP; k++) {
            const float diff = scale * lv[(code >> (2 * k)) & 3u] - x[o + k];
            d2 += w[o + k] * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            best = nb;
        }
    }
    return best;
}

/* sum w*q*x and sum w*q*q over the group x[o..o+7] coded as grid entry idx with level values
 * lv, each q multiplied by mul; accumulated into qx, q2 in element order. */
void qk_iq1_group_sums(uint idx, in float x[QK_IQ1_N], in float w[QK_IQ1_N], int o, vec3 lv, float mul, inout float qx,
                       inout float q2) {
    const uint code = qk_grid_code(QK_IQ1_GRID, idx);
    for (int k = 0; k < QK_IQ1_GROUP; k++) {
        const float q = lv[(code >> (2 * k)) & 3u] * mul;
        qx += w[o + k] * q * x[o + k];
        q2 += w[o + k] * q * q;
    }
}

float qk_iq1_max_abs(in float x[QK_IQ1_N]) {
    float m = abs(x[0]);
    for (int i = 1; i < QK_IQ1_N; i++) m = max(m, abs(x[i]));
    return m;
}

float qk_iq1_sigma2(in float x[QK_BLOCK_ELEMS]) {
    float s = 0.0;
    for (int i = 0; i < QK_BLOCK_ELEMS; i++) s += x[i] * x[i];
    return qk_div(2.0 * s, 256.0);
}

/* w = qw*sqrt(sigma2 + x^2) with an imatrix. Without one, or where the imatrix is zero over
 * the whole chunk, the type's plain weights: x^2 (IQ1_M) or sqrt(sigma2 + x^2) (IQ1_S). */
void qk_iq1_chunk_weights(in float x[QK_IQ1_N], in float qw[QK_IQ1_N], bool has_qw, float sigma2, bool plain_is_x2,
                          out float w[QK_IQ1_N]) {
    float sum = 0.0;
    if (has_qw) {
        for (int i = 0; i < QK_IQ1_N; i++) {
            w[i] = qw[i] * qk_sqrt(sigma2 + x[i] * x[i]);
            sum += w[i];
        }
        if (sum > 0.0) return;
    }
    for (int i = 0; i < QK_IQ1_N; i++) w[i] = plain_is_x2 ? x[i] * x[i] : qk_sqrt(sigma2 + x[i] * x[i]);
}

/* fmaxf: a NaN operand is ignored (a chunk scale is NaN where huge inputs overflow its sums). */
float qk_iq1_fmax(float a, float b) { return isnan(a) ? b : (isnan(b) ? a : max(a, b)); }

#if defined(QK_TYPE_IQ1_S)

/* The exact split search of one 32-chunk (§6.10), then grid projection and refit. */
void qk_iq1s_encode_chunk(in float x[32], in float w[32], out float scale_out, out uint neg_out, out uint index[4]) {
    const int N = 32;
    vec3 levels[2];
    qk_iq1_levels_of(QKC_IQ1S_DELTA, levels);
    uint order[32], L[32];
    float sx[33], sw[33];
    qk_iq1_sort_by_value(x, order);
    sx[0] = 0.0;
    sw[0] = 0.0;
    for (int j = 0; j < N; j++) {
        const uint i = order[j];
        sx[j + 1] = sx[j] + w[i] * x[i];
        sw[j + 1] = sw[j] + w[i];
    }
    const vec3 p = levels[0], m = levels[1];
    const vec3 p2 = vec3(p[0] * p[0], p[1] * p[1], p[2] * p[2]);
    const vec3 m2 = vec3(m[0] * m[0], m[1] * m[1], m[2] * m[2]);

    float best = -QK_IQ1_FLT_MAX, scale = 0.0;
    int bi1 = 0, bi2 = 0;
    uint bneg = 0u;
    for (int i1 = 0; i1 <= N; i1++) {
        const float x0 = sx[i1], w0 = sw[i1];
        const float xp0 = x0 * p[0], xm0 = x0 * m[0], wp0 = w0 * p2[0], wm0 = w0 * m2[0];
        for (int i2 = i1; i2 <= N; i2++) {
            const float x1 = sx[i2] - sx[i1], x2 = sx[N] - sx[i2];
            const float w1 = sw[i2] - sw[i1], w2 = sw[N] - sw[i2];
            float qx = xp0 + x1 * p[1] + x2 * p[2];
            float q2 = wp0 + w1 * p2[1] + w2 * p2[2];
            if (q2 > 0.0 && qx * qx > best * q2) {
                scale = qk_div(qx, q2);
                best = scale * qx;
                bi1 = i1;
                bi2 = i2;
                bneg = 0u;
            }
            qx = xm0 + x1 * m[1] + x2 * m[2];
            q2 = wm0 + w1 * m2[1] + w2 * m2[2];
            if (q2 > 0.0 && qx * qx > best * q2) {
                scale = qk_div(qx, q2);
                best = scale * qx;
                bi1 = i1;
                bi2 = i2;
                bneg = 1u;
            }
        }
    }
    /* a negative scale is the mirrored split with the opposite delta */
    const bool mirror = scale < 0.0;
    if (mirror) {
        scale = -scale;
        bneg ^= 1u;
    }
    qk_iq1_split_levels(order, bi1, bi2, mirror, L);

    const vec3 lv = levels[bneg];
    bool moved = false;
    for (int k = 0; k < N / QK_IQ1_GROUP; k++)
        index[k] = qk_iq1_project_group(L, x, w, QK_IQ1_GROUP * k, scale, lv, moved);
    if (moved) {
        float qx = 0.0, q2 = 0.0;
        for (int k = 0; k < N / QK_IQ1_GROUP; k++) qk_iq1_group_sums(index[k], x, w, QK_IQ1_GROUP * k, lv, 1.0, qx, q2);
        if (qx > 0.0 && q2 > 0.0) scale = qk_div(qx, q2);
    }
    scale_out = scale;
    neg_out = bneg;
}

/* One IQ1_S super-block; without an imatrix all columns weigh alike (qw = 1). */
void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    const float sigma2 = qk_iq1_sigma2(x);
    float ch_scale[8];
    uint ch_neg[8], ch_index[32];
    float max_scale = 0.0;
    for (int c = 0; c < 8; c++) {
        float xc[32], qc[32], w[32];
        for (int i = 0; i < 32; i++) {
            xc[i] = x[32 * c + i];
            qc[i] = qw[32 * c + i];
        }
        qk_iq1_chunk_weights(xc, qc, has_qw, sigma2, false, w);
        if (qk_iq1_max_abs(xc) < QKC_GROUP_MAX_EPS_IQ1_S) {
            /* scale code 0 and the all-zero pattern: decodes to +0.125*d */
            ch_scale[c] = 0.0;
            ch_neg[c] = 0u;
            const uint z = uint(qk_grid_map(QK_IQ1_GRID, QK_IQ1_ZERO_CODE));
            for (int k = 0; k < 4; k++) ch_index[4 * c + k] = z;
        } else {
            float s;
            uint neg, idx[4];
            qk_iq1s_encode_chunk(xc, w, s, neg, idx);
            ch_scale[c] = s;
            ch_neg[c] = neg;
            for (int k = 0; k < 4; k++) ch_index[4 * c + k] = idx[k];
        }
        max_scale = qk_iq1_fmax(max_scale, ch_scale[c]);
    }
    if (!(max_scale > 0.0)) return; /* d = 0: ggml's zero block (blk arrives zeroed) */

    const float d = qk_div(max_scale, 15.0);
    const float id = qk_div(1.0, d);
    qk_blk_set16(blk, 0u, qk_f32_to_fp16(d * QKC_IQ1_S_STORED_SCALE_FACTOR));
    for (int c = 0; c < 8; c++) {
        uint h = 0u;
        for (int k = 0; k < 4; k++) {
            const uint idx = ch_index[4 * c + k];
            qk_blk_set8(blk, QK_IQ1S_QS + uint(4 * c + k), idx & 255u);
            h |= (idx >> 8) << (3 * k);
        }
        const int s = qk_clampi(qk_nearest_int(0.5 * (id * ch_scale[c] - 1.0)), 0, 7);
        h |= (uint(s) << 12) | (ch_neg[c] << 15);
        qk_blk_set16(blk, QK_IQ1S_QH + uint(2 * c), h);
    }
}

#else /* IQ1_M */

/* The exact split search of one 16-value sub-block with a delta sign per 8-group: the four
 * sign combinations (+,+), (+,-), (-,+), (-,-) in that order at each split. */
void qk_iq1m_encode_chunk(in float x[16], in float w[16], out float scale_out, out uint shifts_out, out uint index[2]) {
    const int N = 16;
    vec3 levels[2];
    qk_iq1_levels_of(QKC_IQ1M_DELTA, levels);
    uint order[16], L[16];
    /* prefix sums of w*x and w over the sorted values, separately for each group */
    float sx[2][17], sw[2][17];
    qk_iq1_sort_by_value(x, order);
    sx[0][0] = 0.0;
    sw[0][0] = 0.0;
    sx[1][0] = 0.0;
    sw[1][0] = 0.0;
    for (int j = 0; j < N; j++) {
        const uint i = order[j];
        const int g = i >= uint(QK_IQ1_GROUP) ? 1 : 0, o = 1 - g;
        sx[g][j + 1] = sx[g][j] + w[i] * x[i];
        sw[g][j + 1] = sw[g][j] + w[i];
        sx[o][j + 1] = sx[o][j];
        sw[o][j + 1] = sw[o][j];
    }
    vec3 lv2[2];
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < 3; l++) lv2[s][l] = levels[s][l] * levels[s][l];

    float best = -QK_IQ1_FLT_MAX, scale = 0.0;
    int bi1 = 0, bi2 = 0;
    uint bk = 0u;
    for (int i1 = 0; i1 <= N; i1++) {
        for (int i2 = i1; i2 <= N; i2++) {
            /* per group g and sign s: qx[g][s] = sum w*q*x, q2[g][s] = sum w*q^2 */
            float qx[2][2], q2[2][2];
            for (int g = 0; g < 2; g++) {
                const float x0 = sx[g][i1], x1 = sx[g][i2] - sx[g][i1], x2 = sx[g][N] - sx[g][i2];
                const float w0 = sw[g][i1], w1 = sw[g][i2] - sw[g][i1], w2 = sw[g][N] - sw[g][i2];
                for (int s = 0; s < 2; s++) {
                    qx[g][s] = x0 * levels[s][0] + x1 * levels[s][1] + x2 * levels[s][2];
                    q2[g][s] = w0 * lv2[s][0] + w1 * lv2[s][1] + w2 * lv2[s][2];
                }
            }
            for (uint k = 0u; k < 4u; k++) {
                const float sqx = qx[0][k >> 1] + qx[1][k & 1u];
                const float sq2 = q2[0][k >> 1] + q2[1][k & 1u];
                if (sq2 > 0.0 && sqx * sqx > best * sq2) {
                    scale = qk_div(sqx, sq2);
                    best = scale * sqx;
                    bi1 = i1;
                    bi2 = i2;
                    bk = k;
                }
            }
        }
    }
    const bool mirror = scale < 0.0;
    if (mirror) {
        scale = -scale;
        bk = 3u - bk;
    }
    qk_iq1_split_levels(order, bi1, bi2, mirror, L);

    bool moved = false;
    for (int k = 0; k < N / QK_IQ1_GROUP; k++) {
        const vec3 lv = levels[k == 0 ? bk >> 1 : bk & 1u];
        index[k] = qk_iq1_project_group(L, x, w, QK_IQ1_GROUP * k, scale, lv, moved);
    }
    if (moved) {
        float qx = 0.0, q2 = 0.0;
        for (int k = 0; k < N / QK_IQ1_GROUP; k++)
            qk_iq1_group_sums(index[k], x, w, QK_IQ1_GROUP * k, levels[k == 0 ? bk >> 1 : bk & 1u], 1.0, qx, q2);
        if (qx > 0.0 && q2 > 0.0) scale = qk_div(qx, q2);
    }
    scale_out = scale;
    shifts_out = bk;
}

void qk_quant_block(in float x[QK_BLOCK_ELEMS], in float qw[QK_BLOCK_ELEMS], bool has_qw, float row_sigma2,
                    inout uint blk[QK_BLOCK_WORDS]) {
    vec3 levels[2];
    qk_iq1_levels_of(QKC_IQ1M_DELTA, levels);
    const float sigma2 = qk_iq1_sigma2(x);
    float w[QK_BLOCK_ELEMS];
    float ch_scale[16];
    uint ch_shifts[16], ch_index[32];
    float max_scale = 0.0;
    for (int c = 0; c < 16; c++) {
        float xc[16], qc[16], wc[16];
        for (int i = 0; i < 16; i++) {
            xc[i] = x[16 * c + i];
            qc[i] = qw[16 * c + i];
        }
        qk_iq1_chunk_weights(xc, qc, has_qw, sigma2, true, wc);
        for (int i = 0; i < 16; i++) w[16 * c + i] = wc[i];
        if (qk_iq1_max_abs(xc) < QKC_GROUP_MAX_EPS_IQ1_M) {
            ch_scale[c] = 0.0; /* the all-zero pattern, as in IQ1_S */
            ch_shifts[c] = 0u;
            const uint z = uint(qk_grid_map(QK_IQ1_GRID, QK_IQ1_ZERO_CODE));
            ch_index[2 * c] = z;
            ch_index[2 * c + 1] = z;
        } else {
            float s;
            uint shifts, idx[2];
            qk_iq1m_encode_chunk(xc, wc, s, shifts, idx);
            ch_scale[c] = s;
            ch_shifts[c] = shifts;
            ch_index[2 * c] = idx[0];
            ch_index[2 * c + 1] = idx[1];
        }
        max_scale = qk_iq1_fmax(max_scale, ch_scale[c]);
    }
    if (!(max_scale > 0.0)) return; /* d = 0: ggml's zero block (blk arrives zeroed) */

    uint sc[4] = uint[4](0u, 0u, 0u, 0u);
    float d = qk_div(max_scale, 15.0);
    const float id = qk_div(1.0, d);
    /* with the indices, sub-scales and deltas fixed, refit the super-scale by least squares
     * over the whole block (zero chunks included: they decode to d-multiples) */
    float qx = 0.0, q2 = 0.0;
    for (int c = 0; c < 16; c++) {
        const int s = qk_clampi(qk_nearest_int(0.5 * (id * ch_scale[c] - 1.0)), 0, 7);
        sc[c / 4] |= uint(s) << (3 * (c % 4));
        const uint i0 = ch_index[2 * c], i1 = ch_index[2 * c + 1];
        qk_blk_set8(blk, QK_IQ1M_QH + uint(c),
                    (i0 >> 8) | ((i1 >> 8) << 4) | qk_tab_u8(QK_TAB_iq1m_shift_masks, ch_shifts[c]));
        float xc[16], wc[16];
        for (int i = 0; i < 16; i++) {
            xc[i] = x[16 * c + i];
            wc[i] = w[16 * c + i];
        }
        for (int k = 0; k < 2; k++) {
            const uint idx = ch_index[2 * c + k];
            qk_blk_set8(blk, QK_IQ1M_QS + uint(2 * c + k), idx & 255u);
            const vec3 lv = levels[k == 0 ? ch_shifts[c] >> 1 : ch_shifts[c] & 1u];
            qk_iq1_group_sums(idx, xc, wc, QK_IQ1_GROUP * k, lv, float(2 * s + 1), qx, q2);
        }
    }
    if (q2 > 0.0) d = qk_div(qx, q2);
    const uint dbits = qk_f32_to_fp16(d * QKC_IQ1_M_STORED_SCALE_FACTOR);
    for (int k = 0; k < 4; k++) qk_blk_set16(blk, QK_IQ1M_SC + uint(2 * k), sc[k] | (((dbits >> (4 * k)) & 15u) << 12));
}

#endif

#endif
