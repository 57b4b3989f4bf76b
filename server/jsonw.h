/*
 * jsonw.h — a minimal JSON writer for the hot paths (the /classify body, the access log): printf-style appends into
 * one growing buffer and escaped strings. jansson builds a tree of objects first, which costs tens of microseconds per
 * document; these documents are flat and written once.
 * Strings are escaped by acm_json_escape_next (oip.h): valid UTF-8 is copied as it is, and each ill-formed sequence
 * becomes U+FFFD, so that any client bytes still give valid JSON and UTF-8 labels come out as they are.
 */
#ifndef ACM_SERVER_JSONW_H
#define ACM_SERVER_JSONW_H

#include <stddef.h>

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} acmd_jw;

void acmd_jw_raw(acmd_jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A quoted, escaped string. */
void acmd_jw_str(acmd_jw *w, const char *s);
/* ,"key":"escaped value" (the comma only when something precedes it that is not '{' or '[') */
void acmd_jw_kstr(acmd_jw *w, const char *key, const char *s);
/* A number in the shortest decimal form that reads back as the same value: %.15g, %.16g or %.17g, the first that
 * strtod returns exactly (0.3 -> 0.3, where %.17g writes 0.29999999999999999); null when v is not finite (JSON has
 * no NaN or infinity). acmd_fmt_double writes it into buf (at least 32 bytes) and returns its length. */
size_t acmd_fmt_double(char *buf, size_t n, double v);
void acmd_jw_num(acmd_jw *w, double v);
/* The same for a float (%.6g .. %.9g read back with strtof): a budget of 0.3f is 0.3, where %.9g writes 0.300000012. */
size_t acmd_fmt_float(char *buf, size_t n, float v);
void acmd_jw_numf(acmd_jw *w, float v);
/* The NUL-terminated document (malloc'd, the caller frees), or NULL when memory ran out (buffer freed). */
char *acmd_jw_finish(acmd_jw *w, size_t *len);

/* Small formatters for the per-request path, without printf. Why: OpenBLAS brings in libgfortran and with it
 * libquadmath, whose constructor registers printf handlers (for __float128); from then on every printf-family call
 * in the process takes glibc's slow positional path (printf_positional): about 12 % of the I/O thread's time on a
 * health check went there. Each writes at most n - 1 bytes and a NUL, and returns the length written. */
size_t acmd_copy(char *dst, size_t n, const char *src);            /* a string, truncated to fit */
size_t acmd_fmt_u64(char *dst, size_t n, unsigned long long v);      /* decimal */
size_t acmd_fmt_hex(char *dst, size_t n, unsigned long long v, int width); /* lower-case hex, zero-padded to width */

#endif
