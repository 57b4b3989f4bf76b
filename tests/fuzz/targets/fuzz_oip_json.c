/*
 * fuzz_oip_json.c — OIP v2 JSON requests: the full parse and the admission peek on the same bytes. Invariants: an
 * accepted request has consistent tensors (count = product of the shape, data for every element); when both accept,
 * the peek's parameters equal the full parse's, and so does the batch dimension of every input as it is found by
 * name (when it is a positive integer); a request the full parse accepts is never refused by the peek, except for a
 * "parameters" value over ACM_OIP_MAX_PARAMS_BYTES (a limit of the server's admission only).
 */
#include <string.h>

#include "fuzz.h"
#include "oip.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    const acm_oip_limits lim = {.max_elements = 1 << 16};
    acm_oip_request r;
    acm_oip_peek p;
    char err[256];
    const int rc = acm_oip_parse_request(&r, (const char *)data, size, &lim, err, sizeof err);
    const int pk = acm_oip_peek_request(&p, (const char *)data, size, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(pk == 0 || pk == ACM_OIP_ETOOBIG);
        if (pk == 0) FUZZ_CHECK(memcmp(&p.par, &r.par, sizeof p.par) == 0);
        for (int i = 0; i < r.n_inputs; i++) {
            size_t n = 1;
            for (int d = 0; d < r.inputs[i].ndim; d++) n *= (size_t)r.inputs[i].shape[d];
            FUZZ_CHECK(n == r.inputs[i].count && (n == 0 || r.inputs[i].data));
            const acm_oip_tensor *t = acm_oip_find_input(&r, r.inputs[i].name);
            if (pk == 0 && t->ndim > 0)
                FUZZ_CHECK(acm_oip_peek_items(&p, r.inputs[i].name) == (t->shape[0] > 0 ? t->shape[0] : 1));
            volatile double sum = 0;
            for (size_t k = 0; k < n; k++) sum += r.inputs[i].data[k];
            (void)sum;
        }
        acm_oip_request_free(&r);
    }
    return 0;
}
