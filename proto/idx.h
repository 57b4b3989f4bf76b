/*
 * idx.h — IDX data files (the MNIST / Fashion-MNIST format), optionally gzip-compressed, parsed from a buffer.
 *
 * The format (LeCun, "THE MNIST DATABASE"), field by field, all integers big-endian:
 *   bytes 0..1   zero
 *   byte  2      element type: 0x08 unsigned byte (the only type accepted here; the others are 0x09 s8, 0x0B i16,
 *                0x0C i32, 0x0D f32, 0x0E f64)
 *   byte  3      number of dimensions n (1..4 accepted)
 *   bytes 4..    n dimension sizes, 32-bit unsigned each
 *   then         the elements, row-major, exactly Π sizes of them (trailing bytes are an error)
 * Fashion-MNIST: images have magic 0x00000803 and dims [count, 28, 28]; labels 0x00000801 and dims [count].
 *
 * A buffer that starts with the gzip magic (1f 8b) is inflated first (zlib), to at most ACM_IDX_MAX_BYTES.
 * Pure functions: no I/O, no globals; the caller reads the file. Errors are returned as negative codes with a message
 * in the caller's buffer, prefixed by the `name` the caller gives (normally the file's path).
 */
#ifndef ACM_PROTO_IDX_H
#define ACM_PROTO_IDX_H

#include <stddef.h>
#include <stdint.h>

#define ACM_IDX_MAX_DIMS 4
#define ACM_IDX_MAX_BYTES ((size_t)1 << 30) /* 1 GiB of elements: far above any IDX data set in use */

enum { ACM_IDX_EFORMAT = -1, ACM_IDX_ENOMEM = -2, ACM_IDX_EGZIP = -3 };

typedef struct {
    int ndim;
    uint32_t dims[ACM_IDX_MAX_DIMS];
    size_t count;  /* Π dims */
    uint8_t *data; /* [count], malloc'd, owned: acm_idx_free */
} acm_idx;

/* Parses buf[0..len) (raw or gzip). expect_ndim: required number of dimensions, or 0 for any. Returns 0 or a negative
 * ACM_IDX_E* code with "NAME: problem" in err; out is zeroed on failure. */
int acm_idx_parse(acm_idx *out, const uint8_t *buf, size_t len, int expect_ndim, const char *name, char *err,
                  size_t errlen);
void acm_idx_free(acm_idx *x);

/* Checks that an image file and a label file belong together (same count, labels < num_classes, images
 * [count, rows, cols] with the given rows and cols: 0 accepts any). */
int acm_idx_check_pair(const acm_idx *images, const acm_idx *labels, int rows, int cols, int num_classes,
                       const char *name, char *err, size_t errlen);

#endif
