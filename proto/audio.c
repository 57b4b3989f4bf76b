/*
 * audio.c — media types, the RIFF/WAVE header parser, raw PCM conversion, channel mixdown, libsoxr resampling and the
 * libsndfile fallback for whole-buffered formats. See audio.h for the formats and the contract.
 *
 * Data path of a stream: bytes -> (WAV: header bytes buffered until the "data" chunk starts) -> whole frames (a partial
 * frame is carried to the next push) -> mono float at the source rate (s->mono) -> soxr (or a copy at 16 kHz) -> the
 * caller's buffer. Whole-buffered formats collect their bytes in s->buf and go through the same mono -> soxr path at
 * finish. Deliberately absent: any guessing of a missing rate, dithering, normalisation or DC removal.
 */
#include "audio.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <soxr.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WAV_MAX_HEADER ((size_t)1 << 20) /* chunks before "data" (LIST, bext, ...) larger than this are refused */
/* Float samples (WAV IEEE float, or what libsndfile decodes) beyond this magnitude, NaN or infinite are refused: they
 * are not audio, and summed across channels or through the resampler's filter they would overflow to infinity. */
#define SAMPLE_MAX 65536.0f

typedef enum { ENC_U8, ENC_S16LE, ENC_S16BE, ENC_S24LE, ENC_S32LE, ENC_F32LE, ENC_F64LE } enc_t;
typedef enum { ST_HEADER, ST_DATA, ST_BUFFER, ST_DONE, ST_FAILED } state_t;

struct acm_audio_stream {
    acm_audio_format fmt;
    acm_audio_params params;
    state_t state;
    /* sample layout, known once the header is parsed */
    enc_t enc;
    int rate, channels, frame_bytes;
    uint8_t carry[ACM_AUDIO_MAX_CHANNELS * 8]; /* a partial frame left over from the previous push */
    size_t carry_len;
    int data_bounded;   /* the WAV data chunk has a declared size */
    uint64_t data_left; /* bytes of it still expected */
    uint64_t data_seen; /* bytes of sample data received */
    uint64_t in_frames; /* source frames converted so far */
    /* WAV header bytes (ST_HEADER) or the whole input (ST_BUFFER) */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    /* mono scratch at the source rate */
    float *mono;
    size_t mono_cap;
    soxr_t soxr; /* NULL while unknown or when the rate is already 16 kHz */
    size_t produced;
};

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

acm_audio_params acm_audio_default_params(void) {
    acm_audio_params p = {.max_samples = (size_t)ACM_AUDIO_RATE * 600, .max_buffered = (size_t)64 << 20};
    return p;
}

/* ---- media types -------------------------------------------------------------------------------------------------- */

static int parse_int_param(const char *v, const char *name, int lo, int hi, int *out, char *err, size_t errlen) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: %s=%s is not an integer in [%d, %d]", name, v, lo, hi);
    *out = (int)x;
    return 0;
}

int acm_audio_parse_type(acm_audio_format *out, const char *content_type, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!content_type || !*content_type) return fail(err, errlen, ACM_AUDIO_EFORMAT, "audio: no media type");
    char buf[256];
    if (strlen(content_type) >= sizeof buf)
        return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: media type longer than %zu bytes", sizeof buf - 1);
    strcpy(buf, content_type);
    char *p = buf, *semi = strchr(p, ';');
    if (semi) *semi = 0;
    while (isspace((unsigned char)*p)) p++;
    for (char *e = p + strlen(p); e > p && isspace((unsigned char)e[-1]);) *--e = 0;
    static const struct {
        const char *name;
        acm_audio_kind kind;
    } types[] = {{"audio/wav", ACM_AUDIO_WAV},         {"audio/x-wav", ACM_AUDIO_WAV},
                 {"audio/wave", ACM_AUDIO_WAV},        {"audio/vnd.wave", ACM_AUDIO_WAV},
                 {"audio/flac", ACM_AUDIO_FLAC},       {"audio/x-flac", ACM_AUDIO_FLAC},
                 {"audio/ogg", ACM_AUDIO_OGG},         {"application/ogg", ACM_AUDIO_OGG},
                 {"audio/l16", ACM_AUDIO_L16},         {"audio/x-raw", ACM_AUDIO_S16LE}};
    int kind = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(p, types[i].name)) kind = (int)types[i].kind;
    if (!kind)
        return fail(err, errlen, ACM_AUDIO_EFORMAT,
                    "audio: unsupported media type '%s' (accepted: audio/wav, audio/flac, audio/ogg, "
                    "audio/L16;rate=R, audio/x-raw;format=S16LE;rate=R)", p);
    int rate = 0, channels = 1, have_format = 0;
    /* parameters: ;name=value or ;name="value" */
    for (char *q = semi ? semi + 1 : NULL; q && *q;) {
        char *next = strchr(q, ';');
        if (next) *next++ = 0;
        while (isspace((unsigned char)*q)) q++;
        char *eq = strchr(q, '=');
        if (*q && !eq) return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: malformed media type parameter '%s'", q);
        if (eq) {
            *eq = 0;
            char *name = q, *val = eq + 1;
            for (char *e = name + strlen(name); e > name && isspace((unsigned char)e[-1]);) *--e = 0;
            while (isspace((unsigned char)*val)) val++;
            for (char *e = val + strlen(val); e > val && isspace((unsigned char)e[-1]);) *--e = 0;
            size_t vl = strlen(val);
            if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
                val[vl - 1] = 0;
                val++;
            }
            int rc = 0;
            if (!strcasecmp(name, "rate"))
                rc = parse_int_param(val, "rate", ACM_AUDIO_MIN_RATE, ACM_AUDIO_MAX_RATE, &rate, err, errlen);
            else if (!strcasecmp(name, "channels"))
                rc = parse_int_param(val, "channels", 1, ACM_AUDIO_MAX_CHANNELS, &channels, err, errlen);
            else if (!strcasecmp(name, "format") && kind == ACM_AUDIO_S16LE) {
                if (!strcasecmp(val, "S16LE")) kind = ACM_AUDIO_S16LE;
                else if (!strcasecmp(val, "F32LE")) kind = ACM_AUDIO_F32LE;
                else
                    return fail(err, errlen, ACM_AUDIO_EFORMAT,
                                "audio: audio/x-raw format=%s is not supported (S16LE or F32LE)", val);
                have_format = 1;
            }
            if (rc) return rc;
        }
        q = next;
    }
    out->kind = (acm_audio_kind)kind;
    if (kind == ACM_AUDIO_L16 || kind == ACM_AUDIO_S16LE || kind == ACM_AUDIO_F32LE) {
        if ((kind == ACM_AUDIO_S16LE || kind == ACM_AUDIO_F32LE) && !have_format)
            return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: audio/x-raw needs format=S16LE (or F32LE)");
        if (!rate)
            return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: raw audio needs a rate parameter (e.g. %s;rate=16000)",
                        kind == ACM_AUDIO_L16 ? "audio/L16" : "audio/x-raw;format=S16LE");
        out->rate = rate;
        out->channels = channels;
    }
    return 0;
}

int acm_audio_sniff(acm_audio_format *out, const uint8_t *b, size_t n, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WAVE", 4)) out->kind = ACM_AUDIO_WAV;
    else if (n >= 4 && !memcmp(b, "fLaC", 4)) out->kind = ACM_AUDIO_FLAC;
    else if (n >= 4 && !memcmp(b, "OggS", 4)) out->kind = ACM_AUDIO_OGG;
    else if (n == 0) return fail(err, errlen, ACM_AUDIO_EEMPTY, "audio: empty body (0 bytes)");
    else return fail(err, errlen, ACM_AUDIO_EFORMAT, "audio: unrecognised container (not RIFF/WAVE, FLAC or Ogg)");
    return 0;
}

/* ---- stream ------------------------------------------------------------------------------------------------------- */

static int enc_bytes(enc_t e) {
    switch (e) {
    case ENC_U8: return 1;
    case ENC_S16LE: case ENC_S16BE: return 2;
    case ENC_S24LE: return 3;
    case ENC_S32LE: case ENC_F32LE: return 4;
    case ENC_F64LE: return 8;
    }
    return 1;
}

static int set_layout(acm_audio_stream *s, enc_t enc, int rate, int channels, char *err, size_t errlen) {
    if (rate < ACM_AUDIO_MIN_RATE || rate > ACM_AUDIO_MAX_RATE)
        return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: declared sample rate %d Hz is outside [%d, %d]", rate,
                    ACM_AUDIO_MIN_RATE, ACM_AUDIO_MAX_RATE);
    if (channels < 1 || channels > ACM_AUDIO_MAX_CHANNELS)
        return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: %d channels (1..%d accepted)", channels,
                    ACM_AUDIO_MAX_CHANNELS);
    s->enc = enc;
    s->rate = rate;
    s->channels = channels;
    s->frame_bytes = enc_bytes(enc) * channels;
    if (rate != ACM_AUDIO_RATE) {
        soxr_error_t e;
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
        soxr_runtime_spec_t rt = soxr_runtime_spec(1); /* one thread: the caller owns parallelism */
        s->soxr = soxr_create((double)rate, (double)ACM_AUDIO_RATE, 1, &e, &io, &q, &rt);
        if (!s->soxr) return fail(err, errlen, ACM_AUDIO_ENOMEM, "audio: soxr_create: %s", e ? e : "failed");
    }
    return 0;
}

acm_audio_stream *acm_audio_stream_create(const acm_audio_format *fmt, acm_audio_params params, char *err,
                                          size_t errlen) {
    if (!fmt) {
        fail(err, errlen, ACM_AUDIO_EINVAL, "audio: no format");
        return NULL;
    }
    acm_audio_stream *s = calloc(1, sizeof *s);
    if (!s) {
        fail(err, errlen, ACM_AUDIO_ENOMEM, "audio: out of memory");
        return NULL;
    }
    s->fmt = *fmt;
    s->params = params;
    int rc = 0;
    switch (fmt->kind) {
    case ACM_AUDIO_WAV: s->state = ST_HEADER; break;
    case ACM_AUDIO_FLAC: case ACM_AUDIO_OGG: s->state = ST_BUFFER; break;
    case ACM_AUDIO_L16: rc = set_layout(s, ENC_S16BE, fmt->rate, fmt->channels, err, errlen); s->state = ST_DATA; break;
    case ACM_AUDIO_S16LE: rc = set_layout(s, ENC_S16LE, fmt->rate, fmt->channels, err, errlen); s->state = ST_DATA; break;
    case ACM_AUDIO_F32LE: rc = set_layout(s, ENC_F32LE, fmt->rate, fmt->channels, err, errlen); s->state = ST_DATA; break;
    default: rc = fail(err, errlen, ACM_AUDIO_EFORMAT, "audio: unknown format kind %d", (int)fmt->kind);
    }
    if (rc) {
        acm_audio_stream_free(s);
        return NULL;
    }
    return s;
}

void acm_audio_stream_free(acm_audio_stream *s) {
    if (!s) return;
    if (s->soxr) soxr_delete(s->soxr);
    free(s->buf);
    free(s->mono);
    free(s);
}

int acm_audio_stream_rate(const acm_audio_stream *s) { return s->rate; }
int acm_audio_stream_channels(const acm_audio_stream *s) { return s->channels; }

/* Output samples for in_frames source frames: the resampler's total is round(in * 16000 / rate); +2 covers rounding. */
static size_t out_for_frames(int rate, uint64_t frames) {
    if (rate == ACM_AUDIO_RATE) return (size_t)frames;
    return (size_t)(frames * (uint64_t)ACM_AUDIO_RATE / (uint64_t)rate) + 2;
}

size_t acm_audio_stream_max_out(const acm_audio_stream *s, size_t n_bytes) {
    if (s->state == ST_HEADER || s->frame_bytes == 0) /* worst case: 8-bit mono at the lowest rate */
        return out_for_frames(ACM_AUDIO_MIN_RATE, n_bytes + sizeof s->carry) + 2;
    if (s->state != ST_DATA) return 0;
    uint64_t frames = s->in_frames + (s->carry_len + n_bytes) / (size_t)s->frame_bytes;
    size_t total = out_for_frames(s->rate, frames);
    return total > s->produced ? total - s->produced : 0;
}

static int64_t sndfile_probe(const acm_audio_stream *s, int *rate);

size_t acm_audio_stream_max_finish(const acm_audio_stream *s) {
    if (s->state == ST_BUFFER) { /* the container's declared length, or the configured ceiling if it has none */
        int rate = 0;
        int64_t frames = sndfile_probe(s, &rate);
        if (frames <= 0 || rate < ACM_AUDIO_MIN_RATE || rate > ACM_AUDIO_MAX_RATE) return 0; /* finish will say why */
        size_t total = frames == INT64_MAX ? s->params.max_samples : out_for_frames(rate, (uint64_t)frames);
        return (total < s->params.max_samples ? total : s->params.max_samples) + 2;
    }
    if (s->state != ST_DATA) return 0;
    size_t total = out_for_frames(s->rate, s->in_frames);
    return total > s->produced ? total - s->produced : 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* mono[0..n) at the source rate -> the caller's buffer (resampled or copied). flush: drain soxr afterwards. */
static int emit(acm_audio_stream *s, const float *mono, size_t n, int flush, float *out, size_t out_cap, size_t *w,
                char *err, size_t errlen) {
    if (!s->soxr) {
        if (n > out_cap - *w)
            return fail(err, errlen, ACM_AUDIO_ESPACE, "audio: output buffer too small (%zu free, %zu needed)",
                        out_cap - *w, n);
        memcpy(out + *w, mono, n * sizeof *mono);
        *w += n;
    } else {
        size_t off = 0;
        while (off < n) {
            size_t idone = 0, odone = 0;
            soxr_error_t e = soxr_process(s->soxr, mono + off, n - off, &idone, out + *w, out_cap - *w, &odone);
            if (e) return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: soxr_process: %s", e);
            off += idone;
            *w += odone;
            if (idone == 0 && odone == 0)
                return fail(err, errlen, ACM_AUDIO_ESPACE, "audio: output buffer too small for the resampler");
        }
        if (flush) {
            for (;;) {
                size_t odone = 0;
                soxr_error_t e = soxr_process(s->soxr, NULL, 0, NULL, out + *w, out_cap - *w, &odone);
                if (e) return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: soxr_process: %s", e);
                *w += odone;
                if (odone == 0) break;
                if (*w == out_cap)
                    return fail(err, errlen, ACM_AUDIO_ESPACE, "audio: output buffer too small for the resampler tail");
            }
        }
    }
    return 0;
}

static float sample_at(enc_t e, const uint8_t *p) {
    switch (e) {
    case ENC_U8: return ((float)p[0] - 128.0f) / 128.0f;
    case ENC_S16LE: return (float)(int16_t)(uint16_t)(p[0] | p[1] << 8) / 32768.0f;
    case ENC_S16BE: return (float)(int16_t)(uint16_t)(p[1] | p[0] << 8) / 32768.0f;
    case ENC_S24LE: {
        int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24) >> 8;
        return (float)v / 8388608.0f;
    }
    case ENC_S32LE: {
        int32_t v = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        return (float)((double)v / 2147483648.0);
    }
    case ENC_F32LE: {
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case ENC_F64LE: {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--) u = u << 8 | p[i];
        double d;
        memcpy(&d, &u, 8);
        return (float)d;
    }
    }
    return 0.0f;
}

static int bad_sample(float v, uint64_t frame, char *err, size_t errlen) {
    return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: float sample %g in frame %llu is not a finite number within "
                "[-%g, %g]", (double)v, (unsigned long long)frame, (double)SAMPLE_MAX, (double)SAMPLE_MAX);
}

/* Sample bytes (after any header) -> mono -> output. */
static int feed_data(acm_audio_stream *s, const uint8_t *b, size_t n, float *out, size_t out_cap, size_t *w,
                     char *err, size_t errlen) {
    if (s->data_bounded) {
        if (s->data_left == 0) return 0; /* chunks after "data" are ignored */
        if (n > s->data_left) n = (size_t)s->data_left;
        s->data_left -= n;
    }
    s->data_seen += n;
    size_t fb = (size_t)s->frame_bytes;
    size_t frames = (s->carry_len + n) / fb;
    uint64_t total = s->in_frames + frames;
    if (out_for_frames(s->rate, total) > s->params.max_samples + 2)
        return fail(err, errlen, ACM_AUDIO_ETOOLONG, "audio: longer than the limit of %zu samples (%.1f s)",
                    s->params.max_samples, (double)s->params.max_samples / ACM_AUDIO_RATE);
    if (grow((void **)&s->mono, &s->mono_cap, frames + 1, sizeof(float)))
        return fail(err, errlen, ACM_AUDIO_ENOMEM, "audio: out of memory");
    size_t bps = (size_t)enc_bytes(s->enc);
    float inv = 1.0f / (float)s->channels;
    size_t f = 0;
    const int is_float = s->enc == ENC_F32LE || s->enc == ENC_F64LE;
    /* first frame: completes the carry */
    if (s->carry_len && frames) {
        size_t need = fb - s->carry_len;
        memcpy(s->carry + s->carry_len, b, need);
        float acc = 0;
        for (int c = 0; c < s->channels; c++) {
            float v = sample_at(s->enc, s->carry + (size_t)c * bps);
            if (is_float && !(fabsf(v) <= SAMPLE_MAX)) return bad_sample(v, s->in_frames, err, errlen);
            acc += v;
        }
        s->mono[f++] = s->channels == 1 ? acc : acc * inv;
        b += need;
        n -= need;
        s->carry_len = 0;
    }
    for (; f < frames; f++) {
        float acc = 0;
        for (int c = 0; c < s->channels; c++) {
            float v = sample_at(s->enc, b + (size_t)c * bps);
            if (is_float && !(fabsf(v) <= SAMPLE_MAX)) return bad_sample(v, s->in_frames + f, err, errlen);
            acc += v;
        }
        s->mono[f] = s->channels == 1 ? acc : acc * inv;
        b += fb;
        n -= fb;
    }
    if (n) { /* a partial frame stays for the next push */
        memcpy(s->carry + s->carry_len, b, n);
        s->carry_len += n;
    }
    s->in_frames = total;
    size_t before = *w;
    int rc = emit(s, s->mono, frames, 0, out, out_cap, w, err, errlen);
    s->produced += *w - before;
    return rc;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Parses the WAV header in s->buf. Returns 1 when the "data" chunk was reached (*data_off = its first sample byte),
 * 0 when more bytes are needed, 2 when the encoding is for libsndfile (buffer whole), or a negative error. */
static int parse_wav(acm_audio_stream *s, size_t *data_off, char *err, size_t errlen) {
    const uint8_t *b = s->buf;
    size_t n = s->buf_len;
    if (n < 12) return 0;
    if (memcmp(b, "RIFF", 4) || memcmp(b + 8, "WAVE", 4))
        return fail(err, errlen, ACM_AUDIO_EFORMAT, "audio: not a RIFF/WAVE file (bad magic)");
    size_t off = 12;
    int have_fmt = 0;
    int tag = 0, channels = 0, rate = 0, align = 0, bits = 0;
    for (;;) {
        if (n - off < 8) return 0;
        uint32_t size = le32(b + off + 4);
        if (!memcmp(b + off, "data", 4)) {
            if (!have_fmt) return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: WAV 'data' chunk before 'fmt '");
            break;
        }
        size_t padded = (size_t)size + (size & 1);
        if (padded > WAV_MAX_HEADER || off + 8 + padded > WAV_MAX_HEADER)
            return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: WAV chunks before 'data' exceed %zu bytes",
                        WAV_MAX_HEADER);
        if (n - off - 8 < padded) return 0;
        if (!memcmp(b + off, "fmt ", 4)) {
            const uint8_t *f = b + off + 8;
            if (size < 16) return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: WAV 'fmt ' chunk of %u bytes", size);
            tag = le16(f);
            channels = le16(f + 2);
            rate = (int)(le32(f + 4) > INT_MAX ? INT_MAX : le32(f + 4));
            align = le16(f + 12);
            bits = le16(f + 14);
            if (tag == 0xFFFE && size >= 40) tag = le16(f + 24);
            have_fmt = 1;
        }
        off += 8 + padded;
    }
    /* validate what the header declares before any sample is read */
    if (channels < 1 || channels > ACM_AUDIO_MAX_CHANNELS)
        return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: WAV declares %d channels (1..%d accepted)", channels,
                    ACM_AUDIO_MAX_CHANNELS);
    if (rate < ACM_AUDIO_MIN_RATE || rate > ACM_AUDIO_MAX_RATE)
        return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: WAV declares a sample rate of %d Hz (accepted %d..%d)", rate,
                    ACM_AUDIO_MIN_RATE, ACM_AUDIO_MAX_RATE);
    int enc = -1;
    if (tag == 1 && bits == 8) enc = ENC_U8;
    else if (tag == 1 && bits == 16) enc = ENC_S16LE;
    else if (tag == 1 && bits == 24) enc = ENC_S24LE;
    else if (tag == 1 && bits == 32) enc = ENC_S32LE;
    else if (tag == 3 && bits == 32) enc = ENC_F32LE;
    else if (tag == 3 && bits == 64) enc = ENC_F64LE;
    if (enc < 0) return 2;
    if (align != channels * bits / 8)
        return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: WAV block align %d does not match %d channels x %d bits",
                    align, channels, bits);
    int rc = set_layout(s, (enc_t)enc, rate, channels, err, errlen);
    if (rc) return rc;
    uint32_t dsize = le32(b + off + 4);
    s->data_bounded = dsize != 0 && dsize != 0xFFFFFFFFu;
    s->data_left = dsize;
    *data_off = off + 8;
    return 1;
}

static int buffer_bytes(acm_audio_stream *s, const void *bytes, size_t n, size_t limit, char *err, size_t errlen) {
    if (n > limit - s->buf_len)
        return fail(err, errlen, ACM_AUDIO_ETOOLONG, "audio: input larger than the buffering limit of %zu bytes",
                    limit);
    if (grow((void **)&s->buf, &s->buf_cap, s->buf_len + n, 1))
        return fail(err, errlen, ACM_AUDIO_ENOMEM, "audio: out of memory");
    if (n) memcpy(s->buf + s->buf_len, bytes, n);
    s->buf_len += n;
    return 0;
}

int acm_audio_stream_push(acm_audio_stream *s, const void *bytes, size_t n, float *out, size_t out_cap,
                          size_t *n_out, char *err, size_t errlen) {
    *n_out = 0;
    int rc = 0;
    switch (s->state) {
    case ST_FAILED: return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: stream already failed");
    case ST_DONE: return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: stream already finished");
    case ST_BUFFER: rc = buffer_bytes(s, bytes, n, s->params.max_buffered, err, errlen); break;
    case ST_DATA: rc = feed_data(s, bytes, n, out, out_cap, n_out, err, errlen); break;
    case ST_HEADER: {
        /* take only what the header can need, so that a whole file pushed at once is not copied */
        size_t room = WAV_MAX_HEADER + 8 - s->buf_len, take = n < room ? n : room;
        rc = buffer_bytes(s, bytes, take, WAV_MAX_HEADER + 8, err, errlen);
        if (rc) break;
        const uint8_t *rest = (const uint8_t *)bytes + take;
        size_t rest_n = n - take, data_off = 0;
        rc = parse_wav(s, &data_off, err, errlen);
        if (rc == 0) break;
        if (rc == 2) { /* an encoding for libsndfile: keep everything and decode at finish */
            s->state = ST_BUFFER;
            rc = s->buf_len > s->params.max_buffered
                     ? fail(err, errlen, ACM_AUDIO_ETOOLONG, "audio: input larger than the buffering limit of %zu bytes",
                            s->params.max_buffered)
                     : buffer_bytes(s, rest, rest_n, s->params.max_buffered, err, errlen);
            break;
        }
        if (rc < 0) break;
        s->state = ST_DATA;
        uint8_t *hdr = s->buf;
        size_t hdr_n = s->buf_len;
        s->buf = NULL;
        s->buf_len = s->buf_cap = 0;
        rc = feed_data(s, hdr + data_off, hdr_n - data_off, out, out_cap, n_out, err, errlen);
        free(hdr);
        if (!rc && rest_n) {
            size_t more = 0;
            rc = feed_data(s, rest, rest_n, out + *n_out, out_cap - *n_out, &more, err, errlen);
            *n_out += more;
        }
        break;
    }
    }
    if (rc) s->state = ST_FAILED;
    return rc;
}

/* ---- libsndfile over a memory buffer ------------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    sf_count_t len, pos;
} membuf;

static sf_count_t vio_len(void *u) { return ((membuf *)u)->len; }
static sf_count_t vio_seek(sf_count_t off, int whence, void *u) {
    membuf *m = u;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
    sf_count_t np = base + off;
    if (np < 0 || np > m->len) return -1;
    m->pos = np;
    return np;
}
static sf_count_t vio_read(void *ptr, sf_count_t count, void *u) {
    membuf *m = u;
    if (count > m->len - m->pos) count = m->len - m->pos;
    if (count <= 0) return 0;
    memcpy(ptr, m->p + m->pos, (size_t)count);
    m->pos += count;
    return count;
}
static sf_count_t vio_write(const void *ptr, sf_count_t count, void *u) { return 0; }
static sf_count_t vio_tell(void *u) { return ((membuf *)u)->pos; }

/* Declared frames and rate of the buffered input, or -1 when libsndfile cannot open it. */
static int64_t sndfile_probe(const acm_audio_stream *s, int *rate) {
    SF_VIRTUAL_IO vio = {vio_len, vio_seek, vio_read, vio_write, vio_tell};
    membuf m = {s->buf, (sf_count_t)s->buf_len, 0};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    if (s->buf_len == 0) return -1;
    SNDFILE *sf = sf_open_virtual(&vio, SFM_READ, &info, &m);
    if (!sf) return -1;
    sf_close(sf);
    *rate = info.samplerate;
    return info.frames == SF_COUNT_MAX ? INT64_MAX : (int64_t)info.frames;
}

static int decode_sndfile(acm_audio_stream *s, float *out, size_t out_cap, size_t *w, char *err, size_t errlen) {
    if (s->buf_len == 0) return fail(err, errlen, ACM_AUDIO_EEMPTY, "audio: empty body (0 bytes)");
    SF_VIRTUAL_IO vio = {vio_len, vio_seek, vio_read, vio_write, vio_tell};
    membuf m = {s->buf, (sf_count_t)s->buf_len, 0};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&vio, SFM_READ, &info, &m);
    if (!sf)
        return fail(err, errlen, ACM_AUDIO_EFORMAT, "audio: cannot decode %s: %s",
                    s->fmt.kind == ACM_AUDIO_FLAC ? "FLAC" : s->fmt.kind == ACM_AUDIO_OGG ? "Ogg" : "WAV",
                    sf_strerror(NULL));
    int major = info.format & SF_FORMAT_TYPEMASK;
    int ok_major = s->fmt.kind == ACM_AUDIO_FLAC ? major == SF_FORMAT_FLAC
                   : s->fmt.kind == ACM_AUDIO_OGG ? major == SF_FORMAT_OGG
                                                  : (major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX);
    int rc = 0;
    float *tmp = NULL;
    if (!ok_major) {
        rc = fail(err, errlen, ACM_AUDIO_EFORMAT, "audio: the bytes are not %s (libsndfile format 0x%x)",
                  s->fmt.kind == ACM_AUDIO_FLAC ? "FLAC" : s->fmt.kind == ACM_AUDIO_OGG ? "Ogg" : "WAV", major);
        goto done;
    }
    rc = set_layout(s, ENC_F32LE, info.samplerate, info.channels, err, errlen);
    if (rc) goto done;
    enum { BLOCK = 4096 };
    tmp = malloc((size_t)BLOCK * (size_t)info.channels * sizeof *tmp);
    if (!tmp || grow((void **)&s->mono, &s->mono_cap, BLOCK, sizeof(float))) {
        rc = fail(err, errlen, ACM_AUDIO_ENOMEM, "audio: out of memory");
        goto done;
    }
    for (;;) {
        sf_count_t got = sf_readf_float(sf, tmp, BLOCK);
        if (got <= 0) break;
        s->in_frames += (uint64_t)got;
        if (out_for_frames(s->rate, s->in_frames) > s->params.max_samples + 2) {
            rc = fail(err, errlen, ACM_AUDIO_ETOOLONG, "audio: longer than the limit of %zu samples (%.1f s)",
                      s->params.max_samples, (double)s->params.max_samples / ACM_AUDIO_RATE);
            goto done;
        }
        for (sf_count_t i = 0; i < got; i++) {
            float acc = 0;
            for (int c = 0; c < info.channels; c++) {
                float v = tmp[i * info.channels + c];
                if (!(fabsf(v) <= SAMPLE_MAX)) {
                    rc = bad_sample(v, s->in_frames - (uint64_t)got + (uint64_t)i, err, errlen);
                    goto done;
                }
                acc += v;
            }
            s->mono[i] = acc / (float)info.channels;
        }
        size_t before = *w;
        rc = emit(s, s->mono, (size_t)got, 0, out, out_cap, w, err, errlen);
        s->produced += *w - before;
        if (rc) goto done;
    }
    if (sf_error(sf)) {
        rc = fail(err, errlen, ACM_AUDIO_ETRUNC, "audio: decoding failed: %s", sf_strerror(sf));
        goto done;
    }
    if (info.frames > 0 && s->in_frames < (uint64_t)info.frames) {
        rc = fail(err, errlen, ACM_AUDIO_ETRUNC, "audio: truncated: %llu of %lld declared frames",
                  (unsigned long long)s->in_frames, (long long)info.frames);
        goto done;
    }
done:
    free(tmp);
    sf_close(sf);
    return rc;
}

int acm_audio_stream_finish(acm_audio_stream *s, float *out, size_t out_cap, size_t *n_out, char *err,
                            size_t errlen) {
    *n_out = 0;
    int rc = 0;
    switch (s->state) {
    case ST_FAILED: return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: stream already failed");
    case ST_DONE: return fail(err, errlen, ACM_AUDIO_EINVAL, "audio: stream already finished");
    case ST_HEADER:
        rc = s->buf_len == 0 ? fail(err, errlen, ACM_AUDIO_EEMPTY, "audio: empty body (0 bytes)")
                             : fail(err, errlen, ACM_AUDIO_ETRUNC,
                                    "audio: truncated WAV: the header ends after %zu bytes, before the 'data' chunk",
                                    s->buf_len);
        break;
    case ST_BUFFER: rc = decode_sndfile(s, out, out_cap, n_out, err, errlen); break;
    case ST_DATA:
        if (s->data_bounded && s->data_left)
            rc = fail(err, errlen, ACM_AUDIO_ETRUNC, "audio: truncated WAV: %llu of %llu declared data bytes",
                      (unsigned long long)s->data_seen, (unsigned long long)(s->data_seen + s->data_left));
        else if (s->carry_len)
            rc = fail(err, errlen, ACM_AUDIO_ETRUNC, "audio: %zu trailing bytes do not make a whole %d-byte frame",
                      s->carry_len, s->frame_bytes);
        break;
    }
    if (!rc && s->soxr) {
        size_t before = *n_out;
        rc = emit(s, NULL, 0, 1, out, out_cap, n_out, err, errlen);
        s->produced += *n_out - before;
    }
    if (!rc && s->produced == 0) rc = fail(err, errlen, ACM_AUDIO_EEMPTY, "audio: no audio samples");
    s->state = rc ? ST_FAILED : ST_DONE;
    return rc;
}

/* ---- whole buffers ------------------------------------------------------------------------------------------------ */

int acm_audio_decode(const acm_audio_format *fmt, const void *bytes, size_t n, acm_audio_params params, float **out,
                     size_t *n_out, char *err, size_t errlen) {
    *out = NULL;
    *n_out = 0;
    acm_audio_format sniffed;
    if (!fmt) {
        int rc = acm_audio_sniff(&sniffed, bytes, n, err, errlen);
        if (rc) return rc;
        fmt = &sniffed;
    }
    if (n == 0) return fail(err, errlen, ACM_AUDIO_EEMPTY, "audio: empty body (0 bytes)");
    acm_audio_stream *s = acm_audio_stream_create(fmt, params, err, errlen);
    if (!s) return ACM_AUDIO_EINVAL;
    /* Pushes of at most 64 KiB into a growing buffer: the bound of each push is then small even before the WAV
     * header says how many bytes a sample takes. */
    enum { PIECE = 1 << 16 };
    const uint8_t *b = bytes;
    size_t got = 0, cap = 0, off = 0;
    float *buf = NULL;
    int rc = 0;
    for (int last = 0; !rc && !last;) {
        size_t piece = n - off < PIECE ? n - off : PIECE;
        last = off + piece == n;
        size_t need = got + acm_audio_stream_max_out(s, piece) + 16;
        if (need > cap) {
            size_t c = cap ? cap : 4096;
            while (c < need) c *= 2;
            float *nb = realloc(buf, c * sizeof *nb);
            if (!nb) {
                rc = fail(err, errlen, ACM_AUDIO_ENOMEM, "audio: out of memory");
                break;
            }
            buf = nb;
            cap = c;
        }
        size_t w = 0;
        rc = acm_audio_stream_push(s, b + off, piece, buf + got, cap - got, &w, err, errlen);
        got += w;
        off += piece;
    }
    if (!rc) {
        size_t need = got + acm_audio_stream_max_finish(s) + 16;
        if (need > cap) {
            float *nb = realloc(buf, need * sizeof *nb);
            if (!nb) rc = fail(err, errlen, ACM_AUDIO_ENOMEM, "audio: out of memory");
            else {
                buf = nb;
                cap = need;
            }
        }
    }
    if (!rc) {
        size_t more = 0;
        rc = acm_audio_stream_finish(s, buf + got, cap - got, &more, err, errlen);
        got += more;
    }
    acm_audio_stream_free(s);
    if (rc) {
        free(buf);
        return rc;
    }
    float *shrunk = realloc(buf, got * sizeof *buf); /* give back the slack of the bounds (got > 0 after finish) */
    *out = shrunk ? shrunk : buf;
    *n_out = got;
    return 0;
}

int acm_audio_resample(const float *in, size_t n, int in_rate, float **out, size_t *n_out, char *err, size_t errlen) {
    acm_audio_format f = {.kind = ACM_AUDIO_F32LE, .rate = in_rate, .channels = 1};
    acm_audio_params p = acm_audio_default_params();
    p.max_samples = out_for_frames(in_rate < ACM_AUDIO_MIN_RATE ? ACM_AUDIO_MIN_RATE : in_rate, n) + 16;
    /* host float is little-endian on every platform this project builds for (x86-64) */
    return acm_audio_decode(&f, in, n * sizeof *in, p, out, n_out, err, errlen);
}
