/* Fuzz target: any byte string through qk_imatrix_parse (GGUF and legacy paths). A parse
 * either fails cleanly or yields sorted, findable entries of finite, non-negative values;
 * filtering then keeps them sorted. Crashes and sanitizer reports are the findings. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imatrix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qk_imatrix *im = NULL;
    if (qk_imatrix_parse(data, size, "fuzz-input", &im) != QK_OK) {
        if (im) __builtin_trap(); /* a failed parse must not hand out a result */
        return 0;
    }
    if (!im->dataset || im->n_entries == 0 || im->chunk_count < 0 || im->chunk_size < 0) __builtin_trap();
    for (size_t i = 0; i < im->n_entries; i++) {
        const qk_imatrix_entry *e = &im->entries[i];
        if (!e->name || !e->name[0] || e->n_mat < 1 || e->cols < 1) __builtin_trap();
        if (i > 0 && strcmp(im->entries[i - 1].name, e->name) >= 0) __builtin_trap();
        if (qk_imatrix_find(im, e->name) != e) __builtin_trap();
        for (int64_t j = 0; j < e->n_mat * e->cols; j++)
            if (!isfinite(e->values[j]) || e->values[j] < 0) __builtin_trap();
    }
    /* Filter by a one-character substring taken from the input; the order must survive. */
    char sub[2] = {size ? (char)(data[size - 1] | 1) : 'b', 0};
    const char *subs[1] = {sub};
    qk_imatrix_filter(im, subs, 1, (int)(size & 1));
    for (size_t i = 1; i < im->n_entries; i++)
        if (strcmp(im->entries[i - 1].name, im->entries[i].name) >= 0) __builtin_trap();
    qk_imatrix_free(im);
    return 0;
}
