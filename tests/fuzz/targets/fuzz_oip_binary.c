/*
 * fuzz_oip_binary.c — the OIP binary tensor extension: the input's first two bytes (little-endian) are the JSON
 * header length (Inference-Header-Content-Length), the rest the body. Also writes a binary response from the
 * accepted request's first input and checks its framing.
 */
#include <string.h>

#include "fuzz.h"
#include "oip.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const size_t json_len = (size_t)data[0] | (size_t)data[1] << 8;
    const char *body = (const char *)data + 2;
    const size_t len = size - 2;
    const acm_oip_limits lim = {.max_elements = 1 << 16};
    acm_oip_request r;
    acm_oip_peek p;
    char err[256];
    if (acm_oip_parse_request_bin(&r, body, len, json_len, &lim, err, sizeof err) == 0) {
        FUZZ_CHECK(json_len <= len);
        FUZZ_CHECK(acm_oip_peek_request(&p, body, json_len, err, sizeof err) == 0);
        if (r.n_inputs > 0 && r.inputs[0].count > 0 && r.inputs[0].count <= 4096) {
            const int n = (int)r.inputs[0].count;
            float *lg = malloc(sizeof(float) * (size_t)n);
            for (int i = 0; i < n; i++) lg[i] = (float)r.inputs[0].data[i];
            const char *labels[1] = {r.inputs[0].name};
            size_t jl = 0, total = 0;
            char *out = acm_oip_response_bin("m", "v", r.id, NULL, lg, 1, n, labels,
                                             acm_oip_output_binary(&r, "logits"), acm_oip_output_binary(&r, "label"), &jl, &total);
            if (out) {
                FUZZ_CHECK(jl <= total);
                FUZZ_CHECK(total - jl == (acm_oip_output_binary(&r, "logits") ? 4 * (size_t)n : 0) +
                                             (acm_oip_output_binary(&r, "label") ? 4 + strlen(labels[0]) : 0));
            }
            free(out);
            free(lg);
        }
        acm_oip_request_free(&r);
    }
    return 0;
}
