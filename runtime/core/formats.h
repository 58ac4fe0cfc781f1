/* The format table's rows as data (include/qkern_formats.h is the table): name, ggml id, block
 * geometry, family, imatrix behaviour and the backends that implement each type. */
#ifndef QK_FORMATS_H
#define QK_FORMATS_H

#include "qkern.h"

typedef enum qk_family {
    QK_FAMILY_FLOAT,
    QK_FAMILY_LEGACY,
    QK_FAMILY_KQUANT,
    QK_FAMILY_IQUANT,
    QK_FAMILY_FP4,
    QK_FAMILY_TERNARY,
} qk_family;

/* Backends that implement a type (the table's cpu, cuda and vulkan columns). */
enum { QK_IMPL_CPU = 1, QK_IMPL_CUDA = 2, QK_IMPL_VULKAN = 4 };

typedef struct qk_format {
    qk_type type;
    const char *name;
    int block_elems;
    int block_bytes;
    qk_family family;
    unsigned char uses_imatrix;
    unsigned char needs_imatrix; /* ggml refuses without one */
    unsigned char backends;      /* QK_IMPL_* */
} qk_format;

/* The row for a type id, or NULL if the id is not a qkern type. */
const qk_format *qk_format_of(int type_id);
/* All rows, ascending id. */
const qk_format *qk_formats(int *count);

#endif
