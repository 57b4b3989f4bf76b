/*
 * fuzz_image.c — PNG, JPEG and PNM decoding: probe, then decode to a [C, S, S] tensor, as the server does (the
 * pixel limit checked from the header first). The first byte picks the output: bit 0 RGB (else grey), bit 1
 * letterbox (else stretch), bit 2 a white background (else black); the rest is the file. A decode must stay within
 * the memory bound computed from the header (acm_image_decode_bytes, given as max_decode_bytes: never refused here,
 * the bound is the decoder's own).
 */
#include <math.h>

#include "fuzz.h"
#include "image.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int C = data[0] & 1 ? 3 : 1;
    const acm_image_fit fit = data[0] & 2 ? ACM_IMAGE_FIT_LETTERBOX : ACM_IMAGE_FIT_STRETCH;
    const float bg = data[0] & 4 ? 255.0f : 0.0f;
    data++, size--;
    acm_image_info info;
    char err[256];
    if (acm_image_probe(&info, data, size, err, sizeof err)) return 0;
    FUZZ_CHECK(info.width > 0 && info.height > 0 && info.channels >= 1 && info.channels <= 4);
    if ((int64_t)info.width * info.height > (1 << 20)) return 0; /* the server refuses these before decoding */
    acm_image_params p = {.size = 16, .channels = C, .mean = {0.5f, 0.5f, 0.5f}, .std = {0.25f, 0.25f, 0.25f},
                          .max_pixels = 1 << 20, .fit = fit, .background = {bg, bg, bg}};
    p.max_decode_bytes = acm_image_decode_bytes(&info, &p);
    FUZZ_CHECK(p.max_decode_bytes > 0);
    float out[3 * 16 * 16];
    if (acm_image_to_tensor(out, data, size, &p, err, sizeof err) == 0)
        for (int i = 0; i < C * 16 * 16; i++) FUZZ_CHECK(isfinite(out[i]) && out[i] >= -2.001f && out[i] <= 2.001f);
    return 0;
}
