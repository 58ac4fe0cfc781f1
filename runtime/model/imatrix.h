/* Importance matrices (facts: docs/formats/GGUF.md §5, §6): the GGUF-based format and the
 * legacy binary one, read into one in-memory form of per-column mean squared activations.
 *
 * Errors: qk_status plus a one-line message in qk_last_error(NULL) naming the file. */
#ifndef QK_IMATRIX_H
#define QK_IMATRIX_H

#include <stddef.h>
#include <stdint.h>

#include "qkern.h"

/* Longest entry name accepted from a file, bytes. Tensor names are at most 63 bytes, so this
 * only bounds what a corrupt legacy file can make us allocate per name. */
#define QK_IMATRIX_MAX_NAME 1024

/* One entry per weight tensor. From a GGUF imatrix, cols = K and n_mat come from the
 * `<name>.in_sum2` shape [K, n_mat]. The legacy format does not store K: its entries have
 * n_mat = 1 and cols = nval (K * n_expert for an expert stack), and the quantizer checks
 * nval == ne[0] * ne[2] and splits the vector by expert itself, as llama-quantize does. */
typedef struct qk_imatrix_entry {
    char *name;    /* the weight tensor's name, e.g. "blk.3.ffn_down_exps.weight" */
    int64_t n_mat; /* 1, or the number of experts of a 3D expert tensor */
    int64_t cols;  /* values per matrix (the weight's ne[0]) */
    float *values; /* n_mat * cols mean squared activations; never-routed experts are 1.0 */
    float *means;  /* n_mat * cols mean activations, laid out as values, or NULL where the file has
                      none (legacy; a GGUF entry without `<name>.in_sum`); never-routed experts
                      are 0.0, which with their flat values leaves them the error without means */
} qk_imatrix_entry;

typedef struct qk_imatrix {
    qk_imatrix_entry *entries; /* sorted by name */
    size_t n_entries;
    char *dataset; /* first calibration dataset name, or "" */
    int64_t chunk_count;
    int64_t chunk_size; /* 0 when unknown (legacy format) */
    int legacy;         /* 1 when read from the legacy binary format */
} qk_imatrix;

/* Reads an imatrix file: a file starting with the magic "GGUF" is read as a GGUF imatrix,
 * anything else as the legacy format (a legacy file cannot start with "GGUF": it would claim
 * over 10^9 entries). GGUF: values are in_sum2 / counts per matrix (1.0 for a matrix whose
 * count is 0); imatrix.datasets, imatrix.chunk_count and imatrix.chunk_size are required. Where
 * an entry also has `<name>.in_sum` (some llama-imatrix builds write it; llama-quantize ignores
 * it), its means are in_sum / counts (0.0 for a count of 0); it must then be F32 of in_sum2's
 * shape and finite. A `.in_sum` without its `.in_sum2` is ignored, as llama-quantize does.
 * Legacy: values are stored / ncall when ncall > 0; the trailer is optional. A file without
 * any entry is rejected (llama-quantize does too). Rejects non-finite or negative values,
 * duplicate names, sizes beyond the file, bytes after the end. */
qk_status qk_imatrix_load(const char *path, qk_imatrix **out);
/* The same from a file image in memory (fuzzing, tests); `name` is used in messages. */
qk_status qk_imatrix_parse(const void *data, size_t size, const char *name, qk_imatrix **out);
void qk_imatrix_free(qk_imatrix *im);

/* The entry for a tensor name (exact match, as llama.cpp), or NULL. */
const qk_imatrix_entry *qk_imatrix_find(const qk_imatrix *im, const char *name);
/* llama-quantize's --include-weights / --exclude-weights: keep only (include=1) or drop
 * (include=0) entries whose name contains any of the `n` substrings. n == 0 changes
 * nothing (no option given); entries stay sorted. */
void qk_imatrix_filter(qk_imatrix *im, const char *const *substrings, size_t n, int include);

/* Writers, for the generated model and for tests: the GGUF form (with imatrix.datasets,
 * chunk_count, chunk_size; counts per matrix given in `counts`, n_mat per entry, may be
 * NULL meaning `chunk_count * chunk_size` rows everywhere) and the legacy form. Both go
 * through a temporary file renamed into place.
 * GGUF: `<name>.in_sum2` = value * count, so a matrix with count 0 reads back as 1.0, and for an
 * entry with means `<name>.in_sum` = mean * count after the counts (a count of 0 reads back as
 * means 0.0; the legacy form drops the means, having no place for them); when
 * `counts` is NULL and chunk_count * chunk_size is 0 (an imatrix read from a legacy file) the
 * count written is 1, so the values survive. Names must leave room for ".in_sum2" within 63
 * bytes; chunk_count and chunk_size must fit UINT32.
 * Legacy: values * ncall with ncall = chunk_count (1 when chunk_count is 0), then the trailer
 * (chunk_count, dataset). Entries are written sorted by name; an empty imatrix, duplicate
 * names and non-finite or negative values are refused (the readers would refuse the file). */
qk_status qk_imatrix_save_gguf(const qk_imatrix *im, const float *const *counts, const char *path);
qk_status qk_imatrix_save_legacy(const qk_imatrix *im, const char *path);

#endif
