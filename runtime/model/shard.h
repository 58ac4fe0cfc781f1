/* Sharded runs (`qkern quantize --shard I/N`): which tensors part I of N quantizes. Every
 * process computes the same split from the same plan, without talking to the others, so the
 * rule is a pure function of the tensors' output sizes in output order. Pure logic: no files,
 * no devices. */
#ifndef QK_SHARD_H
#define QK_SHARD_H

#include <stddef.h>
#include <stdint.h>

/* The most parts: split.count is a UINT16 in llama.cpp's split metadata. */
#define QK_SHARD_MAX_PARTS 65535

/* The contiguous range [*first, *end) of the n tensors (output sizes bytes[0..n), in output
 * order) that part `part` (0-based) of `parts` gets. Consecutive parts get consecutive ranges,
 * which together cover 0..n once, so the parts concatenated in order are the whole output.
 *
 * The rule: with T the total bytes, part k's ideal end is (k + 1) * T / parts; a tensor goes to
 * the part whose ideal interval holds its midpoint (a midpoint on a boundary goes to the later
 * part), except that every part starts with at least one tensor and leaves one for each later
 * part while there are enough (n >= parts: no part is empty; n < parts: parts 0..n-1 get one each
 * and the rest none). Where those two rules do not step in, a part's bytes differ from T / parts
 * by less than half of the tensors at its edges and its neighbours' edges. parts must be >= 1
 * and part < parts; otherwise the range is empty. */
void qk_shard_range(const uint64_t *bytes, size_t n, int part, int parts, size_t *first, size_t *end);

#endif
