/*
 * fuzz_idx.c — IDX data files (raw and gzip), then the image/label pairing check against itself.
 */
#include "fuzz.h"
#include "idx.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    acm_idx x;
    char err[256];
    if (acm_idx_parse(&x, data, size, 0, "fuzz", err, sizeof err) == 0) {
        size_t n = 1;
        for (int d = 0; d < x.ndim; d++) n *= x.dims[d];
        FUZZ_CHECK(n == x.count && x.ndim >= 1 && x.ndim <= ACM_IDX_MAX_DIMS);
        volatile unsigned sum = 0;
        for (size_t i = 0; i < x.count; i++) sum += x.data[i];
        (void)sum;
        acm_idx_check_pair(&x, &x, 0, 0, 10, "fuzz", err, sizeof err);
        acm_idx_free(&x);
    }
    return 0;
}
