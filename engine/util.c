/* util.c — see util.h. */
#include "util.h"

#include "acm.h"

int acm__fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *acm_strerror(int code) {
    switch (code) {
#define X(name, val, str) \
    case val: return str;
        ACM_ERROR_LIST(X)
#undef X
    case 0: return "ok";
    default: return "unknown error";
    }
}
