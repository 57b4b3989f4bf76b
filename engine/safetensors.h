/*
 * safetensors.h — strict reader and atomic writer of safetensors files. Internal to libacm (and train/, tests).
 *
 * The format (https://github.com/huggingface/safetensors), field by field:
 *   bytes 0..7      N, the header length, unsigned 64-bit little-endian
 *   bytes 8..8+N    the header: a UTF-8 JSON object. Each key except "__metadata__" names a tensor:
 *                     {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 *                   offsets are relative to the start of the data section, end exclusive.
 *                   "__metadata__", if present, is an object whose values are all strings.
 *                   The header may end in spaces (writers pad it so that the data section is aligned).
 *   bytes 8+N..     the data section: every tensor's elements, little-endian, row-major.
 *
 * What this reader rejects (each with a message naming the tensor or field): a header length past the end of the
 * file or above 100 MiB; malformed JSON or a non-object header; duplicate keys; a tensor entry without dtype, shape or
 * data_offsets, or with other fields; an unknown dtype; more than 8 dimensions, negative dimensions, or a shape whose
 * byte size overflows int64; offsets that disagree with the shape, point outside the data section, overlap, or leave
 * gaps (the tensors must tile the data section exactly); a tensor whose offset is not a multiple of its element size;
 * non-string metadata values.
 *
 * Accepted dtypes: F32, F16, BF16 (both converted to F32 at load), I32, I64, U8. F32 data whose address in the
 * mapping is not 4-byte aligned (an unpadded header) is copied to aligned memory. Everything else points into the
 * read-only mapping, which lives as long as the file object.
 */
#ifndef ACM_SAFETENSORS_H
#define ACM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define ACM_ST_MAX_DIMS 8
#define ACM_ST_MAX_HEADER (100u << 20)

typedef enum { ACM_ST_F32 = 0, ACM_ST_F16, ACM_ST_BF16, ACM_ST_I32, ACM_ST_I64, ACM_ST_U8 } acm_st_dtype;

typedef struct {
    const char *name;  /* owned by the file object */
    acm_st_dtype dtype; /* as stored; data is F32 after conversion for F16/BF16 */
    int ndim;
    int64_t shape[ACM_ST_MAX_DIMS];
    int64_t numel;
    uint64_t offset;   /* begin, relative to the data section */
    const void *data;  /* F32 for F32/F16/BF16; else the stored type */
} acm_st_tensor;

typedef struct {
    void *map;          /* the mapping (or the caller's buffer for acm__st_parse) */
    size_t map_len;
    int mapped;         /* 1 if map is ours to munmap */
    acm_st_tensor *tensors; /* sorted by data offset */
    int n;
    json_t *metadata;   /* the "__metadata__" object or NULL (borrowed reference into header) */
    json_t *header;     /* the whole parsed header (owned) */
    float *converted;   /* one allocation holding converted/realigned tensors */
} acm_st_file;

/* Opens and validates path. On failure returns a negative ACM_E* code and writes "PATH: problem" into err. */
int acm__st_open(acm_st_file *f, const char *path, char *err, size_t errlen);
/* Validates an in-memory file (the buffer must outlive f). For tests and fuzzing. */
int acm__st_parse(acm_st_file *f, const void *buf, size_t len, char *err, size_t errlen);
void acm__st_close(acm_st_file *f);

const acm_st_tensor *acm__st_find(const acm_st_file *f, const char *name);
/* The value of a "__metadata__" key, or NULL. */
const char *acm__st_meta(const acm_st_file *f, const char *key);

/* One tensor to write. data holds numel elements of dtype (F32, I32, I64 or U8). */
typedef struct {
    const char *name;
    acm_st_dtype dtype;
    int ndim;
    int64_t shape[ACM_ST_MAX_DIMS];
    const void *data;
} acm_st_out;

/* Writes a safetensors file atomically (PATH.tmp, fsync, rename, fsync of the folder). metadata: NULL or a JSON
 * object of string values that becomes "__metadata__". The header is padded with spaces to a multiple of 8 bytes. */
int acm__st_write(const char *path, const acm_st_out *tensors, int n, const json_t *metadata, char *err,
                  size_t errlen);

size_t acm__st_dtype_size(acm_st_dtype d);
const char *acm__st_dtype_name(acm_st_dtype d);

#endif
