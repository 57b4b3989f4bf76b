/*
 * fuzz_safetensors.c — the safetensors container (engine/safetensors.h): header length, JSON header, every tensor's
 * dtype, shape and offsets against the buffer. Invariants: every accepted tensor lies inside the buffer and its
 * elements can be read.
 */
#include <string.h>

#include "fuzz.h"
#include "safetensors.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    /* the parser keeps pointers into the buffer, which must outlive the file object: a private copy */
    void *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    acm_st_file f;
    char err[256];
    if (acm__st_parse(&f, buf, size, err, sizeof err) == 0) {
        for (int i = 0; i < f.n; i++) {
            const acm_st_tensor *t = &f.tensors[i];
            int64_t n = 1;
            for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
            FUZZ_CHECK(n == t->numel && (n == 0 || t->data));
            const size_t es = t->dtype == ACM_ST_F16 || t->dtype == ACM_ST_BF16 ? 4 : acm__st_dtype_size(t->dtype);
            volatile uint8_t x = 0;
            for (int64_t k = 0; k < n * (int64_t)es; k += 1 + n * (int64_t)es / 64) x ^= ((const uint8_t *)t->data)[k];
            if (n) x ^= ((const uint8_t *)t->data)[n * (int64_t)es - 1];
            (void)x;
            FUZZ_CHECK(acm__st_find(&f, t->name) != NULL);
        }
        acm__st_close(&f);
    }
    free(buf);
    return 0;
}
