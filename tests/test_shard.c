/* The partition of a sharded run (shard.h): which contiguous run of tensors part k of N writes.
 * Random instances (the seed is printed; QK_TEST_SEED replays one) of 0 to 300 tensors whose sizes
 * span six orders of magnitude, cut into 1 to 40 parts, and a few exact cases. */
#include "shard.h"
#include "test_util.h"

static tu_rng rng;

/* The parts, one after the other, are the tensors 0..n once: consecutive ranges from 0 to n. */
static void test_parts_cover_every_tensor_once_in_order(const uint64_t *b, size_t n, int parts, const char *what) {
    size_t next = 0;
    for (int k = 0; k < parts; k++) {
        size_t first, end;
        qk_shard_range(b, n, k, parts, &first, &end);
        CHECK(first == next && end >= first && end <= n, "%s: part %d of %d is [%zu, %zu), expected to start at %zu",
              what, k + 1, parts, first, end, next);
        next = end;
    }
    CHECK(next == n, "%s: the %d parts end at tensor %zu of %zu", what, parts, next, n);
}

/* No part is empty while there are tensors for all; with fewer tensors than parts, the first
 * parts get one each. */
static void test_no_part_is_empty_while_tensors_last(const uint64_t *b, size_t n, int parts, const char *what) {
    for (int k = 0; k < parts; k++) {
        size_t first, end;
        qk_shard_range(b, n, k, parts, &first, &end);
        const size_t want = n >= (size_t)parts ? (end > first) : (size_t)k < n ? 1 : 0;
        const size_t got = n >= (size_t)parts ? (end > first) : end - first;
        CHECK(got == want, "%s: part %d of %d of %zu tensors has %zu", what, k + 1, parts, n, end - first);
    }
}

/* Balanced: no part exceeds total / parts by more than the largest tensor (the midpoint rule's
 * bound: half of each of its two edge tensors, or one tensor where a part has only one). */
static void test_no_part_exceeds_its_share_by_more_than_a_tensor(const uint64_t *b, size_t n, int parts,
                                                                 const char *what) {
    double total = 0, largest = 0;
    for (size_t i = 0; i < n; i++) {
        total += (double)b[i];
        if ((double)b[i] > largest) largest = (double)b[i];
    }
    for (int k = 0; k < parts; k++) {
        size_t first, end;
        qk_shard_range(b, n, k, parts, &first, &end);
        double bytes = 0;
        for (size_t i = first; i < end; i++) bytes += (double)b[i];
        CHECK(bytes <= total / parts + largest, "%s: part %d of %d has %.0f bytes, share %.0f, largest tensor %.0f",
              what, k + 1, parts, bytes, total / parts, largest);
    }
}

static void expect_ranges(const uint64_t *b, size_t n, int parts, const size_t *ends, const char *what) {
    for (int k = 0; k < parts; k++) {
        size_t first, end;
        qk_shard_range(b, n, k, parts, &first, &end);
        CHECK(first == (k ? ends[k - 1] : 0) && end == ends[k], "%s: part %d is [%zu, %zu), expected [%zu, %zu)", what,
              k + 1, first, end, k ? ends[k - 1] : 0, ends[k]);
    }
}

/* Exact cases: equal tensors split 3-4-3 by their midpoints; a tensor larger than a share is a
 * part alone; a midpoint on a boundary goes to the later part; out-of-range arguments are empty. */
static void test_exact_cases(void) {
    const uint64_t equal[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_ranges(equal, 10, 3, (const size_t[]){3, 7, 10}, "10 equal tensors in 3");
    const uint64_t front[5] = {100, 1, 1, 1, 1};
    expect_ranges(front, 5, 3, (const size_t[]){1, 2, 5}, "a large first tensor");
    const uint64_t edge[4] = {1, 2, 1, 2}; /* total 6, parts 2: tensor 1's midpoint 2 < 3, tensor 2's is 3.5 */
    expect_ranges(edge, 4, 2, (const size_t[]){2, 4}, "midpoints either side");
    const uint64_t tie[2] = {2, 2}; /* total 4, parts 2: tensor 0's midpoint 1 < 2; tensor 1's 3 */
    expect_ranges(tie, 2, 2, (const size_t[]){1, 2}, "two equal tensors");
    const uint64_t on[3] = {1, 2, 1}; /* total 4, parts 2: tensor 1's midpoint is 2, the boundary */
    expect_ranges(on, 3, 2, (const size_t[]){1, 3}, "a midpoint on the boundary");
    const uint64_t zeros[4] = {0, 0, 0, 0};
    expect_ranges(zeros, 4, 3, (const size_t[]){1, 2, 4}, "zero-byte tensors");
    expect_ranges(equal, 10, 1, (const size_t[]){10}, "one part");
    size_t first = 7, end = 7;
    qk_shard_range(equal, 10, 3, 3, &first, &end);
    CHECK(first == 0 && end == 0, "part 4 of 3: [%zu, %zu), expected empty", first, end);
    qk_shard_range(equal, 10, 0, 0, &first, &end);
    CHECK(first == 0 && end == 0, "part 1 of 0: [%zu, %zu), expected empty", first, end);
    qk_shard_range(NULL, 0, 0, 2, &first, &end);
    CHECK(first == 0 && end == 0, "no tensors: [%zu, %zu)", first, end);
}

/* Sizes near the top of uint64: the arithmetic is exact beyond 64 bits. */
static void test_huge_sizes_do_not_overflow(void) {
    const uint64_t huge[4] = {UINT64_MAX / 2, UINT64_MAX / 2, UINT64_MAX / 2, UINT64_MAX / 2};
    expect_ranges(huge, 4, 2, (const size_t[]){2, 4}, "four tensors of 2^63 bytes");
    expect_ranges(huge, 4, 4, (const size_t[]){1, 2, 3, 4}, "four tensors of 2^63 bytes in 4");
}

int main(void) {
    rng.s = tu_seed();
    test_exact_cases();
    test_huge_sizes_do_not_overflow();
    uint64_t b[300];
    for (int round = 0; round < 2000; round++) {
        const size_t n = (size_t)(tu_next(&rng) % 301);
        const int parts = 1 + (int)(tu_next(&rng) % 40);
        for (size_t i = 0; i < n; i++) {
            /* log-uniform from 1 byte to 1 MB, a few zero-byte tensors, a few giants */
            const uint64_t r = tu_next(&rng) % 100;
            b[i] = r < 3 ? 0 : r < 6 ? (uint64_t)1 << 30 : (uint64_t)pow(10.0, 6.0 * tu_u01(&rng));
        }
        char what[64];
        snprintf(what, sizeof what, "round %d (%zu tensors)", round, n);
        test_parts_cover_every_tensor_once_in_order(b, n, parts, what);
        test_no_part_is_empty_while_tensors_last(b, n, parts, what);
        test_no_part_exceeds_its_share_by_more_than_a_tensor(b, n, parts, what);
    }
    return tu_finish();
}
