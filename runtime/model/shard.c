#include "shard.h"

/* Sizes are summed and scaled by the part count: exact in 128 bits, where 64 could overflow. */
__extension__ typedef unsigned __int128 u128;

void qk_shard_range(const uint64_t *bytes, size_t n, int part, int parts, size_t *first, size_t *end) {
    *first = *end = 0;
    if (parts < 1 || part < 0 || part >= parts || (n && !bytes)) return;
    u128 total = 0;
    for (size_t i = 0; i < n; i++) total += bytes[i];
    size_t start = 0, i = 0;
    u128 before = 0; /* bytes of the tensors ahead of tensor i */
    for (int k = 0; k <= part; k++) {
        start = i;
        if (k == parts - 1) {
            i = n;
            break;
        }
        const size_t later = (size_t)(parts - 1 - k);
        /* tensor i's midpoint before + bytes[i] / 2 is below part k's ideal end (k + 1) * total /
         * parts; both sides times 2 * parts */
        const u128 boundary = 2 * (u128)(k + 1) * total;
        for (; i < n; i++) {
            if (i > start && (n - i <= later || (u128)parts * (2 * before + bytes[i]) >= boundary)) break;
            before += bytes[i];
        }
    }
    *first = start;
    *end = i;
}
