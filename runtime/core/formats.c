#include "formats.h"
#include "internal.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#define QK_IMATRIX_NONE_USES   0
#define QK_IMATRIX_NONE_NEEDS  0
#define QK_IMATRIX_USES_USES   1
#define QK_IMATRIX_USES_NEEDS  0
#define QK_IMATRIX_NEEDS_USES  1
#define QK_IMATRIX_NEEDS_NEEDS 1
#define QK_IMPL_BIT_Y(bit)     bit
#define QK_IMPL_BIT_N(bit)     0

#define ROW(NAME, codec, id, elems, bytes, family, source, imatrix, cpu, cuda, vulkan)                                 \
    {QK_TYPE_##NAME,                                                                                                   \
     #NAME,                                                                                                            \
     elems,                                                                                                            \
     bytes,                                                                                                            \
     QK_FAMILY_##family,                                                                                               \
     QK_IMATRIX_##imatrix##_USES,                                                                                      \
     QK_IMATRIX_##imatrix##_NEEDS,                                                                                     \
     QK_IMPL_BIT_##cpu(QK_IMPL_CPU) | QK_IMPL_BIT_##cuda(QK_IMPL_CUDA) | QK_IMPL_BIT_##vulkan(QK_IMPL_VULKAN)},
static const qk_format table[] = {QK_FORMATS(ROW)};
#undef ROW

/* Rows ascend by id and stay below the enum's limit (qk_formats() promises the order). */
#define ROW(NAME, codec, id, ...) +((id) < QK_FORMAT_ID_LIMIT ? 0 : 1)
_Static_assert(0 QK_FORMATS(ROW) == 0, "a format id is not below QK_FORMAT_ID_LIMIT");
#undef ROW

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
