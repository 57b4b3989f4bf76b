/*
 * test_audio.c — proto/audio.c: media types, every decoder path (WAV 8/16/24/32-bit and float, WAVE_FORMAT_EXTENSIBLE,
 * mu-law through libsndfile, FLAC, Ogg Vorbis, audio/L16, audio/x-raw S16LE/F32LE), mixdown, resampling, incremental ==
 * whole, real recordings from pocketsphinx-testdata, and bad audio (truncated, unknown, empty, wrong rate), each with
 * a clear message and no leak (run under SANITIZE=address,undefined).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio.h"

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} bytes;

static void put(bytes *o, const void *p, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->b = realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put16(bytes *o, unsigned v) {
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(o, b, 2);
}
static void put32(bytes *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}

/* A RIFF/WAVE header (+ optional LIST chunk of odd size before "data") for `data_bytes` of samples. */
static void wav_header(bytes *o, int tag, int channels, int rate, int bits, uint32_t data_bytes, int extensible,
                       int list_chunk) {
    put(o, "RIFF", 4);
    put32(o, 36 + data_bytes);
    put(o, "WAVE", 4);
    put(o, "fmt ", 4);
    put32(o, extensible ? 40 : 16);
    put16(o, extensible ? 0xFFFE : (unsigned)tag);
    put16(o, (unsigned)channels);
    put32(o, (uint32_t)rate);
    put32(o, (uint32_t)(rate * channels * bits / 8));
    put16(o, (unsigned)(channels * bits / 8));
    put16(o, (unsigned)bits);
    if (extensible) {
        put16(o, 22);
        put16(o, (unsigned)bits);
        put32(o, 0);
        put16(o, (unsigned)tag);
        put(o, "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xAA\x00\x38\x9B\x71", 14);
    }
    if (list_chunk) {
        put(o, "LIST", 4);
        put32(o, 5);
        put(o, "INFOx\0", 6); /* 5 bytes + 1 pad byte */
    }
    put(o, "data", 4);
    put32(o, data_bytes);
}

static int16_t *sine16(size_t n, double hz, int rate, double amp) {
    int16_t *s = malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++) s[i] = (int16_t)lrint(amp * 32767.0 * sin(2 * M_PI * hz * (double)i / rate));
    return s;
}

/* mono 16-bit WAV of the given samples */
static bytes wav16(const int16_t *s, size_t n, int rate) {
    bytes o = {0};
    wav_header(&o, 1, 1, rate, 16, (uint32_t)(n * 2), 0, 0);
    for (size_t i = 0; i < n; i++) put16(&o, (uint16_t)s[i]);
    return o;
}

static int decode(const char *type, const void *b, size_t n, float **out, size_t *nout, char *err) {
    acm_audio_format f;
    if (type) {
        int rc = acm_audio_parse_type(&f, type, err, 256);
        if (rc) return rc;
    }
    return acm_audio_decode(type ? &f : NULL, b, n, acm_audio_default_params(), out, nout, err, 256);
}

/* Pushes b in pieces of the given sizes (cycled) through a stream; returns the concatenated output. */
static float *decode_pieces(const char *type, const uint8_t *b, size_t n, const size_t *sizes, int nsizes,
                            size_t *nout) {
    acm_audio_format f;
    char err[256] = "";
    cr_assert_eq(acm_audio_parse_type(&f, type, err, sizeof err), 0, "%s", err);
    acm_audio_stream *s = acm_audio_stream_create(&f, acm_audio_default_params(), err, sizeof err);
    cr_assert(s, "%s", err);
    size_t cap = 1 << 20, got = 0, off = 0;
    float *out = malloc(cap * sizeof *out);
    for (int i = 0; off < n; i++) {
        size_t k = sizes[i % nsizes];
        if (k > n - off) k = n - off;
        size_t w = 0;
        cr_assert(acm_audio_stream_max_out(s, k) <= cap - got);
        cr_assert_eq(acm_audio_stream_push(s, b + off, k, out + got, cap - got, &w, err, sizeof err), 0, "%s", err);
        cr_assert(w <= acm_audio_stream_max_out(s, 0) + w); /* trivially true: keeps max_out exercised after push */
        got += w;
        off += k;
    }
    size_t w = 0;
    cr_assert_eq(acm_audio_stream_finish(s, out + got, cap - got, &w, err, sizeof err), 0, "%s", err);
    got += w;
    acm_audio_stream_free(s);
    *nout = got;
    return out;
}

/* Writes samples with libsndfile in the given format to a temporary file and returns its bytes. */
static bytes sndfile_bytes(int format, int rate, int channels, const float *x, size_t frames) {
    char path[] = "/tmp/acm_test_audio_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    cr_assert(sf, "sf_open(write): %s", sf_strerror(NULL));
    cr_assert_eq(sf_writef_float(sf, x, (sf_count_t)frames), (sf_count_t)frames);
    sf_close(sf);
    FILE *f = fopen(path, "rb");
    bytes o = {0};
    uint8_t buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) put(&o, buf, k);
    fclose(f);
    unlink(path);
    return o;
}

static bytes slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (make deps installs pocketsphinx-testdata)", path);
    bytes o = {0};
    uint8_t buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) put(&o, buf, k);
    fclose(f);
    return o;
}

/* Largest |a - b| over the middle of two signals (edges skipped: resampler transients). */
static double max_diff(const float *a, const double *b, size_t n, size_t skip) {
    double m = 0;
    for (size_t i = skip; i + skip < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* ---- media types ------------------------------------------------------------------------------------------------ */

Test(audio, media_types) {
    acm_audio_format f;
    char err[256] = "";
    cr_assert_eq(acm_audio_parse_type(&f, "audio/wav", err, sizeof err), 0);
    cr_assert_eq(f.kind, ACM_AUDIO_WAV);
    cr_assert_eq(acm_audio_parse_type(&f, "Audio/X-WAV", err, sizeof err), 0);
    cr_assert_eq(f.kind, ACM_AUDIO_WAV);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/flac", err, sizeof err), 0);
    cr_assert_eq(f.kind, ACM_AUDIO_FLAC);
    cr_assert_eq(acm_audio_parse_type(&f, "application/ogg", err, sizeof err), 0);
    cr_assert_eq(f.kind, ACM_AUDIO_OGG);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16; rate=8000; channels=2", err, sizeof err), 0, "%s", err);
    cr_assert(f.kind == ACM_AUDIO_L16 && f.rate == 8000 && f.channels == 2);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16;rate=\"44100\"", err, sizeof err), 0, "%s", err);
    cr_assert(f.rate == 44100 && f.channels == 1);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/x-raw;format=S16LE;rate=16000", err, sizeof err), 0, "%s", err);
    cr_assert(f.kind == ACM_AUDIO_S16LE && f.rate == 16000);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/x-raw; format=F32LE; rate=22050; channels=2", err, sizeof err), 0);
    cr_assert(f.kind == ACM_AUDIO_F32LE && f.rate == 22050 && f.channels == 2);
}

Test(audio, bad_media_types) {
    acm_audio_format f;
    char err[256] = "";
    cr_assert_eq(acm_audio_parse_type(&f, "audio/mpeg", err, sizeof err), ACM_AUDIO_EFORMAT);
    cr_assert(strstr(err, "unsupported media type 'audio/mpeg'"), "%s", err);
    cr_assert_eq(acm_audio_parse_type(&f, "", err, sizeof err), ACM_AUDIO_EFORMAT);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16", err, sizeof err), ACM_AUDIO_EINVAL);
    cr_assert(strstr(err, "rate"), "%s", err);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16;rate=abc", err, sizeof err), ACM_AUDIO_EINVAL);
    cr_assert(strstr(err, "rate=abc"), "%s", err);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16;rate=0", err, sizeof err), ACM_AUDIO_EINVAL);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16;rate=1000000", err, sizeof err), ACM_AUDIO_EINVAL);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16;rate=16000;channels=0", err, sizeof err), ACM_AUDIO_EINVAL);
    cr_assert(strstr(err, "channels"), "%s", err);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/x-raw;rate=16000", err, sizeof err), ACM_AUDIO_EINVAL);
    cr_assert(strstr(err, "format"), "%s", err);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/x-raw;format=U8;rate=16000", err, sizeof err), ACM_AUDIO_EFORMAT);
    cr_assert_eq(acm_audio_parse_type(&f, "audio/L16;rate", err, sizeof err), ACM_AUDIO_EINVAL);
}

/* ---- decoder paths ---------------------------------------------------------------------------------------------- */

Test(audio, wav16_mono_16k_is_exact) {
    size_t n = 4000;
    int16_t *s = sine16(n, 440, 16000, 0.5);
    s[0] = -32768; /* the extremes map to -1 and 32767/32768 */
    s[1] = 32767;
    bytes w = wav16(s, n, 16000);
    float *out;
    size_t nout;
    char err[256] = "";
    cr_assert_eq(decode("audio/wav", w.b, w.n, &out, &nout, err), 0, "%s", err);
    cr_assert_eq(nout, n);
    for (size_t i = 0; i < n; i++) cr_assert_eq(out[i], s[i] / 32768.0f, "sample %zu", i);
    free(out);
    /* sniffed without a media type: the same */
    cr_assert_eq(decode(NULL, w.b, w.n, &out, &nout, err), 0, "%s", err);
    cr_assert_eq(nout, n);
    free(out);
    free(w.b);
    free(s);
}

Test(audio, wav_encodings_and_stereo_mixdown) {
    /* the same stereo signal (L = 0.5, R = -0.25 ... as a ramp) in 8, 16, 24, 32-bit PCM and float 32/64 */
    const size_t n = 1000;
    struct {
        int tag, bits, extensible;
        double tol;
    } cases[] = {{1, 8, 0, 1.0 / 64}, {1, 16, 0, 1e-4}, {1, 24, 1, 1e-6}, {1, 32, 0, 1e-6}, {3, 32, 0, 0},
                 {3, 64, 1, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bytes o = {0};
        int bps = cases[c].bits / 8;
        wav_header(&o, cases[c].tag, 2, 16000, cases[c].bits, (uint32_t)(n * 2 * (size_t)bps), cases[c].extensible,
                   c % 2);
        double *want = malloc(n * sizeof *want);
        for (size_t i = 0; i < n; i++) {
            double l = 0.9 * sin(i * 0.01), r = -0.5 * cos(i * 0.03);
            want[i] = (l + r) / 2;
            double lr[2] = {l, r};
            for (int ch = 0; ch < 2; ch++) {
                double v = lr[ch];
                if (cases[c].tag == 3 && bps == 4) {
                    float fv = (float)v;
                    put(&o, &fv, 4);
                } else if (cases[c].tag == 3) {
                    put(&o, &v, 8);
                } else if (bps == 1) {
                    uint8_t u = (uint8_t)lrint(v * 127 + 128);
                    put(&o, &u, 1);
                } else {
                    int64_t q = llrint(v * (double)((1LL << (cases[c].bits - 1)) - 1));
                    uint8_t b[4] = {(uint8_t)q, (uint8_t)(q >> 8), (uint8_t)(q >> 16), (uint8_t)(q >> 24)};
                    put(&o, b, (size_t)bps);
                }
            }
        }
        float *out;
        size_t nout;
        char err[256] = "";
        cr_assert_eq(decode("audio/wav", o.b, o.n, &out, &nout, err), 0, "case %zu: %s", c, err);
        cr_assert_eq(nout, n, "case %zu", c);
        double d = max_diff(out, want, n, 0);
        cr_assert(d <= cases[c].tol + 1e-7, "case %zu (tag %d, %d bits): max diff %g", c, cases[c].tag, cases[c].bits,
                  d);
        free(out);
        free(want);
        free(o.b);
    }
}

Test(audio, raw_l16_big_endian_and_s16le_agree) {
    size_t n = 3000;
    int16_t *s = sine16(n, 1000, 16000, 0.7);
    uint8_t *be = malloc(2 * n), *le = malloc(2 * n);
    for (size_t i = 0; i < n; i++) {
        uint16_t u = (uint16_t)s[i];
        be[2 * i] = (uint8_t)(u >> 8), be[2 * i + 1] = (uint8_t)u;
        le[2 * i] = (uint8_t)u, le[2 * i + 1] = (uint8_t)(u >> 8);
    }
    float *a, *b;
    size_t na, nb;
    char err[256] = "";
    cr_assert_eq(decode("audio/L16;rate=16000", be, 2 * n, &a, &na, err), 0, "%s", err);
    cr_assert_eq(decode("audio/x-raw;format=S16LE;rate=16000", le, 2 * n, &b, &nb, err), 0, "%s", err);
    cr_assert_eq(na, n);
    cr_assert_eq(nb, n);
    cr_assert(!memcmp(a, b, n * sizeof *a));
    for (size_t i = 0; i < n; i++) cr_assert_eq(a[i], s[i] / 32768.0f);
    free(a), free(b), free(be), free(le), free(s);
}

/* 8 kHz and 44.1 kHz sines come out at 16 kHz with the right length, frequency and amplitude. */
Test(audio, resampling_to_16k) {
    int rates[] = {8000, 44100, 22050, 48000};
    for (int r = 0; r < 4; r++) {
        int rate = rates[r];
        size_t n = (size_t)rate; /* one second */
        int16_t *s = sine16(n, 700, rate, 0.5);
        bytes w = wav16(s, n, rate);
        float *out;
        size_t nout;
        char err[256] = "";
        cr_assert_eq(decode("audio/wav", w.b, w.n, &out, &nout, err), 0, "%s", err);
        cr_assert(nout >= 15999 && nout <= 16001, "rate %d: %zu samples for one second", rate, nout);
        double *want = malloc(nout * sizeof *want);
        for (size_t i = 0; i < nout; i++) want[i] = 0.5 * 32767.0 / 32768.0 * sin(2 * M_PI * 700 * (double)i / 16000);
        double d = max_diff(out, want, nout, 400);
        cr_assert(d < 2e-3, "rate %d: max diff to the ideal 16 kHz sine %g", rate, d);
        free(want), free(out), free(w.b), free(s);
    }
}

/* Pushing the bytes in any pieces gives the same samples as one buffer (header split, frames split, resampler). */
Test(audio, incremental_equals_whole) {
    const char *types[] = {"audio/wav", "audio/L16;rate=44100;channels=2", "audio/x-raw;format=S16LE;rate=8000"};
    const size_t pieces[] = {1, 3, 7, 44, 45, 1000, 2, 4096, 5};
    for (int t = 0; t < 3; t++) {
        size_t n = 20000;
        int16_t *s = sine16(n, 523, 22050, 0.6);
        bytes w;
        if (t == 0) w = wav16(s, n, 22050);
        else w = (bytes){.b = malloc(2 * n), .n = 2 * n, .cap = 2 * n}, memcpy(w.b, s, 2 * n);
        float *whole;
        size_t nw, np;
        char err[256] = "";
        cr_assert_eq(decode(types[t], w.b, w.n, &whole, &nw, err), 0, "%s: %s", types[t], err);
        float *inc = decode_pieces(types[t], w.b, w.n, pieces, 9, &np);
        cr_assert_eq(np, nw, "%s: %zu samples incrementally, %zu whole", types[t], np, nw);
        cr_assert(!memcmp(inc, whole, nw * sizeof *inc), "%s: incremental output differs", types[t]);
        free(inc), free(whole), free(w.b), free(s);
    }
}

Test(audio, flac_is_lossless_and_ogg_decodes) {
    size_t n = 12000;
    float *x = malloc(2 * n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        x[2 * i] = (float)lrint(16000 * sin(i * 0.05)) / 32768.0f;
        x[2 * i + 1] = (float)lrint(8000 * sin(i * 0.11)) / 32768.0f;
    }
    bytes fl = sndfile_bytes(SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 2, x, n);
    float *out;
    size_t nout;
    char err[256] = "";
    cr_assert_eq(decode("audio/flac", fl.b, fl.n, &out, &nout, err), 0, "%s", err);
    cr_assert_eq(nout, n);
    for (size_t i = 0; i < n; i++) cr_assert_float_eq(out[i], (x[2 * i] + x[2 * i + 1]) / 2, 1e-7, "sample %zu", i);
    free(out);
    /* FLAC at 48 kHz is resampled */
    bytes fl48 = sndfile_bytes(SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 48000, 2, x, n);
    cr_assert_eq(decode(NULL, fl48.b, fl48.n, &out, &nout, err), 0, "%s", err);
    cr_assert(nout >= n / 3 - 1 && nout <= n / 3 + 1, "%zu samples", nout);
    free(out);
    /* Ogg Vorbis: lossy, so check the length and the energy */
    bytes og = sndfile_bytes(SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 2, x, n);
    cr_assert_eq(decode("audio/ogg", og.b, og.n, &out, &nout, err), 0, "%s", err);
    cr_assert_eq(nout, n);
    double e_in = 0, e_out = 0;
    for (size_t i = 0; i < n; i++) {
        double m = (x[2 * i] + x[2 * i + 1]) / 2;
        e_in += m * m, e_out += (double)out[i] * out[i];
    }
    cr_assert(fabs(e_out / e_in - 1) < 0.1, "Ogg energy ratio %g", e_out / e_in);
    free(out);
    /* a FLAC body declared as Ogg is refused */
    cr_assert_eq(decode("audio/ogg", fl.b, fl.n, &out, &nout, err), ACM_AUDIO_EFORMAT);
    cr_assert(strstr(err, "not Ogg"), "%s", err);
    free(fl.b), free(fl48.b), free(og.b), free(x);
}

/* A mu-law WAV goes to libsndfile; a 24-bit WAV written by libsndfile matches our own parser. */
Test(audio, wav_via_libsndfile) {
    size_t n = 5000;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(0.6 * sin(i * 0.07));
    bytes ul = sndfile_bytes(SF_FORMAT_WAV | SF_FORMAT_ULAW, 8000, 1, x, n);
    float *out;
    size_t nout;
    char err[256] = "";
    cr_assert_eq(decode("audio/wav", ul.b, ul.n, &out, &nout, err), 0, "%s", err);
    cr_assert(nout >= 2 * n - 1 && nout <= 2 * n + 1, "%zu samples", nout);
    free(out);
    bytes p24 = sndfile_bytes(SF_FORMAT_WAV | SF_FORMAT_PCM_24, 16000, 1, x, n);
    cr_assert_eq(decode("audio/wav", p24.b, p24.n, &out, &nout, err), 0, "%s", err);
    cr_assert_eq(nout, n);
    for (size_t i = 0; i < n; i++) cr_assert_float_eq(out[i], x[i], 2e-7, "sample %zu", i);
    free(out), free(ul.b), free(p24.b), free(x);
}

/* Real recordings: LibriVox and the "cards" set of pocketsphinx-testdata (16 kHz mono 16-bit WAV). */
Test(audio, pocketsphinx_testdata) {
    const char *files[] = {"/usr/share/pocketsphinx/test/data/cards/001.wav",
                           "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav"};
    for (int i = 0; i < 2; i++) {
        bytes b = slurp(files[i]);
        float *out;
        size_t nout;
        char err[256] = "";
        cr_assert_eq(decode(NULL, b.b, b.n, &out, &nout, err), 0, "%s: %s", files[i], err);
        cr_assert(nout > 16000 && nout < 16000 * 60, "%s: %zu samples", files[i], nout);
        double e = 0, peak = 0;
        for (size_t k = 0; k < nout; k++) e += (double)out[k] * out[k], peak = fmax(peak, fabs(out[k]));
        cr_assert(peak <= 1.0 && sqrt(e / (double)nout) > 1e-3, "%s: rms %g peak %g", files[i], sqrt(e / nout), peak);
        free(out), free(b.b);
    }
}

/* ---- bad audio -------------------------------------------------------------------------------------------------- */

Test(audio, truncated_wav) {
    size_t n = 1000;
    int16_t *s = sine16(n, 440, 16000, 0.5);
    bytes w = wav16(s, n, 16000);
    float *out;
    size_t nout;
    char err[256] = "";
    /* cut inside the header */
    for (size_t cut = 1; cut < 44; cut += 7) {
        cr_assert_eq(decode("audio/wav", w.b, cut, &out, &nout, err), ACM_AUDIO_ETRUNC, "cut at %zu", cut);
        cr_assert(strstr(err, "truncated WAV"), "%s", err);
        cr_assert_null(out);
    }
    /* cut inside the data */
    cr_assert_eq(decode("audio/wav", w.b, w.n - 100, &out, &nout, err), ACM_AUDIO_ETRUNC);
    cr_assert(strstr(err, "1900 of 2000 declared data bytes"), "%s", err);
    /* half a sample */
    cr_assert_eq(decode("audio/x-raw;format=S16LE;rate=16000", w.b + 44, 2 * n - 1, &out, &nout, err),
                 ACM_AUDIO_ETRUNC);
    cr_assert(strstr(err, "trailing"), "%s", err);
    /* truncated FLAC */
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = s[i] / 32768.0f;
    bytes fl = sndfile_bytes(SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, x, n);
    int rc = decode("audio/flac", fl.b, 30, &out, &nout, err);
    cr_assert(rc == ACM_AUDIO_EFORMAT || rc == ACM_AUDIO_ETRUNC, "rc %d: %s", rc, err);
    cr_assert(strlen(err) > 10);
    free(x), free(fl.b), free(w.b), free(s);
}

Test(audio, unknown_and_empty) {
    float *out;
    size_t nout;
    char err[256] = "";
    const char junk[] = "ID3\x03\x00 this is an mp3, say";
    cr_assert_eq(decode(NULL, junk, sizeof junk, &out, &nout, err), ACM_AUDIO_EFORMAT);
    cr_assert(strstr(err, "unrecognised container"), "%s", err);
    cr_assert_eq(decode("audio/wav", junk, sizeof junk, &out, &nout, err), ACM_AUDIO_EFORMAT);
    cr_assert(strstr(err, "not a RIFF/WAVE"), "%s", err);
    cr_assert_eq(decode("audio/flac", junk, sizeof junk, &out, &nout, err), ACM_AUDIO_EFORMAT);
    cr_assert(strstr(err, "FLAC"), "%s", err);
    /* zero length, every way */
    cr_assert_eq(decode(NULL, "", 0, &out, &nout, err), ACM_AUDIO_EEMPTY);
    cr_assert(strstr(err, "empty"), "%s", err);
    cr_assert_eq(decode("audio/wav", "", 0, &out, &nout, err), ACM_AUDIO_EEMPTY);
    cr_assert_eq(decode("audio/L16;rate=16000", "", 0, &out, &nout, err), ACM_AUDIO_EEMPTY);
    cr_assert_eq(decode("audio/ogg", "", 0, &out, &nout, err), ACM_AUDIO_EEMPTY);
    /* a WAV with a header and no samples */
    bytes w = {0};
    wav_header(&w, 1, 1, 16000, 16, 0, 0, 0);
    cr_assert_eq(decode("audio/wav", w.b, w.n, &out, &nout, err), ACM_AUDIO_EEMPTY);
    cr_assert(strstr(err, "no audio samples"), "%s", err);
    free(w.b);
    /* a stream finished without any byte */
    acm_audio_format f = {.kind = ACM_AUDIO_WAV};
    acm_audio_stream *s = acm_audio_stream_create(&f, acm_audio_default_params(), err, sizeof err);
    float buf[4];
    cr_assert_eq(acm_audio_stream_finish(s, buf, 4, &nout, err, sizeof err), ACM_AUDIO_EEMPTY);
    cr_assert_eq(acm_audio_stream_finish(s, buf, 4, &nout, err, sizeof err), ACM_AUDIO_EINVAL);
    acm_audio_stream_free(s);
}

Test(audio, wrong_declared_rate_and_layout) {
    float *out;
    size_t nout;
    char err[256] = "";
    int16_t z[100] = {0};
    int bad_rates[] = {0, 100, 1000000};
    for (int i = 0; i < 3; i++) {
        bytes w = wav16(z, 100, bad_rates[i]);
        cr_assert_eq(decode("audio/wav", w.b, w.n, &out, &nout, err), ACM_AUDIO_EINVAL, "rate %d", bad_rates[i]);
        cr_assert(strstr(err, "sample rate"), "%s", err);
        free(w.b);
    }
    /* 0 and 9 channels */
    for (int ch = 0; ch <= 9; ch += 9) {
        bytes w = {0};
        wav_header(&w, 1, ch, 16000, 16, 200, 0, 0);
        put(&w, z, 200);
        cr_assert_eq(decode("audio/wav", w.b, w.n, &out, &nout, err), ACM_AUDIO_EINVAL);
        cr_assert(strstr(err, "channels"), "%s", err);
        free(w.b);
    }
    /* block align inconsistent with channels x bits */
    bytes w = wav16(z, 100, 16000);
    w.b[32] = 4;
    cr_assert_eq(decode("audio/wav", w.b, w.n, &out, &nout, err), ACM_AUDIO_EINVAL);
    cr_assert(strstr(err, "block align"), "%s", err);
    /* data chunk before fmt */
    memcpy(w.b + 12, "data", 4);
    cr_assert_eq(decode("audio/wav", w.b, w.n, &out, &nout, err), ACM_AUDIO_EINVAL);
    free(w.b);
    /* a raw stream created with a rate outside the range */
    acm_audio_format f = {.kind = ACM_AUDIO_L16, .rate = 1, .channels = 1};
    cr_assert_null(acm_audio_stream_create(&f, acm_audio_default_params(), err, sizeof err));
    cr_assert(strstr(err, "sample rate 1 Hz"), "%s", err);
}

Test(audio, limits) {
    int16_t *s = sine16(32000, 300, 16000, 0.3);
    bytes w = wav16(s, 32000, 16000);
    acm_audio_format f = {.kind = ACM_AUDIO_WAV};
    acm_audio_params p = acm_audio_default_params();
    p.max_samples = 16000; /* one second */
    float *out;
    size_t nout;
    char err[256] = "";
    cr_assert_eq(acm_audio_decode(&f, w.b, w.n, p, &out, &nout, err, sizeof err), ACM_AUDIO_ETOOLONG);
    cr_assert(strstr(err, "longer than the limit"), "%s", err);
    /* the caller's buffer too small */
    acm_audio_stream *st = acm_audio_stream_create(&f, acm_audio_default_params(), err, sizeof err);
    float small[10];
    cr_assert_eq(acm_audio_stream_push(st, w.b, w.n, small, 10, &nout, err, sizeof err), ACM_AUDIO_ESPACE);
    cr_assert(strstr(err, "too small"), "%s", err);
    acm_audio_stream_free(st);
    /* buffered formats have a byte limit */
    acm_audio_format fl = {.kind = ACM_AUDIO_FLAC};
    p = acm_audio_default_params();
    p.max_buffered = 1000;
    cr_assert_eq(acm_audio_decode(&fl, w.b, w.n, p, &out, &nout, err, sizeof err), ACM_AUDIO_ETOOLONG);
    free(w.b), free(s);
}

Test(audio, resample_helper) {
    size_t n = 4410;
    float *x = malloc(n * sizeof *x), *y;
    for (size_t i = 0; i < n; i++) x[i] = (float)sin(i * 0.02);
    size_t ny;
    char err[256] = "";
    cr_assert_eq(acm_audio_resample(x, n, 44100, &y, &ny, err, sizeof err), 0, "%s", err);
    cr_assert(ny >= 1599 && ny <= 1601, "%zu", ny);
    free(y);
    cr_assert_eq(acm_audio_resample(x, n, 16000, &y, &ny, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ny, n);
    cr_assert(!memcmp(x, y, n * sizeof *x), "16 kHz passes through bit-exactly");
    free(y), free(x);
}

/* Float WAV samples that are NaN, infinite or absurdly large are refused with a message (fuzzing found NaN reaching
 * the output through libsndfile), on the streaming path (IEEE float 32 and 64) and through libsndfile (FLAC holds no
 * floats, so a WAV with a header only libsndfile reads: WAVE_FORMAT_EXTENSIBLE float with 24-byte cb). */
Test(audio, non_finite_float_samples_are_refused) {
    const float bad[] = {NAN, INFINITY, -INFINITY, 1e30f};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (int bits = 32; bits <= 64; bits += 32) {
            bytes o = {0};
            wav_header(&o, 3, 2, 16000, bits, (uint32_t)(4 * 2 * bits / 8), 0, 0);
            for (int f = 0; f < 4; f++)
                for (int c = 0; c < 2; c++) {
                    double v = f == 2 && c == 1 ? (double)bad[i] : 0.25;
                    if (bits == 32) {
                        float x = (float)v;
                        put(&o, &x, 4);
                    } else {
                        put(&o, &v, 8);
                    }
                }
            float *out = NULL;
            size_t n = 0;
            char err[256] = "";
            int rc = decode("audio/wav", o.b, o.n, &out, &n, err);
            cr_expect_eq(rc, ACM_AUDIO_EINVAL, "value %g, %d bits: rc %d (%s)", (double)bad[i], bits, rc, err);
            cr_expect(strstr(err, "frame 2") && strstr(err, "not a finite number"), "message: %s", err);
            free(out);
            free(o.b);
        }
    /* through libsndfile: a float WAV it wrote itself, with one NaN */
    float x[8] = {0.1f, 0.2f, 0.3f, NAN, 0.1f, 0.2f, 0.3f, 0.4f};
    bytes o = sndfile_bytes(SF_FORMAT_WAVEX | SF_FORMAT_FLOAT, 16000, 1, x, 8);
    float *out = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = decode("audio/wav", o.b, o.n, &out, &n, err);
    cr_expect_eq(rc, ACM_AUDIO_EINVAL, "libsndfile path: rc %d (%s)", rc, err);
    cr_expect(strstr(err, "not a finite number"), "message: %s", err);
    free(out);
    free(o.b);
}
