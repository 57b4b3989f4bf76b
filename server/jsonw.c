/*
 * jsonw.c — see jsonw.h.
 */
#include "jsonw.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oip.h"

static int jw__room(acmd_jw *w, size_t need) {
    if (w->oom) return 0;
    if (w->n + need + 1 <= w->cap) return 1;
    size_t cap = w->cap ? w->cap : 512;
    while (cap < w->n + need + 1) cap *= 2;
    char *p = realloc(w->p, cap);
    if (!p) {
        w->oom = 1;
        return 0;
    }
    w->p = p, w->cap = cap;
    return 1;
}

void acmd_jw_raw(acmd_jw *w, const char *fmt, ...) {
    for (int pass = 0; pass < 2; pass++) {
        if (!jw__room(w, pass ? 0 : 64)) return;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(w->p + w->n, w->cap - w->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            w->oom = 1;
            return;
        }
        if ((size_t)k < w->cap - w->n) {
            w->n += (size_t)k;
            return;
        }
        if (!jw__room(w, (size_t)k)) return;
    }
}

void acmd_jw_str(acmd_jw *w, const char *s) {
    if (!jw__room(w, 2)) return;
    w->p[w->n++] = '"';
    for (size_t i = 0, len = strlen(s); i < len;) {
        if (!jw__room(w, ACM_JSON_ESCAPE_MAX + 1)) return;
        size_t used;
        w->n += acm_json_escape_next(w->p + w->n, s + i, len - i, &used);
        i += used;
    }
    if (!jw__room(w, 1)) return;
    w->p[w->n++] = '"';
}

void acmd_jw_kstr(acmd_jw *w, const char *key, const char *s) {
    const char last = w->n ? w->p[w->n - 1] : '{';
    acmd_jw_raw(w, "%s\"%s\":", last == '{' || last == '[' ? "" : ",", key);
    acmd_jw_str(w, s);
}

char *acmd_jw_finish(acmd_jw *w, size_t *len) {
    if (w->oom || !jw__room(w, 0)) {
        free(w->p);
        w->p = NULL;
        return NULL;
    }
    w->p[w->n] = 0;
    if (len) *len = w->n;
    char *p = w->p;
    w->p = NULL;
    return p;
}

size_t acmd_fmt_double(char *buf, size_t n, double v) {
    if (!isfinite(v)) return (size_t)snprintf(buf, n, "null");
    int k = 0;
    for (int digits = 15; digits <= 17; digits++) {
        k = snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    return k < 0 ? 0 : (size_t)k;
}

size_t acmd_fmt_float(char *buf, size_t n, float v) {
    if (!isfinite(v)) return (size_t)snprintf(buf, n, "null");
    int k = 0;
    for (int digits = 6; digits <= 9; digits++) {
        k = snprintf(buf, n, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return k < 0 ? 0 : (size_t)k;
}

void acmd_jw_num(acmd_jw *w, double v) {
    char b[32];
    acmd_fmt_double(b, sizeof b, v);
    acmd_jw_raw(w, "%s", b);
}

void acmd_jw_numf(acmd_jw *w, float v) {
    char b[32];
    acmd_fmt_float(b, sizeof b, v);
    acmd_jw_raw(w, "%s", b);
}

size_t acmd_copy(char *dst, size_t n, const char *src) {
    if (!n) return 0;
    size_t k = 0;
    while (src[k] && k + 1 < n) k++;
    memcpy(dst, src, k);
    dst[k] = 0;
    return k;
}

size_t acmd_fmt_u64(char *dst, size_t n, unsigned long long v) {
    char t[24];
    size_t k = 0;
    do t[k++] = (char)('0' + v % 10), v /= 10;
    while (v);
    size_t o = 0;
    while (k && o + 1 < n) dst[o++] = t[--k];
    if (n) dst[o] = 0;
    return o;
}

size_t acmd_fmt_hex(char *dst, size_t n, unsigned long long v, int width) {
    char t[24];
    int k = 0;
    do t[k++] = "0123456789abcdef"[v & 15], v >>= 4;
    while (v);
    while (k < width && k < (int)sizeof t) t[k++] = '0';
    size_t o = 0;
    while (k && o + 1 < n) dst[o++] = t[--k];
    if (n) dst[o] = 0;
    return o;
}
