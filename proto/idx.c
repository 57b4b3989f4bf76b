/*
 * idx.c — IDX files (see idx.h for the format). gzip is inflated with zlib's inflate (windowBits 15 + 32: gzip or
 * zlib header auto-detected); the output grows by doubling up to ACM_IDX_MAX_BYTES. Every size is checked before use.
 */
#include "idx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t errlen, int code, const char *name,
                                                      const char *fmt, ...) {
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", name ? name : "idx");
        if (n < 0) n = 0;
        if ((size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* Inflates a gzip buffer into *out (malloc'd) of *outlen bytes. */
static int gunzip(uint8_t **out, size_t *outlen, const uint8_t *buf, size_t len, const char *name, char *err,
                  size_t errlen) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK) return fail(err, errlen, ACM_IDX_EGZIP, name, "zlib inflateInit2 failed");
    size_t cap = len * 4 + 1024, used = 0;
    if (cap > ACM_IDX_MAX_BYTES) cap = ACM_IDX_MAX_BYTES;
    uint8_t *dst = malloc(cap);
    if (!dst) {
        inflateEnd(&zs);
        return fail(err, errlen, ACM_IDX_ENOMEM, name, "out of memory");
    }
    size_t in_left = len;
    zs.next_in = (Bytef *)(uintptr_t)buf;
    int rc = Z_OK;
    for (;;) {
        if (zs.avail_in == 0 && in_left > 0) {
            uInt chunk = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            zs.avail_in = chunk;
            in_left -= chunk;
        }
        if (used == cap) {
            if (cap >= ACM_IDX_MAX_BYTES) {
                free(dst);
                inflateEnd(&zs);
                return fail(err, errlen, ACM_IDX_EFORMAT, name, "inflated data exceeds %zu bytes", ACM_IDX_MAX_BYTES);
            }
            size_t ncap = cap * 2 > ACM_IDX_MAX_BYTES ? ACM_IDX_MAX_BYTES : cap * 2;
            uint8_t *n = realloc(dst, ncap);
            if (!n) {
                free(dst);
                inflateEnd(&zs);
                return fail(err, errlen, ACM_IDX_ENOMEM, name, "out of memory");
            }
            dst = n;
            cap = ncap;
        }
        size_t room = cap - used;
        zs.next_out = dst + used;
        zs.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before = zs.avail_out;
        rc = inflate(&zs, Z_NO_FLUSH);
        used += before - zs.avail_out;
        if (rc == Z_STREAM_END) break;
        if (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) {
            free(dst);
            inflateEnd(&zs);
            return fail(err, errlen, ACM_IDX_EGZIP, name, "truncated gzip stream");
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            const char *msg = zs.msg ? zs.msg : "corrupt data";
            int code = rc == Z_MEM_ERROR ? ACM_IDX_ENOMEM : ACM_IDX_EGZIP;
            fail(err, errlen, code, name, "gzip: %s", msg);
            free(dst);
            inflateEnd(&zs);
            return code;
        }
    }
    inflateEnd(&zs);
    *out = dst;
    *outlen = used;
    return 0;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int acm_idx_parse(acm_idx *out, const uint8_t *buf, size_t len, int expect_ndim, const char *name, char *err,
                  size_t errlen) {
    memset(out, 0, sizeof *out);
    uint8_t *owned = NULL;
    if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        int rc = gunzip(&owned, &len, buf, len, name, err, errlen);
        if (rc) return rc;
        buf = owned;
    }
    int rc = 0;
    if (len < 4) {
        rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "%zu bytes: too short for an IDX header", len);
        goto done;
    }
    if (buf[0] != 0 || buf[1] != 0) {
        rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "bad magic %02x %02x %02x %02x (expected 00 00 08 nd)", buf[0],
                  buf[1], buf[2], buf[3]);
        goto done;
    }
    if (buf[2] != 0x08) {
        rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "element type 0x%02x not supported (only 0x08, unsigned byte)",
                  buf[2]);
        goto done;
    }
    int nd = buf[3];
    if (nd < 1 || nd > ACM_IDX_MAX_DIMS) {
        rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "%d dimensions (1..%d accepted)", nd, ACM_IDX_MAX_DIMS);
        goto done;
    }
    if (expect_ndim && nd != expect_ndim) {
        rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "%d dimensions, expected %d", nd, expect_ndim);
        goto done;
    }
    size_t hdr = 4 + 4 * (size_t)nd;
    if (len < hdr) {
        rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "%zu bytes: header of %d dimensions truncated", len, nd);
        goto done;
    }
    size_t count = 1;
    for (int i = 0; i < nd; i++) {
        out->dims[i] = be32(buf + 4 + 4 * i);
        if (__builtin_mul_overflow(count, (size_t)out->dims[i], &count) || count > ACM_IDX_MAX_BYTES) {
            rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "dimensions too large");
            goto done;
        }
    }
    if (len - hdr != count) {
        rc = fail(err, errlen, ACM_IDX_EFORMAT, name, "%zu data bytes, but the dimensions say %zu (%s)", len - hdr,
                  count, len - hdr < count ? "truncated" : "trailing bytes");
        goto done;
    }
    out->data = malloc(count ? count : 1);
    if (!out->data) {
        rc = fail(err, errlen, ACM_IDX_ENOMEM, name, "out of memory");
        goto done;
    }
    memcpy(out->data, buf + hdr, count);
    out->ndim = nd;
    out->count = count;
done:
    free(owned);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

void acm_idx_free(acm_idx *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}

int acm_idx_check_pair(const acm_idx *images, const acm_idx *labels, int rows, int cols, int num_classes,
                       const char *name, char *err, size_t errlen) {
    if (images->ndim != 3)
        return fail(err, errlen, ACM_IDX_EFORMAT, name, "images have %d dimensions, expected 3", images->ndim);
    if (labels->ndim != 1)
        return fail(err, errlen, ACM_IDX_EFORMAT, name, "labels have %d dimensions, expected 1", labels->ndim);
    if (images->dims[0] != labels->dims[0])
        return fail(err, errlen, ACM_IDX_EFORMAT, name, "%u images but %u labels", images->dims[0], labels->dims[0]);
    if ((rows && images->dims[1] != (uint32_t)rows) || (cols && images->dims[2] != (uint32_t)cols))
        return fail(err, errlen, ACM_IDX_EFORMAT, name, "images are %ux%u, expected %dx%d", images->dims[1],
                    images->dims[2], rows, cols);
    for (size_t i = 0; i < labels->count; i++)
        if (labels->data[i] >= num_classes)
            return fail(err, errlen, ACM_IDX_EFORMAT, name, "label %u of item %zu is not below %d classes",
                        labels->data[i], i, num_classes);
    return 0;
}
