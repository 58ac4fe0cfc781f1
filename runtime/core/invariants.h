/* Internal invariants of runtime/core are assert()s: checked in debug builds and in sanitizer
 * builds, whose RelWithDebInfo type (CI's sanitizer stage) would otherwise compile them out with
 * NDEBUG; release builds leave them out. They guard what the runtime promises itself (an operand
 * resolved, its staging undone, a plan launched with the description it was made for), never a
 * caller's input, which is checked and reported as a qk_status. Include this after <assert.h>,
 * if a file includes that at all. */
#ifndef QK_INVARIANTS_H
#define QK_INVARIANTS_H

#if defined(__SANITIZE_ADDRESS__) /* gcc, -fsanitize=address */
#define QK_CHECKED_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define QK_CHECKED_BUILD 1
#endif
#endif

#if defined(QK_CHECKED_BUILD) && defined(NDEBUG)
#undef NDEBUG
#endif
#include <assert.h>

#endif
