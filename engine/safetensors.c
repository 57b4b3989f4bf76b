/*
 * safetensors.c — strict safetensors reader (mmap) and atomic writer. The format and the list of what is rejected
 * are in safetensors.h. Validation happens once, at open; afterwards every tensor's data pointer is safe to read for
 * numel elements.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acm.h"
#include "util.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [ACM_ST_F32] = {"F32", 4}, [ACM_ST_F16] = {"F16", 2}, [ACM_ST_BF16] = {"BF16", 2},
    [ACM_ST_I32] = {"I32", 4}, [ACM_ST_I64] = {"I64", 8}, [ACM_ST_U8] = {"U8", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t acm__st_dtype_size(acm_st_dtype d) { return dtypes[d].size; }
const char *acm__st_dtype_name(acm_st_dtype d) { return dtypes[d].name; }

static int dtype_parse(const char *s) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) return i;
    return -1;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static int cmp_begin(const void *a, const void *b) {
    const acm_st_tensor *x = a, *y = b;
    uint64_t u = x->offset, v = y->offset;
    return u < v ? -1 : u > v;
}

/* Reads a non-negative integer that fits int64 from a JSON value. */
static int json_i64(const json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (int64_t)x;
    return 0;
}

int acm__st_parse(acm_st_file *f, const void *buf, size_t len, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    f->map = (void *)buf;
    f->map_len = len;
    const unsigned char *p = buf;
    if (len < 8) return acm__fail(err, errlen, ACM_EFORMAT, "file too short for a header length (%zu bytes)", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > ACM_ST_MAX_HEADER)
        return acm__fail(err, errlen, ACM_EFORMAT, "header length %llu exceeds the limit of %u bytes",
                         (unsigned long long)hlen, ACM_ST_MAX_HEADER);
    if (hlen > len - 8)
        return acm__fail(err, errlen, ACM_EFORMAT, "header length %llu runs past the end of the file (%zu bytes)",
                         (unsigned long long)hlen, len);
    if (hlen < 2) return acm__fail(err, errlen, ACM_EFORMAT, "header too short (%llu bytes)", (unsigned long long)hlen);
    json_error_t je;
    json_t *h = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!h) return acm__fail(err, errlen, ACM_EFORMAT, "header is not valid JSON: %s (at byte %d)", je.text, je.position);
    f->header = h;
    if (!json_is_object(h)) {
        acm__st_close(f);
        return acm__fail(err, errlen, ACM_EFORMAT, "header is not a JSON object");
    }
    size_t data_start = 8 + (size_t)hlen, data_len = len - data_start;
    size_t n = json_object_size(h);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        acm__st_close(f);
        return acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
    }
    const char *key;
    json_t *val;
    int rc = 0;
    json_object_foreach(h, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                rc = acm__fail(err, errlen, ACM_EFORMAT, "__metadata__ is not an object");
                goto fail;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = acm__fail(err, errlen, ACM_EFORMAT, "__metadata__ value '%s' is not a string", mk);
                    goto fail;
                }
            }
            f->metadata = val;
            continue;
        }
        acm_st_tensor *t = &f->tensors[f->n];
        t->name = key;
        if (!json_is_object(val) || json_object_size(val) != 3) {
            rc = acm__fail(err, errlen, ACM_EFORMAT,
                           "tensor '%s': entry must be an object with exactly dtype, shape and data_offsets", key);
            goto fail;
        }
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo)) {
            rc = acm__fail(err, errlen, ACM_EFORMAT,
                           "tensor '%s': needs string dtype, array shape and array data_offsets", key);
            goto fail;
        }
        int dt = dtype_parse(json_string_value(jd));
        if (dt < 0) {
            rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s': unsupported dtype '%s'", key, json_string_value(jd));
            goto fail;
        }
        t->dtype = (acm_st_dtype)dt;
        size_t nd = json_array_size(js);
        if (nd > ACM_ST_MAX_DIMS) {
            rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s': %zu dimensions (at most %d)", key, nd, ACM_ST_MAX_DIMS);
            goto fail;
        }
        t->ndim = (int)nd;
        int64_t numel = 1;
        for (size_t i = 0; i < nd; i++) {
            if (json_i64(json_array_get(js, i), &t->shape[i])) {
                rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s': shape[%zu] is not a non-negative integer", key, i);
                goto fail;
            }
            if (acm__mul_i64(numel, t->shape[i], &numel)) {
                rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s': shape product overflows", key);
                goto fail;
            }
        }
        int64_t bytes;
        if (acm__mul_i64(numel, (int64_t)dtypes[dt].size, &bytes)) {
            rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s': byte size overflows", key);
            goto fail;
        }
        t->numel = numel;
        int64_t b0, b1;
        if (json_array_size(jo) != 2 || json_i64(json_array_get(jo, 0), &b0) || json_i64(json_array_get(jo, 1), &b1)) {
            rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s': data_offsets must be two non-negative integers", key);
            goto fail;
        }
        if (b1 < b0 || b1 - b0 != bytes) {
            rc = acm__fail(err, errlen, ACM_EFORMAT,
                           "tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but shape and dtype need %lld", key,
                           (long long)b0, (long long)b1, (long long)(b1 - b0), (long long)bytes);
            goto fail;
        }
        if ((uint64_t)b1 > data_len) {
            rc = acm__fail(err, errlen, ACM_EFORMAT,
                           "tensor '%s': data_offsets end %lld lies past the data section (%zu bytes)", key,
                           (long long)b1, data_len);
            goto fail;
        }
        if (b0 % (int64_t)dtypes[dt].size) {
            rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s': offset %lld is misaligned for %s", key,
                           (long long)b0, dtypes[dt].name);
            goto fail;
        }
        t->offset = (uint64_t)b0;
        f->n++;
    }
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, cmp_begin);
    /* The tensors must tile [0, data_len) exactly: no gap, no overlap. */
    {
        uint64_t pos = 0;
        size_t conv = 0;
        for (int i = 0; i < f->n; i++) {
            acm_st_tensor *t = &f->tensors[i];
            uint64_t b0 = t->offset, bytes = (uint64_t)t->numel * dtypes[t->dtype].size;
            if (b0 < pos) {
                rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor '%s' overlaps tensor '%s'", t->name,
                               f->tensors[i - 1].name);
                goto fail;
            }
            if (b0 > pos) {
                rc = acm__fail(err, errlen, ACM_EFORMAT, "gap of %llu bytes in the data section before tensor '%s'",
                               (unsigned long long)(b0 - pos), t->name);
                goto fail;
            }
            pos = b0 + bytes;
            const unsigned char *src = p + data_start + b0;
            if (t->dtype == ACM_ST_F16 || t->dtype == ACM_ST_BF16 ||
                (t->dtype == ACM_ST_F32 && ((uintptr_t)src % 4)))
                conv += (size_t)t->numel;
        }
        if (pos != data_len) {
            rc = acm__fail(err, errlen, ACM_EFORMAT, "%llu bytes after the last tensor (data section must be tiled)",
                           (unsigned long long)(data_len - pos));
            goto fail;
        }
        if (conv) {
            f->converted = malloc(conv * sizeof(float));
            if (!f->converted) {
                rc = acm__fail(err, errlen, ACM_ENOMEM, "out of memory converting tensors");
                goto fail;
            }
        }
        size_t off = 0;
        for (int i = 0; i < f->n; i++) {
            acm_st_tensor *t = &f->tensors[i];
            const unsigned char *src = p + data_start + t->offset;
            if (t->dtype == ACM_ST_F16 || t->dtype == ACM_ST_BF16) {
                float *dst = f->converted + off;
                for (int64_t j = 0; j < t->numel; j++) {
                    uint16_t v = (uint16_t)(src[2 * j] | (src[2 * j + 1] << 8));
                    dst[j] = t->dtype == ACM_ST_F16 ? f16_to_f32(v) : bf16_to_f32(v);
                }
                t->data = dst;
                off += (size_t)t->numel;
            } else if (t->dtype == ACM_ST_F32 && ((uintptr_t)src % 4)) {
                memcpy(f->converted + off, src, (size_t)t->numel * 4);
                t->data = f->converted + off;
                off += (size_t)t->numel;
            } else {
                t->data = src;
            }
        }
    }
    return 0;
fail:
    acm__st_close(f);
    return rc;
}

int acm__st_open(acm_st_file *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return acm__fail(err, errlen, ACM_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return acm__fail(err, errlen, ACM_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return acm__fail(err, errlen, ACM_EIO, "%s: mmap: %s", path, strerror(e));
        }
    }
    close(fd);
    char msg[512];
    int rc = acm__st_parse(f, map ? map : "", len, msg, sizeof msg);
    if (rc) {
        if (map) munmap(map, len);
        return acm__fail(err, errlen, rc, "%s: %s", path, msg);
    }
    f->mapped = map != NULL;
    return 0;
}

void acm__st_close(acm_st_file *f) {
    if (f->mapped) munmap(f->map, f->map_len);
    json_decref(f->header);
    free(f->tensors);
    free(f->converted);
    memset(f, 0, sizeof *f);
}

const acm_st_tensor *acm__st_find(const acm_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *acm__st_meta(const acm_st_file *f, const char *key) {
    if (!f->metadata) return NULL;
    return json_string_value(json_object_get(f->metadata, key));
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int acm__st_write(const char *path, const acm_st_out *tensors, int n, const json_t *metadata, char *err,
                  size_t errlen) {
    json_t *h = json_object();
    int64_t off = 0;
    /* Data goes out widest element type first, so that every offset is a multiple of its element size. */
    for (size_t es = 8; es >= 1; es /= 2)
    for (int i = 0; i < n; i++) {
        const acm_st_out *t = &tensors[i];
        if (dtypes[t->dtype].size != es) continue;
        json_t *shape = json_array();
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            json_array_append_new(shape, json_integer(t->shape[d]));
            if (acm__mul_i64(numel, t->shape[d], &numel)) {
                json_decref(shape);
                json_decref(h);
                return acm__fail(err, errlen, ACM_EINVAL, "%s: tensor '%s': shape overflows", path, t->name);
            }
        }
        int64_t bytes = numel * (int64_t)dtypes[t->dtype].size;
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtypes[t->dtype].name, "shape", shape, "data_offsets",
                              (json_int_t)off, (json_int_t)(off + bytes));
        if (!e || json_object_get(h, t->name)) {
            json_decref(e);
            json_decref(h);
            return acm__fail(err, errlen, ACM_EINVAL, "%s: tensor '%s': duplicate or invalid", path, t->name);
        }
        json_object_set_new(h, t->name, e);
        off += bytes;
    }
    if (metadata) json_object_set(h, "__metadata__", (json_t *)metadata);
    char *js = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!js) return acm__fail(err, errlen, ACM_ENOMEM, "%s: cannot serialise header", path);
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        free(js);
        return acm__fail(err, errlen, ACM_EINVAL, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(js);
        return acm__fail(err, errlen, ACM_EIO, "%s: %s", tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, js, jl);
    for (size_t i = jl; i < padded && !bad; i++) bad = write_all(fd, " ", 1);
    free(js);
    for (size_t es = 8; es >= 1 && !bad; es /= 2)
    for (int i = 0; i < n && !bad; i++) {
        if (dtypes[tensors[i].dtype].size != es) continue;
        int64_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++) numel *= tensors[i].shape[d];
        bad = write_all(fd, tensors[i].data, (size_t)numel * dtypes[tensors[i].dtype].size);
    }
    if (bad || fsync(fd)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return acm__fail(err, errlen, ACM_EIO, "%s: write: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return acm__fail(err, errlen, ACM_EIO, "%s: rename: %s", path, strerror(e));
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
