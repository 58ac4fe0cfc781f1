/* The resume journal of one output file (qkern quantize --resume): PATH.tmp.qkern.journal, beside
 * the temporary it describes and guarded by that temporary's lock. A 32-byte header names the run
 * (an identity hash of everything that decides the file's bytes), then one 32-byte record per
 * finished tensor, in output order, each appended only after the tensor's bytes reached the
 * temporary's storage. Every header and record carries its own checksum, so a record torn by a
 * kill is seen as absent; and a record only claims bytes that the resuming run checks again
 * (gguf_io.h's qk_fnv1a64 of the tensor's data), so the journal can lose records but never vouch for
 * wrong bytes. */
#ifndef QK_JOURNAL_H
#define QK_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf_io.h" /* qk_fnv1a64, the records' checksum */

#define QK_JOURNAL_SUFFIX ".journal"
#define QK_JOURNAL_RECORD 32u
#define QK_JOURNAL_HEADER 32u

/* Reads the journal at `path`: the intact records for tensors 0, 1, ... in a row (at most `max`)
 * into sums[], their count in *n. *other_run is 1 when a journal exists whose header is not
 * `identity` (or is damaged), and then *n is 0. A missing journal is n = 0, other_run = 0. */
void qk_journal_read(const char *path, uint64_t identity, uint64_t *sums, size_t max, size_t *n, int *other_run);

/* (Re)writes the journal at `path` as `identity`'s header and the first n records of sums[],
 * synced; returns its descriptor for qk_journal_append, or -1 with errno set. */
int qk_journal_start(const char *path, uint64_t identity, const uint64_t *sums, size_t n);

/* Appends the record "tensor `index` has checksum `sum`" and syncs it; 0 or an errno. */
int qk_journal_append(int fd, uint64_t index, uint64_t sum);

#endif
