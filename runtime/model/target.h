/* Size targets (`qkern quantize --target-bpw B` / `--target-size SIZE`): the error matrix (per
 * tensor, each candidate type's bytes and importance-weighted error), its state file, and the
 * budget handed to the allocator (target_alloc.h). The measuring itself is the streaming
 * quantizer's (model_quantize.c), so the errors are those of the bytes a run would write.
 * Pure logic and one file: no devices. */
#ifndef QK_TARGET_H
#define QK_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "plan.h"
#include "qkern.h"
#include "target_alloc.h"

#define QK_TARGET_MAX_OPTIONS 24

/* One row of the error matrix: a tensor's options, ascending type id; one for a pinned tensor.
 * key: what its errors were measured from (the caller's hash of the tensor's data and imatrix
 * entry, and of what its sensitivity reads); 0 where not known. */
typedef struct qk_target_row {
    int n;
    int pinned;
    uint64_t key;
    qk_alloc_option opt[QK_TARGET_MAX_OPTIONS];
} qk_target_row;

/* 1 for a free row whose every option has its error. */
int qk_target_row_measured(const qk_target_row *row);

/* Fills `row` with the candidates among `types` that tensor `name` (ne[0] = cols, `rows` rows of
 * all experts) can take: the block divides cols, and a type that needs imatrix data (the
 * format's or llama.cpp's rule, qk_plan_needs_imatrix) only when the tensor has an entry.
 * Errors are set to -1 (not measured). Returns the number of options (0: none fits). */
int qk_target_candidates(qk_target_row *row, const int *types, size_t n_types, const qk_plan_options *opt,
                         const char *name, int64_t cols, int64_t rows, int has_entry);

/* A fast 64-bit hash, chained: h = qk_target_hash(h, data, n). Not cryptographic: it tells a
 * state file made for other data from one made for these, not an attacker's forgery. */
uint64_t qk_target_hash(uint64_t h, const void *data, size_t n);
#define QK_TARGET_HASH_SEED 0x51b7a26e3c0f9d45ull

/* Reads the state file's errors and row keys into rows (whose n, types and bytes are already
 * this run's); `key` is what every row shares (the model's). *found = 0 (QK_OK) when the file
 * does not exist. A file that is not a state file, is cut short, was made by an older qkern or
 * for another key, or holds other candidates is refused with QK_ERR_INVALID_ARG (message in
 * qk_last_error(NULL)); rows are then unchanged. The rows' own keys are the caller's to check,
 * for the rows it reads. */
qk_status qk_target_state_load(const char *path, uint64_t key, qk_target_row *rows, size_t n, int *found);

/* Writes the matrix under `path` atomically: a temporary file beside it, flushed, then renamed,
 * so an interrupted write leaves the previous file (or none), never a partial one. */
qk_status qk_target_state_save(const char *path, uint64_t key, const qk_target_row *rows, size_t n);

/* The outcome of qk_target_choose. */
typedef struct qk_target_result {
    uint64_t budget;               /* tensor data bytes allowed */
    uint64_t min_bytes, max_bytes; /* reachable totals, pinned tensors included */
    uint64_t bytes;                /* chosen total */
    double error;                  /* chosen total error */
} qk_target_result;

/* Chooses one option per row (choice[i] indexes rows[i].opt) for a budget of target_bytes, or
 * target_bpw * total_weights / 8 bytes. A budget outside the reachable range fails with
 * QK_ERR_INVALID_ARG, naming the range in bpw (qk_last_error(NULL)). */
qk_status qk_target_choose(const qk_target_row *rows, size_t n, uint64_t total_weights, double target_bpw,
                           uint64_t target_bytes, int *choice, qk_target_result *out);

#endif
