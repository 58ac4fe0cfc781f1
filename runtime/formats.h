/* The format table: the only place that knows each type's name, ggml id, block size, block
 * bytes and imatrix behaviour. Everything else asks it. */
#ifndef QK_FORMATS_H
#define QK_FORMATS_H

#include "qkern.h"

typedef enum qk_family {
    QK_FAMILY_FLOAT,
    QK_FAMILY_LEGACY,
    QK_FAMILY_KQUANT,
    QK_FAMILY_IQUANT,
    QK_FAMILY_MXFP4,
    QK_FAMILY_TERNARY,
} qk_family;

typedef struct qk_format {
    qk_type type;
    const char *name;
    int block_elems;
    int block_bytes;
    qk_family family;
    unsigned char uses_imatrix;
    unsigned char needs_imatrix; /* ggml refuses without one */
} qk_format;

/* The row for a type id, or NULL if the id is not a qkern type. */
const qk_format *qk_format_of(int type_id);
/* All rows, ascending id. */
const qk_format *qk_formats(int *count);

#endif
