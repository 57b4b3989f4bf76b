/*
 * util.h — small internal helpers of libacm: error messages, checked arithmetic, always-on asserts.
 */
#ifndef ACM_UTIL_H
#define ACM_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Writes a printf-style message into err (if non-NULL) and returns code: `return acm__fail(err, n, ACM_EINVAL, ...)`.*/
__attribute__((format(printf, 4, 5))) int acm__fail(char *err, size_t errlen, int code, const char *fmt, ...);

/* *out = a * b; returns 0, or -1 on overflow (or a negative operand). */
static inline int acm__mul_i64(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return -1;
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* Invariants that must hold whatever the input (ggml's GGML_ASSERT): a failure is a bug in libacm, so abort. */
#define ACM_ASSERT(x)                                                                                   \
    do {                                                                                                \
        if (!(x)) {                                                                                     \
            fprintf(stderr, "libacm: assertion failed: %s (%s:%d)\n", #x, __FILE__, __LINE__);          \
            abort();                                                                                    \
        }                                                                                               \
    } while (0)

#endif
