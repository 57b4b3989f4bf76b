/*
 * test_asr.c — POST /v1/models/{m}/transcribe (server/decode.c, batch.c, respond.c) on the golden random-weight speech
 * model: every format (WAV, FLAC, Ogg, audio/L16, audio/x-raw S16LE, sniffed octet-stream), plain and chunked
 * uploads, the answer equal to the engine's own streams on the same decoded audio (text, words, tokens, FLOPs),
 * budgets, concurrent requests each getting their own transcript, bad audio (truncated, unknown format, zero length,
 * wrong declared rate, channels, over each limit) as 4xx with {"error": ...}, a client leaving mid-upload (freed, not
 * run), and the acm_asr_* metrics. Bodies decoded as they arrive (WAV, raw PCM): plain, odd chunked pieces and paced
 * slower than real time, all equal to the whole file and with chunks run before the last byte; a client leaving after
 * chunks ran and while a worker holds a job; bad bodies while streaming; concurrent paced uploads. HTTP against the
 * engine's batch path (acm_worker_run). Audio is made here: a deterministic signal written with libsndfile or by hand.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sndfile.h>

#include "acm.h"
#include "audio.h"
#include "ctc.h"
#include "server/harness.h"

#define MODEL "tests/golden/speech_a.safetensors"

static void start(th_acmd *s, const char *const *args) {
    cr_assert_eq(th_acmd_start(s, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(s, 30), 0, "acmd not ready");
}

/* n frames of c channels of s16: a chirp plus a little noise, different for every seed. */
static int16_t *signal_s16(size_t n, int c, int rate, unsigned seed) {
    int16_t *x = malloc(n * c * sizeof *x);
    uint32_t r = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        const double t = (double)i / rate, f = 150 + 90 * seed + 400 * t;
        for (int ch = 0; ch < c; ch++) {
            r = r * 1664525u + 1013904223u;
            const double v = 0.5 * sin(2 * M_PI * f * t + ch) * (0.6 + 0.4 * sin(2 * M_PI * 1.5 * t)) +
                             0.05 * ((double)(r >> 8) / (1 << 24) - 0.5);
            x[i * c + ch] = (int16_t)lrint(v * 32767);
        }
    }
    return x;
}

static void put16(uint8_t *p, unsigned v) { p[0] = v & 255, p[1] = v >> 8 & 255; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }

/* A 16-bit PCM WAV by hand (so that header fields can be made wrong): data_size declared, `have` bytes of it. */
static uint8_t *wav_bytes(const int16_t *x, size_t n, int c, int rate, uint32_t declared, size_t *len) {
    const size_t data = n * c * 2;
    uint8_t *b = calloc(1, 44 + data);
    memcpy(b, "RIFF", 4), put32(b + 4, (uint32_t)(36 + data)), memcpy(b + 8, "WAVEfmt ", 8);
    put32(b + 16, 16), put16(b + 20, 1), put16(b + 22, (unsigned)c), put32(b + 24, (uint32_t)rate);
    put32(b + 28, (uint32_t)(rate * c * 2)), put16(b + 32, (unsigned)(c * 2)), put16(b + 34, 16);
    memcpy(b + 36, "data", 4), put32(b + 40, declared ? declared : (uint32_t)data);
    for (size_t i = 0; i < n * c; i++) put16(b + 44 + 2 * i, (uint16_t)x[i]);
    *len = 44 + data;
    return b;
}

/* FLAC or Ogg/Vorbis through libsndfile (a file in /tmp, read back). */
static uint8_t *sf_bytes(const int16_t *x, size_t n, int rate, int format, size_t *len) {
    char path[] = "/tmp/acm-asr-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = format};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    cr_assert(f, "libsndfile cannot write format 0x%x: %s", format, sf_strerror(NULL));
    cr_assert_eq(sf_write_short(f, x, (sf_count_t)n), (sf_count_t)n);
    sf_close(f);
    uint8_t *b = (uint8_t *)th_slurp(path, len);
    unlink(path);
    cr_assert(b);
    return b;
}

/* What the engine makes of the same audio: the body decoded by proto/audio, run through one stream chunk by chunk
 * (acm_worker_run_streams), its greedy CTC decoder's text and words, tokens and FLOPs. */
typedef struct {
    char text[4096];
    int n_words;
    double start[256], end[256];
    int64_t tokens;
    double flops, seconds;
} ref_t;

/* As reference, keeping the logits [tokens, K] (malloc'd) when logits_out is not NULL, with K in *K_out. */
static void reference_lg(ref_t *out, const char *type, const uint8_t *body, size_t len, acm_policy pol,
                         float **logits_out, int *K_out) {
    char e[512];
    acm_audio_format f;
    cr_assert_eq(acm_audio_parse_type(&f, type, e, sizeof e), 0, "%s", e);
    float *pcm;
    size_t n;
    cr_assert_eq(acm_audio_decode(&f, body, len, acm_audio_default_params(), &pcm, &n, e, sizeof e), 0, "%s", e);
    acm_model *m = acm_model_load(MODEL, e, sizeof e);
    cr_assert(m, "%s", e);
    acm_worker *w = acm_worker_new(m, acm_worker_default_params(), e, sizeof e);
    acm_stream *st = acm_stream_new(m, e, sizeof e);
    cr_assert(w && st, "%s", e);
    const acm_config *cfg = acm_model_config(m);
    float *lg = malloc(sizeof(float) * cfg->chunk * cfg->num_classes);
    memset(out, 0, sizeof *out);
    size_t pos = 0;
    int fin = 0;
    for (;;) {
        while (!acm_stream_ready(st) && pos < n) pos += (size_t)acm_stream_feed(st, pcm + pos, n - pos, e, sizeof e);
        if (!acm_stream_ready(st) && !fin) acm_stream_finish(st), fin = 1;
        if (!acm_stream_ready(st)) break;
        acm_result r = {.logits = lg};
        cr_assert_eq(acm_worker_run_streams(w, &st, &pol, &r, 1, e, sizeof e), 0, "%s", e);
        if (logits_out) {
            const size_t K = (size_t)cfg->num_classes;
            *logits_out = realloc(out->tokens ? *logits_out : NULL, sizeof(float) * (size_t)(out->tokens + r.tokens) * K);
            memcpy(*logits_out + (size_t)out->tokens * K, lg, sizeof(float) * (size_t)r.tokens * K);
            *K_out = (int)K;
        }
        out->tokens += r.tokens, out->flops += r.flops;
    }
    acm_ctc_result cr;
    acm_ctc_result_get(acm_stream_decoder(st), ACM_CTC_FINAL, &cr);
    int l = cr.len;
    while (l > 0 && cr.text[l - 1] == ' ') l--;
    cr_assert_lt(l, (int)sizeof out->text);
    memcpy(out->text, cr.text, (size_t)l);
    out->n_words = cr.n_words < 256 ? cr.n_words : 256;
    for (int i = 0; i < out->n_words; i++) out->start[i] = cr.words[i].start_s, out->end[i] = cr.words[i].end_s;
    out->seconds = (double)n / ACM_AUDIO_RATE;
    free(lg), free(pcm);
    acm_stream_free(st), acm_worker_free(w), acm_model_free(m);
}

static void reference(ref_t *out, const char *type, const uint8_t *body, size_t len, acm_policy pol) {
    reference_lg(out, type, body, len, pol, NULL, NULL);
}

/* The answer matches the engine's: text, words and their times, tokens, FLOPs and the audio's length. */
static void expect_same(json_t *j, const ref_t *ref) {
    cr_expect_str_eq(json_string_value(json_object_get(j, "text")), ref->text);
    cr_expect_eq(json_integer_value(json_object_get(j, "tokens")), ref->tokens);
    cr_expect_eq(json_real_value(json_object_get(j, "flops")), ref->flops, "flops %.17g vs the engine's %.17g",
                 json_real_value(json_object_get(j, "flops")), ref->flops);
    cr_expect_float_eq(json_real_value(json_object_get(j, "audio_seconds")), ref->seconds, 1e-9);
    json_t *words = json_object_get(j, "words");
    cr_assert_eq((int)json_array_size(words), ref->n_words);
    for (int i = 0; i < ref->n_words; i++) {
        json_t *w = json_array_get(words, (size_t)i);
        cr_expect_float_eq(json_real_value(json_object_get(w, "start")), ref->start[i], 1e-9);
        cr_expect_float_eq(json_real_value(json_object_get(w, "end")), ref->end[i], 1e-9);
        const double c = json_real_value(json_object_get(w, "confidence"));
        cr_expect(c >= 0 && c <= 1);
    }
}

static json_t *transcribe(int port, const char *type, const void *body, size_t len, const char *extra, int want) {
    char h[512];
    snprintf(h, sizeof h, "%s%s%s", type ? "Content-Type: " : "", type ? type : "", type ? "\r\n" : "");
    if (extra) strncat(h, extra, sizeof h - strlen(h) - 1);
    th_resp r;
    cr_assert_eq(th_http(port, "POST", "/v1/models/s/transcribe", h, body, len, &r), 0);
    cr_assert_eq(r.status, want, "status %d, body %s", r.status, r.body);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    return j;
}

static acm_policy argmax(void) { return acm_policy_default(); }

Test(asr, every_format_matches_the_engine, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 3;
    int16_t *x = signal_s16(n, 1, 16000, 1);
    size_t wl, fl, ol;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl), *flac = sf_bytes(x, n, 16000, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, &fl);
    uint8_t *ogg = sf_bytes(x, n, 16000, SF_FORMAT_OGG | SF_FORMAT_VORBIS, &ol);
    uint8_t *be = malloc(n * 2), *le = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        const uint16_t v = (uint16_t)x[i];
        be[2 * i] = v >> 8, be[2 * i + 1] = v & 255, le[2 * i] = v & 255, le[2 * i + 1] = v >> 8;
    }
    ref_t ref;
    reference(&ref, "audio/wav", wav, wl, argmax());
    cr_assert_gt(ref.tokens, 40);
    /* lossless 16 kHz formats decode to the same samples: the same answer, to the bit */
    const struct {
        const char *type;
        const uint8_t *b;
        size_t len;
    } same[] = {{"audio/wav", wav, wl},
                {"audio/x-wav", wav, wl},
                {"audio/L16;rate=16000", be, n * 2},
                {"audio/x-raw;format=S16LE;rate=16000", le, n * 2},
                {"audio/flac", flac, fl},
                {"application/octet-stream", wav, wl},
                {NULL, flac, fl}};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        json_t *j = transcribe(s.port, same[i].type, same[i].b, same[i].len, NULL, 200);
        cr_expect_str_eq(json_string_value(json_object_get(j, "model_version")), json_string_value(json_object_get(j, "model_version")));
        expect_same(j, &ref);
        cr_expect(json_is_null(json_object_get(j, "budget_requested")));
        cr_expect_gt(json_real_value(json_object_get(j, "real_time_factor")), 0);
        cr_expect(json_object_get(json_object_get(j, "timing"), "total_ms"));
        json_decref(j);
    }
    /* Ogg/Vorbis is lossy: its own reference */
    ref_t ro;
    reference(&ro, "audio/ogg", ogg, ol, argmax());
    json_t *j = transcribe(s.port, "audio/ogg", ogg, ol, NULL, 200);
    expect_same(j, &ro);
    json_decref(j);
    /* stereo at 44.1 kHz: mixed down and resampled as proto/audio does it */
    int16_t *x2 = signal_s16(44100 * 2, 2, 44100, 2);
    size_t l2;
    uint8_t *w2 = wav_bytes(x2, 44100 * 2, 2, 44100, 0, &l2);
    ref_t r2;
    reference(&r2, "audio/wav", w2, l2, argmax());
    j = transcribe(s.port, "audio/wav", w2, l2, NULL, 200);
    expect_same(j, &r2);
    json_decref(j);
    /* metrics: the seconds of every 200 so far */
    const double want = ref.seconds * 7 + ro.seconds + r2.seconds;
    cr_expect_float_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), want, 1e-6);
    cr_expect_gt(th_metric(s.port, "acm_asr_compute_seconds_total{model=\"s\"}"), 0);
    cr_expect_eq(th_metric(s.port, "acm_asr_budget_realised_ratio_count{model=\"s\"}"), 9);
    free(x), free(wav), free(flac), free(ogg), free(be), free(le), free(x2), free(w2);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* A budget ceiling runs under cap: the engine's cap at that beta, realised at most beta. */
Test(asr, budget_as_for_images, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(n, 1, 16000, 3);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    acm_policy cap = acm_policy_default();
    cap.kind = ACM_POLICY_CAP, cap.beta = 0.5f;
    ref_t ref;
    reference(&ref, "audio/wav", wav, wl, cap);
    json_t *j = transcribe(s.port, "audio/wav", wav, wl, "X-Compute-Budget: 0.5\r\n", 200);
    expect_same(j, &ref);
    cr_expect_float_eq(json_real_value(json_object_get(j, "budget_requested")), 0.5, 1e-12);
    cr_expect_float_eq(json_real_value(json_object_get(j, "budget_applied")), 0.5, 1e-12);
    cr_expect_leq(json_real_value(json_object_get(j, "budget_realised")), 0.5 + 1e-9);
    cr_expect_str_eq(json_string_value(json_object_get(j, "policy")), "cap");
    json_decref(j);
    /* below the model's floor (beta_min 0.25): raised and said so */
    j = transcribe(s.port, "audio/wav", wav, wl, "X-Compute-Budget: 0.1\r\n", 200);
    cr_expect(json_is_true(json_object_get(j, "budget_raised")));
    json_decref(j);
    /* a bad budget header is refused before the body */
    j = transcribe(s.port, "audio/wav", wav, wl, "X-Compute-Budget: 2\r\n", 400);
    cr_expect(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* A chunked upload (no Content-Length), in uneven pieces, gets the same answer as the plain one. */
Test(asr, chunked_upload, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(n, 1, 16000, 4);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    ref_t ref;
    reference(&ref, "audio/wav", wav, wl, argmax());
    int fd = th_connect(s.port);
    cr_assert(fd >= 0);
    const char *hd = "POST /v1/models/s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    cr_assert_eq(th_send_all(fd, hd, strlen(hd)), 0);
    for (size_t off = 0, k = 1; off < wl; k++) {
        size_t piece = 7 + k * k * 13 % 9000;
        if (piece > wl - off) piece = wl - off;
        char sz[32];
        snprintf(sz, sizeof sz, "%zx\r\n", piece);
        cr_assert_eq(th_send_all(fd, sz, strlen(sz)), 0);
        cr_assert_eq(th_send_all(fd, wav + off, piece), 0);
        cr_assert_eq(th_send_all(fd, "\r\n", 2), 0);
        off += piece;
    }
    cr_assert_eq(th_send_all(fd, "0\r\n\r\n", 5), 0);
    th_resp r;
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    expect_same(j, &ref);
    json_decref(j);
    th_resp_free(&r);
    free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* Bad audio: a clear 4xx with {"error": ...} naming the problem, and nothing run. */
Test(asr, bad_audio_is_refused, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--model", "v=tests/golden/vit_a.safetensors", "--workers",
                                    "1", "--max-audio-seconds", "2", "--max-body-bytes", "200000", NULL});
    const size_t n = 16000;
    int16_t *x = signal_s16(n, 1, 16000, 5);
    size_t wl, wavl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wavl);
    th_resp r;
    /* unknown format: 415 naming the accepted ones */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/mpeg\r\n", wav, wavl, &r), 0);
    th_expect_error(&r, 415, "audio/wav");
    th_resp_free(&r);
    /* bytes that are no container, sniffed */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: application/octet-stream\r\n",
                         "hello, this is not audio", 24, &r), 0);
    th_expect_error(&r, 415, "audio/wav");
    th_resp_free(&r);
    /* zero length */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/wav\r\n", "", 0, &r), 0);
    th_expect_error(&r, 400, NULL);
    th_resp_free(&r);
    /* truncated WAV: the header declares more data than the body holds */
    uint8_t *tr = wav_bytes(x, n, 1, 16000, (uint32_t)(n * 2 + 1000), &wl);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/wav\r\n", tr, wl, &r), 0);
    th_expect_error(&r, 400, "truncated");
    th_resp_free(&r);
    /* a raw body cut inside a frame */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/L16;rate=16000;channels=2\r\n",
                         tr + 44, 1001, &r), 0);
    th_expect_error(&r, 400, "frame");
    th_resp_free(&r);
    /* wrong declared rate: outside what is served, in the media type and in a WAV header; no rate on raw PCM */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/L16;rate=1000\r\n", tr + 44,
                         1000, &r), 0);
    th_expect_error(&r, 400, "rate");
    th_resp_free(&r);
    uint8_t *lo = wav_bytes(x, 2000, 1, 1000, 0, &wl);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/wav\r\n", lo, wl, &r), 0);
    th_expect_error(&r, 400, "sample rate");
    th_resp_free(&r);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/L16\r\n", tr + 44, 1000, &r), 0);
    th_expect_error(&r, 400, "rate");
    th_resp_free(&r);
    /* a WAV file declared as raw PCM (its header would be read as samples) */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/x-raw;format=S16LE;rate=16000\r\n",
                         wav, wavl, &r), 0);
    th_expect_error(&r, 400, "WAV file");
    th_resp_free(&r);
    /* channels */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/L16;rate=16000;channels=9\r\n",
                         tr + 44, 1008, &r), 0);
    th_expect_error(&r, 400, "channels");
    th_resp_free(&r);
    /* over --max-audio-seconds (2 s): 413, whatever the body's size */
    int16_t *x3 = signal_s16(8000 * 3, 1, 8000, 6);
    uint8_t *lng = wav_bytes(x3, 8000 * 3, 1, 8000, 0, &wl);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/wav\r\n", lng, wl, &r), 0);
    th_expect_error(&r, 413, "max-audio-seconds");
    th_resp_free(&r);
    /* over --max-body-bytes: from Content-Length, and while a chunked body arrives */
    uint8_t *big = calloc(1, 250000);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/L16;rate=48000\r\n", big, 250000, &r), 0);
    th_expect_error(&r, 413, "limit");
    th_resp_free(&r);
    int fd = th_connect(s.port);
    const char *hd = "POST /v1/models/s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/L16;rate=48000\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    cr_assert_eq(th_send_all(fd, hd, strlen(hd)), 0);
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(th_send_all(fd, "c350\r\n", 6), 0); /* 50000 bytes */
        cr_assert_eq(th_send_all(fd, big, 50000), 0);
        cr_assert_eq(th_send_all(fd, "\r\n", 2), 0);
    }
    th_send_all(fd, "0\r\n\r\n", 5);
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    th_expect_error(&r, 413, "limit");
    th_resp_free(&r);
    /* the wrong kind of model for the route, both ways */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/v/transcribe", "Content-Type: audio/wav\r\n", wav, wavl, &r), 0);
    th_expect_error(&r, 400, "not a speech model");
    th_resp_free(&r);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/classify", "Content-Type: image/png\r\n", wav, wavl, &r), 0);
    th_expect_error(&r, 400, "transcribe");
    th_resp_free(&r);
    /* nothing of these ran */
    cr_expect_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), 0);
    cr_expect_eq(th_metric(s.port, "acm_flops_executed_total{model=\"s\"}"), 0);
    free(x), free(wav), free(tr), free(lo), free(x3), free(lng), free(big);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* A client that leaves in the middle of its upload: its bytes are freed and nothing runs; the server goes on. */
Test(asr, client_leaving_mid_upload_is_freed_not_run, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(n, 1, 16000, 7);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    for (int chunked = 0; chunked < 2; chunked++) {
        int fd = th_connect(s.port);
        char hd[256];
        snprintf(hd, sizeof hd, "POST /v1/models/s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n%s\r\n",
                 chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: 64044\r\n");
        cr_assert_eq(th_send_all(fd, hd, strlen(hd)), 0);
        if (chunked) th_send_all(fd, "4000\r\n", 6);
        cr_assert_eq(th_send_all(fd, wav, 0x4000), 0);
        /* the server holds the bytes it has read (Content-Length: all of them, reserved) */
        const double t0 = th_now();
        while (th_metric(s.port, "\nacm_buffered_bytes ") <= 0 && th_now() - t0 < 10) usleep(5000);
        cr_expect_gt(th_metric(s.port, "\nacm_buffered_bytes "), 0);
        close(fd);
        const double t1 = th_now();
        while (th_metric(s.port, "\nacm_buffered_bytes ") != 0 && th_now() - t1 < 10) usleep(5000);
        cr_expect_eq(th_metric(s.port, "\nacm_buffered_bytes "), 0, "the bytes of a client that left are still held");
    }
    cr_expect_eq(th_metric(s.port, "acm_flops_executed_total{model=\"s\"}"), 0, "a request whose client left was run");
    /* and the next one is served */
    json_t *j = transcribe(s.port, "audio/wav", wav, wl, NULL, 200);
    cr_expect_gt(json_integer_value(json_object_get(j, "tokens")), 0);
    json_decref(j);
    free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* A JSON number array of n s16 samples as floats in [-1, 1) (exact in 9 digits). */
static char *audio_json(const int16_t *x, size_t n, const char *params, const char *outputs) {
    size_t cap = n * 16 + 1024, o = 0;
    char *b = malloc(cap);
    o += (size_t)snprintf(b + o, cap - o, "{\"id\":\"a1\",\"parameters\":{%s},\"inputs\":[{\"name\":\"audio\","
                                          "\"datatype\":\"FP32\",\"shape\":[1,%zu],\"data\":[", params, n);
    for (size_t i = 0; i < n; i++) o += (size_t)snprintf(b + o, cap - o, "%s%.9g", i ? "," : "", x[i] / 32768.0);
    o += (size_t)snprintf(b + o, cap - o, "]}]%s}", outputs);
    return b;
}

/* OIP infer on a speech model: `audio` FP32 [1, S] (JSON and binary), text and (asked) logits equal to the engine's;
 * sample_rate resamples; bad inputs are 400s naming the field. */
Test(asr, oip_infer_audio, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(n, 1, 16000, 8);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    ref_t ref;
    float *lg = NULL;
    int K = 0;
    reference_lg(&ref, "audio/wav", wav, wl, argmax(), &lg, &K);
    /* JSON, no outputs named: the text alone */
    char *js = audio_json(x, n, "", "");
    th_resp r;
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/s/infer", "Content-Type: application/json\r\n", js, strlen(js), &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    json_t *outs = json_object_get(j, "outputs");
    cr_assert_eq(json_array_size(outs), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(outs, 0), "name")), "text");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(json_array_get(outs, 0), "data"), 0)), ref.text);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "parameters"), "tokens")), ref.tokens);
    cr_expect_str_eq(json_string_value(json_object_get(j, "id")), "a1");
    json_decref(j);
    th_resp_free(&r);
    free(js);
    /* JSON asking for logits: [T, K], equal to the engine's (9 significant digits) */
    js = audio_json(x, n, "", ",\"outputs\":[{\"name\":\"text\"},{\"name\":\"logits\"}]");
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/s/infer", "Content-Type: application/json\r\n", js, strlen(js), &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    outs = json_object_get(j, "outputs");
    json_t *lo = NULL, *to = NULL;
    for (size_t i = 0; i < json_array_size(outs); i++) {
        json_t *o = json_array_get(outs, i);
        if (!strcmp(json_string_value(json_object_get(o, "name")), "logits")) lo = o;
        else to = o;
    }
    cr_assert(lo && to);
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(lo, "shape"), 0)), ref.tokens);
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(lo, "shape"), 1)), K);
    json_t *d = json_object_get(lo, "data");
    cr_assert_eq(json_array_size(d), (size_t)ref.tokens * K);
    double maxd = 0;
    for (size_t i = 0; i < json_array_size(d); i++) {
        const double v = fabs(json_real_value(json_array_get(d, i)) - lg[i]);
        if (v > maxd) maxd = v;
    }
    cr_expect_leq(maxd, 1e-6 * 1, "logits differ from the engine's by up to %g", maxd);
    json_decref(j);
    th_resp_free(&r);
    free(js);
    /* binary extension both ways: the logits bit for bit */
    char hdr[512];
    const int hl = snprintf(hdr, sizeof hdr, "{\"inputs\":[{\"name\":\"audio\",\"datatype\":\"FP32\",\"shape\":[1,%zu],"
                                             "\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":[{\"name\":\"logits\","
                                             "\"parameters\":{\"binary_data\":true}}]}", n, n * 4);
    uint8_t *bin = malloc((size_t)hl + n * 4);
    memcpy(bin, hdr, (size_t)hl);
    for (size_t i = 0; i < n; i++) {
        const float v = (float)(x[i] / 32768.0);
        memcpy(bin + hl + 4 * i, &v, 4); /* little-endian hosts (x86, arm64) */
    }
    char h2[160];
    snprintf(h2, sizeof h2, "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %d\r\n", hl);
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/s/infer", h2, bin, (size_t)hl + n * 4, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char v[32];
    cr_assert(th_header(&r, "Inference-Header-Content-Length", v, sizeof v));
    const size_t jl = (size_t)atol(v);
    cr_assert_eq(r.len, jl + (size_t)ref.tokens * K * 4);
    cr_expect_eq(memcmp(r.body + jl, lg, (size_t)ref.tokens * K * 4), 0, "binary logits differ from the engine's");
    th_resp_free(&r);
    free(bin);
    /* sample_rate: 8 kHz samples are resampled: the audio is twice as long as at 16 kHz */
    js = audio_json(x, 8000, "\"sample_rate\":8000", "");
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/s/infer", "Content-Type: application/json\r\n", js, strlen(js), &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_expect_float_eq(json_real_value(json_object_get(json_object_get(j, "parameters"), "audio_seconds")), 1.0, 1e-3);
    json_decref(j);
    th_resp_free(&r);
    free(js);
    /* the model metadata says so */
    cr_assert_eq(th_http(s.port, "GET", "/v2/models/s", NULL, NULL, 0, &r), 0);
    j = th_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "inputs"), 0), "name")), "audio");
    cr_expect_eq(json_integer_value(json_object_get(j, "sample_rate")), 16000);
    json_decref(j);
    th_resp_free(&r);
    /* bad inputs */
    const struct {
        const char *params, *outputs, *needle;
    } bad[] = {{"\"sample_rate\":1000", "", "sample_rate"},
               {"\"sample_rate\":16000.5", "", "sample_rate"},
               {"", ",\"outputs\":[{\"name\":\"label\"}]", "unknown output"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        js = audio_json(x, 1000, bad[i].params, bad[i].outputs);
        cr_assert_eq(th_http(s.port, "POST", "/v2/models/s/infer", "Content-Type: application/json\r\n", js, strlen(js), &r), 0);
        th_expect_error(&r, 400, bad[i].needle);
        th_resp_free(&r);
        free(js);
    }
    const char *img = "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,1,1],\"data\":[0]}]}";
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/s/infer", "Content-Type: application/json\r\n", img, strlen(img), &r), 0);
    th_expect_error(&r, 400, "'audio'");
    th_resp_free(&r);
    free(lg), free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* A whole request sent on a fresh connection, its answer not read. */
/* Sent as application/octet-stream: sniffed, so decoded whole by a worker and run as one job (a body declared
 * audio/wav runs as jobs while it arrives, as many as its pieces make: the tests that count batches use this). */
static int send_wav(int port, const uint8_t *wav, size_t len) {
    int fd = th_connect(port);
    cr_assert(fd >= 0);
    char hd[256];
    snprintf(hd, sizeof hd, "POST /v1/models/s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n", len);
    cr_assert_eq(th_send_all(fd, hd, strlen(hd)), 0);
    cr_assert_eq(th_send_all(fd, wav, len), 0);
    return fd;
}

/* acmd serving MODEL as "s" with one worker whose jobs are held (th_acmd_start_held), past its warm-up and ready. */
static void start_held_one_worker(th_acmd *s) {
    cr_assert_eq(th_acmd_start_held(s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL}), 0);
    th_hold_release(s, 1); /* the warm-up */
    cr_assert_eq(th_acmd_wait_ready(s, 30), 0);
}

/* A client that leaves while its transcription is queued behind a held worker is cancelled, never run. */
Test(asr, client_leaving_while_queued_is_cancelled_not_run, .timeout = 120) {
    th_acmd s;
    start_held_one_worker(&s);
    const size_t n = 16000;
    int16_t *x = signal_s16(n, 1, 16000, 9);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    int busy = send_wav(s.port, wav, wl);
    cr_assert_eq(th_wait_stats(&s, "s", 1, 0, 10), 0);
    int leaver = send_wav(s.port, wav, wl);
    cr_assert_eq(th_wait_stats(&s, "s", 1, 1, 10), 0);
    close(leaver);
    th_hold_end(&s);
    th_resp r;
    cr_assert_eq(th_read_response(busy, &r), 0);
    close(busy);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    double c = -1;
    for (double t0 = th_now(); th_now() - t0 < 10 && c != 1; usleep(5000)) c = th_metric(s.port, "outcome=\"cancelled\"} ");
    cr_expect_eq(c, 1);
    cr_expect_float_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), 1.0, 1e-9, "the leaver was run");
    cr_expect_eq(th_metric(s.port, "acm_batch_size_count{model=\"s\"} "), 1);
    free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* Deadlines as for images: one that can be met is answered with the budget the deadline chose; one that cannot is
 * 504 before the body is read. */
Test(asr, deadlines, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000;
    int16_t *x = signal_s16(n, 1, 16000, 11);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    json_t *j = transcribe(s.port, "audio/wav", wav, wl, "X-Deadline-Ms: 5000\r\nPriority: u=1\r\n", 200);
    cr_expect_str_eq(json_string_value(json_object_get(j, "budget_source")), "deadline");
    cr_expect_float_eq(json_real_value(json_object_get(j, "deadline_ms")), 5000, 1e-9);
    cr_expect_eq(json_integer_value(json_object_get(j, "urgency")), 1);
    cr_expect_gt(json_real_value(json_object_get(j, "predicted_ms")), 0);
    json_decref(j);
    j = transcribe(s.port, "audio/wav", wav, wl, "X-Deadline-Ms: 0.001\r\n", 504);
    cr_expect(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* Audio and images share the workers and one queue order: with transcriptions queued ahead, a more urgent image is
 * the next batch the only worker runs, and the transcriptions follow. */
Test(asr, audio_and_images_share_one_queue_order, .timeout = 120) {
    th_acmd s;
    cr_assert_eq(th_acmd_start_held(&s, (const char *const[]){"--model", "s=" MODEL, "--model",
                                                              "v=tests/golden/vit_a.safetensors", "--workers", "1",
                                                              "--max-batch", "2", "--stream-batch", "2", NULL}), 0);
    th_hold_release(&s, 1); /* the warm-up */
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    const size_t n = 16000;
    int16_t *x = signal_s16(n, 1, 16000, 12);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    int busy = send_wav(s.port, wav, wl);
    cr_assert_eq(th_wait_stats(&s, "s", 1, 0, 10), 0);
    int q[3];
    for (int i = 0; i < 3; i++) q[i] = send_wav(s.port, wav, wl);
    cr_assert_eq(th_wait_stats(&s, "s", 1, 3, 10), 0);
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)(i * 13);
    size_t pl;
    uint8_t *png = th_png(px, 28, 28, 1, &pl);
    int img = th_connect(s.port);
    char hd[256];
    snprintf(hd, sizeof hd, "POST /v1/models/v/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                            "Priority: u=0\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", pl);
    cr_assert_eq(th_send_all(img, hd, strlen(hd)), 0);
    cr_assert_eq(th_send_all(img, png, pl), 0);
    cr_assert_eq(th_wait_stats(&s, "v", 0, 1, 10), 0);
    th_hold_release(&s, 2); /* the busy transcription, then one batch more: the image's */
    th_resp r;
    cr_assert_eq(th_read_response(img, &r), 0);
    close(img);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    /* the image went first: of the queued transcriptions none has run (the next batch, two of them, is handed to the
     * worker and held there; the third waits in the queue) */
    cr_expect_float_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), 1.0, 1e-9,
                       "a transcription ran before the more urgent image");
    cr_expect_eq(th_wait_stats(&s, "s", 2, 1, 10), 0);
    th_hold_end(&s);
    for (int i = -1; i < 3; i++) {
        const int fd = i < 0 ? busy : q[i];
        cr_assert_eq(th_read_response(fd, &r), 0);
        close(fd);
        cr_expect_eq(r.status, 200, "%s", r.body);
        th_resp_free(&r);
    }
    free(x), free(wav), free(png);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* ---- bodies decoded as they arrive (WAV, raw PCM) ------------------------------------------------------------------ */

/* Batches the cost model of model s has learned from: one per engine call, so it grows while a streamed upload runs. */
static long cost_samples(int port) {
    th_resp r;
    if (th_http(port, "GET", "/v2/models/s/stats", NULL, NULL, 0, &r) != 0 || r.status != 200) return -1;
    json_t *j = th_json(&r);
    const long n = (long)json_integer_value(json_object_get(json_object_get(j, "cost_model"), "samples"));
    json_decref(j);
    th_resp_free(&r);
    return n;
}

/* How an upload is sent: in pieces of `piece` bytes, chunked (Transfer-Encoding) or with Content-Length, `pace_s`
 * seconds between pieces (0: at once); stop_at > 0: only that many bytes are sent (the rest never comes). */
typedef struct {
    size_t piece;
    int chunked;
    double pace_s;
    size_t stop_at;
    int watch; /* before the last piece, wait until the server has run chunks of this upload (bounded) */
} upload_t;

/* Sends the body as u says and returns the open socket (the response still to read). */
static int upload(int port, const char *type, const uint8_t *b, size_t len, const upload_t *u, long *ran_before_end) {
    int fd = th_connect(port);
    cr_assert(fd >= 0);
    char hd[256];
    if (u->chunked)
        snprintf(hd, sizeof hd, "POST /v1/models/s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", type);
    else
        snprintf(hd, sizeof hd, "POST /v1/models/s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                                "Content-Length: %zu\r\nConnection: close\r\n\r\n", type, len);
    const long before = u->watch ? cost_samples(port) : 0;
    cr_assert_eq(th_send_all(fd, hd, strlen(hd)), 0);
    for (size_t off = 0; off < len;) {
        size_t p = u->piece < len - off ? u->piece : len - off;
        if (u->stop_at && off + p > u->stop_at) p = u->stop_at - off;
        if (off + p == len && u->watch) { /* the last piece waits until chunks of the upload have run */
            const double t0 = th_now();
            while (cost_samples(port) <= before && th_now() - t0 < 20) usleep(2000);
            *ran_before_end = cost_samples(port) - before;
        }
        char sz[32];
        snprintf(sz, sizeof sz, "%zx\r\n", p);
        if (u->chunked) cr_assert_eq(th_send_all(fd, sz, strlen(sz)), 0);
        cr_assert_eq(th_send_all(fd, b + off, p), 0);
        if (u->chunked) cr_assert_eq(th_send_all(fd, "\r\n", 2), 0);
        off += p;
        if (u->stop_at && off >= u->stop_at) return fd;
        if (u->pace_s > 0 && off < len) usleep((useconds_t)(u->pace_s * 1e6)); /* the client's pace, not work */
    }
    if (u->chunked) cr_assert_eq(th_send_all(fd, "0\r\n\r\n", 5), 0);
    return fd;
}

static json_t *upload_json(int port, const char *type, const uint8_t *b, size_t len, const upload_t *u, int want,
                           long *ran_before_end) {
    const int fd = upload(port, type, b, len, u, ran_before_end);
    th_resp r;
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    cr_assert_eq(r.status, want, "status %d, body %s", r.status, r.body);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    return j;
}

/* The same audio sent at once, in odd chunked pieces, and paced slower than real time gives the answer of the engine
 * on the whole decoded file, to the bit (text, words, tokens, FLOPs), as does the body decoded whole by a worker; a
 * paced upload has chunks run before its last byte. WAV at 44.1 kHz stereo (resampled) and raw L16 at 8 kHz. */
Test(asr, streamed_upload_equals_the_whole_file, .timeout = 180) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "2", NULL});
    const size_t n = 44100 * 3;
    int16_t *x = signal_s16(n, 2, 44100, 21);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 2, 44100, 0, &wl);
    int16_t *y = signal_s16(8000 * 3, 1, 8000, 22);
    uint8_t *be = malloc(8000 * 3 * 2);
    for (size_t i = 0; i < 8000 * 3; i++) be[2 * i] = (uint8_t)((uint16_t)y[i] >> 8), be[2 * i + 1] = (uint8_t)(y[i] & 255);
    const struct {
        const char *type;
        const uint8_t *b;
        size_t len, per_s; /* bytes per second of audio */
    } bodies[] = {{"audio/wav", wav, wl, 44100 * 4}, {"audio/L16;rate=8000", be, 8000 * 3 * 2, 16000}};
    for (size_t k = 0; k < 2; k++) {
        ref_t ref;
        reference(&ref, bodies[k].type, bodies[k].b, bodies[k].len, argmax());
        cr_assert_gt(ref.tokens, 40);
        const size_t tenth = bodies[k].per_s / 10;
        const upload_t ways[] = {
            {.piece = bodies[k].len},                         /* at once, Content-Length */
            {.piece = 4093, .chunked = 1},                    /* odd chunked pieces */
            {.piece = tenth, .pace_s = 0.15, .watch = 1},     /* a tenth of a second of audio every 0.15 s */
            {.piece = tenth + 7, .chunked = 1, .pace_s = 0.15, .watch = 1},
        };
        for (size_t i = 0; i < sizeof ways / sizeof *ways; i++) {
            long ran = 0;
            json_t *j = upload_json(s.port, bodies[k].type, bodies[k].b, bodies[k].len, &ways[i], 200, &ran);
            expect_same(j, &ref);
            if (ways[i].watch) cr_expect_gt(ran, 0, "%s, way %zu: no chunk ran before the last byte", bodies[k].type, i);
            json_decref(j);
        }
    }
    /* the whole-file path (a sniffed body, decoded by a worker) agrees */
    ref_t ref;
    reference(&ref, "audio/wav", wav, wl, argmax());
    json_t *j = transcribe(s.port, "application/octet-stream", wav, wl, NULL, 200);
    expect_same(j, &ref);
    json_decref(j);
    /* each upload counted once, with its whole audio */
    cr_expect_float_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), 3.0 * 9, 1e-6);
    cr_expect_eq(th_metric(s.port, "acm_asr_budget_realised_ratio_count{model=\"s\"}"), 9);
    free(x), free(wav), free(y), free(be);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* The count of transcriptions whose client left (499). */
static const char left_499[] = "acm_http_requests_total{route=\"transcribe\",method=\"POST\",code=\"499\"}";

/* th_metric(port, series) once it reaches at least v (polled for up to 10 s), or its value when the time is up. */
static double metric_reaching(int port, const char *series, double v) {
    const double t0 = th_now();
    while (th_metric(port, series) < v && th_now() - t0 < 10) usleep(2000);
    return th_metric(port, series);
}

/* A client that leaves mid-upload after chunks of it ran, and one that leaves while a worker holds a job of it:
 * freed (no bytes held; no leak under ASan), its stream never run to the end (no FLOPs counted, no transcript), a 499
 * in the metrics; the next upload is served. */
Test(asr, client_leaving_a_streamed_upload_is_freed, .timeout = 120) {
    th_acmd s;
    start_held_one_worker(&s);
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(n, 1, 16000, 23);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    /* a job of the upload is handed to the (held) worker; the client leaves; then the worker is let go */
    const double conns = th_metric(s.port, "\nacm_http_connections ");
    int fd = upload(s.port, "audio/wav", wav, wl, &(upload_t){.piece = 20000, .stop_at = 20000}, NULL); /* of 64044 */
    cr_assert_eq(th_wait_stats(&s, "s", 1, -1, 10), 0, "no job of the upload reached the worker");
    close(fd);
    double t0 = th_now();
    while (th_metric(s.port, "\nacm_http_connections ") > conns && th_now() - t0 < 10) usleep(2000);
    cr_expect_eq(th_metric(s.port, "\nacm_http_connections "), conns, "the server did not see the client leave");
    th_hold_end(&s);
    cr_expect_eq(metric_reaching(s.port, left_499, 1), 1);
    /* chunks run, then the client leaves between pieces */
    const long before = cost_samples(s.port);
    fd = upload(s.port, "audio/wav", wav, wl, &(upload_t){.piece = 12000, .stop_at = 36000}, NULL);
    t0 = th_now();
    while (cost_samples(s.port) <= before && th_now() - t0 < 10) usleep(2000);
    cr_expect_gt(cost_samples(s.port), before, "no chunk of the upload ran");
    close(fd);
    cr_expect_eq(metric_reaching(s.port, left_499, 2), 2);
    t0 = th_now();
    while (th_metric(s.port, "\nacm_buffered_bytes ") != 0 && th_now() - t0 < 10) usleep(2000);
    cr_expect_eq(th_metric(s.port, "\nacm_buffered_bytes "), 0, "the bytes of a client that left are still held");
    cr_expect_eq(th_metric(s.port, "acm_flops_executed_total{model=\"s\"}"), 0, "an upload whose client left was counted");
    cr_expect_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), 0);
    json_t *j = transcribe(s.port, "audio/wav", wav, wl, NULL, 200);
    cr_expect_gt(json_integer_value(json_object_get(j, "tokens")), 0);
    json_decref(j);
    free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* Bad streamed bodies, checked as the bytes come, chunked: a 4xx naming the problem, nothing counted. */
Test(asr, bad_streamed_audio_is_refused, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", "--max-audio-seconds", "2",
                                    "--max-body-bytes", "300000", NULL});
    const upload_t ch = {.piece = 3001, .chunked = 1};
    int16_t *x = signal_s16(16000 * 3, 1, 16000, 24);
    size_t wl;
    /* truncated: the header declares more than comes */
    uint8_t *tr = wav_bytes(x, 16000, 1, 16000, 16000 * 2 + 1000, &wl);
    json_t *j = upload_json(s.port, "audio/wav", tr, wl, &ch, 400, NULL);
    cr_expect(strstr(json_string_value(json_object_get(j, "error")), "truncated"), "%s", json_string_value(json_object_get(j, "error")));
    json_decref(j);
    /* zero length, chunked */
    j = upload_json(s.port, "audio/wav", tr, 0, &ch, 400, NULL);
    cr_expect(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    /* a rate outside what is served, in the WAV header */
    uint8_t *lo = wav_bytes(x, 3000, 1, 1000, 0, &wl);
    j = upload_json(s.port, "audio/wav", lo, wl, &ch, 400, NULL);
    cr_expect(strstr(json_string_value(json_object_get(j, "error")), "sample rate"), "%s", json_string_value(json_object_get(j, "error")));
    json_decref(j);
    /* over --max-audio-seconds (2 s) while it streams, chunks having run: 413 */
    uint8_t *lng = wav_bytes(x, 16000 * 3, 1, 16000, 0, &wl);
    j = upload_json(s.port, "audio/wav", lng, wl, &ch, 413, NULL);
    cr_expect(strstr(json_string_value(json_object_get(j, "error")), "max-audio-seconds"));
    json_decref(j);
    /* over --max-body-bytes while it streams (raw PCM under the audio limit: 150000 samples at 96 kHz) */
    uint8_t *big = calloc(1, 320000);
    j = upload_json(s.port, "audio/x-raw;format=S16LE;rate=96000", big, 320000, &(upload_t){.piece = 40000, .chunked = 1},
                    413, NULL);
    cr_expect(strstr(json_string_value(json_object_get(j, "error")), "limit"));
    json_decref(j);
    /* a WAV declared as raw PCM, chunked */
    uint8_t *ok = wav_bytes(x, 16000, 1, 16000, 0, &wl);
    j = upload_json(s.port, "audio/L16;rate=16000", ok, wl, &ch, 400, NULL);
    cr_expect(strstr(json_string_value(json_object_get(j, "error")), "WAV file"));
    json_decref(j);
    cr_expect_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), 0);
    cr_expect_eq(th_metric(s.port, "acm_flops_executed_total{model=\"s\"}"), 0);
    cr_expect_eq(th_metric(s.port, "\nacm_buffered_bytes "), 0);
    /* and the server goes on */
    j = upload_json(s.port, "audio/wav", ok, wl, &ch, 200, NULL);
    json_decref(j);
    free(x), free(tr), free(lo), free(lng), free(big), free(ok);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* Transcriptions of different audio and lengths at once, batched together on two workers (at most 4 a call): each
 * gets its own transcript. paced: chunked uploads sent in pieces (decoded as they arrive, their chunks batched job by
 * job), else one POST each (decoded whole). */
typedef struct {
    int port, paced, ok;
    uint8_t *wav;
    size_t len;
    ref_t ref;
    char text[4096];
    int64_t tokens;
    double flops;
} conc_t;

static void *conc_run(void *arg) {
    conc_t *c = arg;
    json_t *j = NULL;
    if (c->paced) {
        const upload_t u = {.piece = 3200 + (size_t)c->len % 997, .chunked = 1, .pace_s = 0.03};
        j = upload_json(c->port, "audio/wav", c->wav, c->len, &u, 200, NULL);
    } else {
        th_resp r;
        if (th_http(c->port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/wav\r\n", c->wav, c->len, &r) == 0 &&
            r.status == 200)
            j = json_loads(r.body, 0, NULL);
        th_resp_free(&r);
    }
    c->ok = j != NULL;
    if (j) {
        snprintf(c->text, sizeof c->text, "%s", json_string_value(json_object_get(j, "text")));
        c->tokens = json_integer_value(json_object_get(j, "tokens"));
        c->flops = json_real_value(json_object_get(j, "flops"));
        json_decref(j);
    }
    return NULL;
}

static void concurrent_each_get_their_own(int paced) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "2", "--stream-batch", "4", NULL});
    enum { NMAX = 8 };
    const int N = paced ? 6 : 8;
    conc_t c[NMAX];
    pthread_t t[NMAX];
    for (int i = 0; i < N; i++) {
        memset(&c[i], 0, sizeof c[i]);
        const size_t n = 16000 / 2 * (size_t)(paced ? 2 + i % 3 : 1 + i % 4);
        int16_t *x = signal_s16(n, 1, 16000, (paced ? 30 : 10) + (unsigned)i);
        c[i].port = s.port, c[i].paced = paced;
        c[i].wav = wav_bytes(x, n, 1, 16000, 0, &c[i].len);
        free(x);
        reference(&c[i].ref, "audio/wav", c[i].wav, c[i].len, argmax());
    }
    for (int i = 0; i < N; i++) cr_assert_eq(pthread_create(&t[i], NULL, conc_run, &c[i]), 0);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        cr_expect(c[i].ok, "transcription %d failed", i);
        cr_expect_str_eq(c[i].text, c[i].ref.text, "transcription %d got another transcript", i);
        cr_expect_eq(c[i].tokens, c[i].ref.tokens, "transcription %d", i);
        if (paced) cr_expect_eq(c[i].flops, c[i].ref.flops, "transcription %d", i);
        distinct += i > 0 && strcmp(c[i].ref.text, c[0].ref.text) != 0;
        free(c[i].wav);
    }
    cr_expect_gt(distinct, 0, "the test's audio gives one transcript for every transcription: it cannot tell them apart");
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

Test(asr, concurrent_requests_each_get_their_own, .timeout = 180) { concurrent_each_get_their_own(0); }

Test(asr, concurrent_streamed_uploads_each_get_their_own, .timeout = 180) { concurrent_each_get_their_own(1); }

/* HTTP against the engine's batch path: the whole file as one audio item of acm_worker_run (not the streams the server
 * runs), its logits decoded by a greedy CTC decoder of its own. The streamed /transcribe upload gives the same text and
 * tokens, and OIP infer the same logits within float rounding (the batch path packs the tokens of a call differently;
 * the largest difference is printed on failure). acm-train has no speech evaluation yet: this is the reference. */
Test(asr, http_equals_the_engine_batch_path, .timeout = 120) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 3;
    int16_t *x = signal_s16(n, 1, 16000, 25);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    char e[512];
    float *pcm;
    size_t np;
    acm_audio_format f = {.kind = ACM_AUDIO_WAV};
    cr_assert_eq(acm_audio_decode(&f, wav, wl, acm_audio_default_params(), &pcm, &np, e, sizeof e), 0, "%s", e);
    acm_model *m = acm_model_load(MODEL, e, sizeof e);
    cr_assert(m, "%s", e);
    const acm_config *cfg = acm_model_config(m);
    acm_worker *w = acm_worker_new(m, acm_worker_default_params(), e, sizeof e);
    cr_assert(w, "%s", e);
    const int64_t T = acm_speech_tokens(m, (int64_t)np);
    const int K = cfg->num_classes;
    float *lg = malloc(sizeof(float) * (size_t)T * K);
    acm_item it = {.kind = ACM_ITEM_AUDIO, .pcm = pcm, .samples = (int64_t)np, .policy = acm_policy_default()};
    acm_result res = {.logits = lg};
    cr_assert_eq(acm_worker_run(w, &it, &res, 1, e, sizeof e), 0, "%s", e);
    cr_assert_eq(res.tokens, T);
    char chars[ACM_CTC_MAX_SYMBOLS + 1] = "";
    for (int k = 1; k < K; k++) strncat(chars, cfg->labels[k], 1);
    acm_ctc_alphabet a;
    cr_assert_eq(acm_ctc_alphabet_init_blank_first(&a, chars, e, sizeof e), 0, "%s", e);
    acm_ctc_decoder *d = acm_ctc_decoder_new(&a, acm_ctc_default_params(), e, sizeof e);
    cr_assert(d, "%s", e);
    cr_assert_eq(acm_ctc_push(d, lg, T, K, e, sizeof e), 0, "%s", e);
    acm_ctc_result cr;
    acm_ctc_result_get(d, ACM_CTC_FINAL, &cr);
    char text[4096];
    int l = cr.len < (int)sizeof text - 1 ? cr.len : (int)sizeof text - 1;
    memcpy(text, cr.text, (size_t)l);
    while (l > 0 && text[l - 1] == ' ') l--;
    text[l] = 0;
    /* /transcribe, streamed in paced chunked pieces */
    const upload_t u = {.piece = 3001, .chunked = 1, .pace_s = 0.01};
    json_t *j = upload_json(s.port, "audio/wav", wav, wl, &u, 200, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(j, "text")), text);
    cr_expect_eq(json_integer_value(json_object_get(j, "tokens")), T);
    json_decref(j);
    /* OIP infer: the logits */
    char *js = audio_json(x, n, "", ",\"outputs\":[{\"name\":\"logits\"}]");
    th_resp r;
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/s/infer", "Content-Type: application/json\r\n", js, strlen(js), &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    json_t *data = json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data");
    cr_assert_eq(json_array_size(data), (size_t)T * K);
    double maxd = 0;
    for (size_t i = 0; i < (size_t)T * K; i++) {
        const double v = fabs(json_real_value(json_array_get(data, i)) - lg[i]);
        if (v > maxd) maxd = v;
    }
    cr_expect_leq(maxd, 1e-5, "HTTP logits differ from the engine's batch path by up to %g", maxd);
    cr_log_info("HTTP vs acm_worker_run logits: max |difference| %g", maxd);
    json_decref(j);
    th_resp_free(&r);
    free(js), free(lg), free(pcm), free(x), free(wav);
    acm_ctc_decoder_free(d), acm_worker_free(w), acm_model_free(m);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* X-Deadline-Ms on an upload is the answer's, from its last byte: a job of the upload that waited past it in the queue
 * while the body still arrived is run, not answered 504 (that would end an upload whose answer may still be on time). */
Test(asr, a_streamed_upload_deadline_runs_from_the_last_byte, .timeout = 120) {
    th_acmd s;
    start_held_one_worker(&s);
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(n, 1, 16000, 26);
    size_t wl;
    uint8_t *wav = wav_bytes(x, n, 1, 16000, 0, &wl);
    const int busy = send_wav(s.port, wav, wl); /* holds the only worker */
    cr_assert_eq(th_wait_stats(&s, "s", 1, 0, 10), 0);
    int fd = th_connect(s.port);
    char hd[256];
    snprintf(hd, sizeof hd, "POST /v1/models/s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                            "X-Deadline-Ms: 300\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", wl);
    cr_assert_eq(th_send_all(fd, hd, strlen(hd)), 0);
    cr_assert_eq(th_send_all(fd, wav, 20000), 0);
    cr_assert_eq(th_wait_stats(&s, "s", 1, 1, 10), 0, "no job of the upload was queued");
    const double t0 = th_now();
    while (th_now() - t0 < 0.8) usleep(10000); /* the queued job's ordering deadline (2 x 300 ms) passes */
    th_hold_end(&s);
    th_resp r;
    cr_assert_eq(th_read_response(busy, &r), 0);
    close(busy);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    cr_assert_eq(th_send_all(fd, wav + 20000, wl - 20000), 0);
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    free(x), free(wav);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}
