/*
 * fuzz_audio.c — audio containers (WAV, FLAC, OGG, sniffed) and the raw L16 stream pushed in pieces, as the server's
 * transcription path decodes them, with small limits. Invariants: output sample counts within the stated bounds,
 * samples finite.
 */
#include <math.h>

#include "audio.h"
#include "fuzz.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    acm_audio_params p = {.max_samples = 16000 * 4, .max_buffered = 1 << 20};
    char err[256];
    float *out = NULL;
    size_t n = 0;
    if (acm_audio_decode(NULL, data, size, p, &out, &n, err, sizeof err) == 0)
        for (size_t i = 0; i < n; i++) FUZZ_CHECK(isfinite(out[i]));
    free(out);
    /* the first byte picks a raw format; the rest is pushed in chunks of 1 + byte 1 */
    if (size < 2) return 0;
    acm_audio_format f;
    const char *types[] = {"audio/L16;rate=8000", "audio/x-raw;format=S16LE;rate=22050;channels=2", "audio/L16;rate=16000;channels=3",
                           "audio/wav"};
    if (acm_audio_parse_type(&f, types[data[0] % 4], err, sizeof err)) return 0;
    acm_audio_stream *s = acm_audio_stream_create(&f, p, err, sizeof err);
    if (!s) return 0;
    const size_t chunk = 1 + data[1];
    int rc = 0;
    for (size_t o = 2; o < size && !rc; o += chunk) {
        const size_t k = size - o < chunk ? size - o : chunk;
        const size_t cap = acm_audio_stream_max_out(s, k);
        float *buf = malloc(sizeof(float) * (cap ? cap : 1));
        size_t got = 0;
        rc = acm_audio_stream_push(s, data + o, k, buf, cap, &got, err, sizeof err);
        FUZZ_CHECK(got <= cap);
        free(buf);
    }
    if (!rc) {
        const size_t cap = acm_audio_stream_max_finish(s);
        float *buf = malloc(sizeof(float) * (cap ? cap : 1));
        size_t got = 0;
        if (acm_audio_stream_finish(s, buf, cap, &got, err, sizeof err) == 0) FUZZ_CHECK(got <= cap);
        free(buf);
    }
    acm_audio_stream_free(s);
    return 0;
}
