#include "formats.h"
#include "internal.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "qk_tables.h"

#define F QK_FAMILY_FLOAT
#define L QK_FAMILY_LEGACY
#define K QK_FAMILY_KQUANT
#define I QK_FAMILY_IQUANT
#define X QK_FAMILY_MXFP4
#define T QK_FAMILY_TERNARY

/* Block sizes come from the generated format constants; byte counts are ggml's packed
 * struct sizes (FORMATS.md §2), checked against the golden files by the tests. */
static const qk_format table[] = {
    /* type             name       elems             bytes fam imat needs */
    {QK_TYPE_F32, "F32", 1, 4, F, 0, 0},
    {QK_TYPE_F16, "F16", 1, 2, F, 0, 0},
    {QK_TYPE_Q4_0, "Q4_0", QKC_QK4_0, 18, L, 1, 0},
    {QK_TYPE_Q4_1, "Q4_1", QKC_QK4_1, 20, L, 1, 0},
    {QK_TYPE_Q5_0, "Q5_0", QKC_QK5_0, 22, L, 1, 0},
    {QK_TYPE_Q5_1, "Q5_1", QKC_QK5_1, 24, L, 1, 0},
    {QK_TYPE_Q8_0, "Q8_0", QKC_QK8_0, 34, L, 0, 0},
    {QK_TYPE_Q2_K, "Q2_K", QKC_QK_K, 84, K, 1, 0},
    {QK_TYPE_Q3_K, "Q3_K", QKC_QK_K, 110, K, 1, 0},
    {QK_TYPE_Q4_K, "Q4_K", QKC_QK_K, 144, K, 1, 0},
    {QK_TYPE_Q5_K, "Q5_K", QKC_QK_K, 176, K, 1, 0},
    {QK_TYPE_Q6_K, "Q6_K", QKC_QK_K, 210, K, 1, 0},
    {QK_TYPE_IQ2_XXS, "IQ2_XXS", QKC_QK_K, 66, I, 1, 1},
    {QK_TYPE_IQ2_XS, "IQ2_XS", QKC_QK_K, 74, I, 1, 1},
    {QK_TYPE_IQ3_XXS, "IQ3_XXS", QKC_QK_K, 98, I, 1, 0},
    {QK_TYPE_IQ1_S, "IQ1_S", QKC_QK_K, 50, I, 1, 1},
    {QK_TYPE_IQ4_NL, "IQ4_NL", QKC_QK4_NL, 18, I, 1, 0},
    {QK_TYPE_IQ3_S, "IQ3_S", QKC_QK_K, 110, I, 1, 0},
    {QK_TYPE_IQ2_S, "IQ2_S", QKC_QK_K, 82, I, 1, 0},
    {QK_TYPE_IQ4_XS, "IQ4_XS", QKC_QK_K, 136, I, 1, 0},
    {QK_TYPE_IQ1_M, "IQ1_M", QKC_QK_K, 56, I, 1, 0},
    {QK_TYPE_BF16, "BF16", 1, 2, F, 0, 0},
    {QK_TYPE_TQ1_0, "TQ1_0", QKC_QK_K, 54, T, 0, 0},
    {QK_TYPE_TQ2_0, "TQ2_0", QKC_QK_K, 66, T, 0, 0},
    {QK_TYPE_MXFP4, "MXFP4", QKC_QK_MXFP4, 17, X, 0, 0},
};

#undef F
#undef L
#undef K
#undef I
#undef X
#undef T

#define N_FORMATS ((int)(sizeof(table) / sizeof(table[0])))

const qk_format *qk_format_of(int type_id) {
    for (int i = 0; i < N_FORMATS; i++)
        if ((int)table[i].type == type_id) return &table[i];
    return NULL;
}

const qk_format *qk_formats(int *count) {
    *count = N_FORMATS;
    return table;
}

/* ---- public queries ------------------------------------------------------------------------ */

qk_status qk_type_get_info(int type_id, qk_type_info *info) {
    const qk_format *f = qk_format_of(type_id);
    if (!f || !info) return f ? QK_ERR_INVALID_ARG : QK_ERR_TYPE;
    info->name = f->name;
    info->type = f->type;
    info->block_elems = f->block_elems;
    info->block_bytes = f->block_bytes;
    info->bits_per_weight = 8.0 * f->block_bytes / f->block_elems;
    info->is_quantized = f->family != QK_FAMILY_FLOAT;
    info->uses_imatrix = f->uses_imatrix;
    info->needs_imatrix = f->needs_imatrix;
    return QK_OK;
}

const char *qk_type_name(int type_id) {
    const qk_format *f = qk_format_of(type_id);
    return f ? f->name : NULL;
}

qk_status qk_type_from_name(const char *name, qk_type *type) {
    if (!name || !type) return QK_ERR_INVALID_ARG;
    for (int i = 0; i < N_FORMATS; i++) {
        const char *a = table[i].name, *b = name;
        while (*a && *b && toupper((unsigned char)*a) == toupper((unsigned char)*b)) a++, b++;
        if (!*a && !*b) {
            *type = table[i].type;
            return QK_OK;
        }
    }
    return QK_ERR_TYPE;
}

size_t qk_type_row_bytes(int type_id, int64_t cols) {
    const qk_format *f = qk_format_of(type_id);
    if (!f || cols <= 0 || cols % f->block_elems) return 0;
    uint64_t blocks = (uint64_t)(cols / f->block_elems);
    if (blocks > SIZE_MAX / (uint64_t)f->block_bytes) return 0;
    return (size_t)(blocks * (uint64_t)f->block_bytes);
}

int qk_type_count(void) { return N_FORMATS; }

qk_type qk_type_at(int i) { return (i >= 0 && i < N_FORMATS) ? table[i].type : QK_TYPE_F32; }

size_t qk_float_type_size(qk_type t) {
    const qk_format *f = qk_format_of(t);
    return f && f->family == QK_FAMILY_FLOAT ? (size_t)f->block_bytes : 0;
}
