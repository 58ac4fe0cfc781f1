/* SHA-256 of a byte range, as lower-case hex (65 bytes with the terminator). For checking
 * outputs against the golden manifest, which ships some results only as digests. */
#ifndef QK_TEST_SHA256_H
#define QK_TEST_SHA256_H
#include <stddef.h>
void sha256_hex(const void *data, size_t len, char out[65]);
#endif
