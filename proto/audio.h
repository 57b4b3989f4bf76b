/*
 * audio.h — request audio bytes -> 16 kHz mono float PCM in [-1, 1]. Pure functions over the caller's buffers: no I/O,
 * no globals, no threads, no prints. Errors are negative ACM_AUDIO_E* codes with a message in the caller's buffer.
 *
 * Accepted formats (the media type of the request body, or of a WebSocket stream's first message):
 *   audio/wav, audio/x-wav, audio/wave, audio/vnd.wave  RIFF/WAVE. PCM 8 (unsigned), 16, 24, 32 bit and IEEE float
 *                         32/64 (WAVE_FORMAT_PCM 1, IEEE_FLOAT 3, EXTENSIBLE 0xFFFE with either sub-format) are parsed
 *                         here and decoded incrementally; any other WAVE encoding (mu-law, A-law, ADPCM, ...) is
 *                         buffered whole and decoded by libsndfile.
 *   audio/flac, audio/x-flac, audio/ogg, application/ogg  buffered whole, decoded by libsndfile (FLAC, Ogg Vorbis/Opus
 *                         as far as the installed libsndfile supports them).
 *   audio/L16;rate=R[;channels=C]          RFC 2586: signed 16-bit big-endian, interleaved. rate is required.
 *   audio/x-raw;format=S16LE;rate=R[;channels=C]  signed 16-bit little-endian, interleaved (GStreamer caps naming);
 *                         format and rate are required (format=F32LE is accepted too: 32-bit float little-endian).
 * Channels (1..ACM_AUDIO_MAX_CHANNELS) are mixed down by averaging. Rates in [ACM_AUDIO_MIN_RATE, ACM_AUDIO_MAX_RATE]
 * are resampled to 16 kHz with libsoxr (high quality, linear phase); 16 kHz input is passed through bit-exactly.
 *
 * RIFF/WAVE, the fields read here (all little-endian):
 *   0  "RIFF"  4  u32 riff size (ignored: streaming writers put 0 or 0xFFFFFFFF)  8  "WAVE"
 *   then chunks: 4-byte id, u32 size, payload padded to an even length. "fmt " (>= 16 bytes):
 *     u16 format tag, u16 channels, u32 sample rate, u32 byte rate (ignored), u16 block align, u16 bits per sample,
 *     [u16 cbSize, u16 valid bits, u32 channel mask, 16-byte sub-format GUID whose first u16 is the real tag]
 *   "data": the samples. A data size of 0 or 0xFFFFFFFF means "until the end of the stream"; any other size must be
 *   delivered in full (fewer bytes -> ACM_AUDIO_ETRUNC at finish). Chunks after "data" are ignored.
 *
 * Incremental use (one stream per request; not thread-safe, but distinct streams are independent):
 *   s = acm_audio_stream_create(&fmt, params, err, n);
 *   repeat: acm_audio_stream_push(s, bytes, len, ...)    -> any 16 kHz samples ready so far
 *   acm_audio_stream_finish(s, ...)                      -> the rest (resampler tail, whole-buffered formats)
 * The samples produced are the same however the bytes are split into pushes. acm_audio_decode does all of this for
 * one whole buffer.
 */
#ifndef ACM_PROTO_AUDIO_H
#define ACM_PROTO_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#define ACM_AUDIO_RATE 16000        /* the rate every decoder produces */
#define ACM_AUDIO_MIN_RATE 4000     /* below this no speech band survives: refuse rather than guess */
#define ACM_AUDIO_MAX_RATE 384000   /* the highest rate common hardware records */
#define ACM_AUDIO_MAX_CHANNELS 8

enum {
    ACM_AUDIO_EFORMAT = -1,  /* unknown or unsupported media type or encoding */
    ACM_AUDIO_EINVAL = -2,   /* malformed parameters (rate, channels) or malformed bytes (also: a float sample that
                              * is NaN, infinite or beyond +-65536) */
    ACM_AUDIO_ETRUNC = -3,   /* the bytes end before the declared data does */
    ACM_AUDIO_EEMPTY = -4,   /* no samples at all */
    ACM_AUDIO_ETOOLONG = -5, /* more than params.max_samples output samples */
    ACM_AUDIO_ENOMEM = -6,
    ACM_AUDIO_ESPACE = -7,   /* the caller's output buffer is too small (see acm_audio_stream_max_out) */
};

typedef enum {
    ACM_AUDIO_WAV = 1,  /* RIFF/WAVE */
    ACM_AUDIO_FLAC,     /* FLAC (buffered whole, libsndfile) */
    ACM_AUDIO_OGG,      /* Ogg container (buffered whole, libsndfile) */
    ACM_AUDIO_L16,      /* raw s16 big-endian */
    ACM_AUDIO_S16LE,    /* raw s16 little-endian */
    ACM_AUDIO_F32LE,    /* raw f32 little-endian */
} acm_audio_kind;

typedef struct {
    acm_audio_kind kind;
    int rate;     /* raw kinds: samples per second per channel; 0 for containers (read from the header) */
    int channels; /* raw kinds: 1..ACM_AUDIO_MAX_CHANNELS; 0 for containers */
} acm_audio_format;

typedef struct {
    size_t max_samples;  /* refuse streams longer than this many 16 kHz output samples (decompression bombs) */
    size_t max_buffered; /* refuse whole-buffered inputs (FLAC, OGG, odd WAV encodings) larger than this many bytes */
} acm_audio_params;

acm_audio_params acm_audio_default_params(void); /* 10 minutes of audio, 64 MiB buffered */

/* Parses a media type such as "audio/L16; rate=8000; channels=2" (case-insensitive type and parameter names,
 * whitespace and quoted values allowed). Returns 0, ACM_AUDIO_EFORMAT (unknown type) or ACM_AUDIO_EINVAL (bad or
 * missing parameters). */
int acm_audio_parse_type(acm_audio_format *out, const char *content_type, char *err, size_t errlen);

/* Guesses a container from its first bytes ("RIFF....WAVE", "fLaC", "OggS"): 0 and *out set, or ACM_AUDIO_EFORMAT. */
int acm_audio_sniff(acm_audio_format *out, const uint8_t *buf, size_t len, char *err, size_t errlen);

typedef struct acm_audio_stream acm_audio_stream;

/* NULL on failure (bad format parameters or no memory), with the reason in err. */
acm_audio_stream *acm_audio_stream_create(const acm_audio_format *fmt, acm_audio_params params, char *err,
                                          size_t errlen);
void acm_audio_stream_free(acm_audio_stream *s);

/* An upper bound on the samples one push of n bytes can produce (for sizing the caller's buffer). Before the WAV
 * header is known it assumes the worst case (8-bit mono at the minimum rate). */
size_t acm_audio_stream_max_out(const acm_audio_stream *s, size_t n_bytes);
/* An upper bound on what finish can produce, given everything pushed so far. */
size_t acm_audio_stream_max_finish(const acm_audio_stream *s);

/* Consumes bytes[0..n); writes the 16 kHz samples that are ready to out[0..*n_out). Returns 0 or a negative code;
 * after an error the stream refuses everything. */
int acm_audio_stream_push(acm_audio_stream *s, const void *bytes, size_t n, float *out, size_t out_cap,
                          size_t *n_out, char *err, size_t errlen);
/* Ends the stream: checks that nothing is missing, decodes whole-buffered formats, drains the resampler. */
int acm_audio_stream_finish(acm_audio_stream *s, float *out, size_t out_cap, size_t *n_out, char *err,
                            size_t errlen);

/* After the header is parsed (WAV) or at once (raw kinds): the source rate and channels, else 0. */
int acm_audio_stream_rate(const acm_audio_stream *s);
int acm_audio_stream_channels(const acm_audio_stream *s);

/* Whole buffer -> *out (malloc'd, caller frees) of *n_out 16 kHz samples. fmt NULL: sniff the container. */
int acm_audio_decode(const acm_audio_format *fmt, const void *bytes, size_t n, acm_audio_params params, float **out,
                     size_t *n_out, char *err, size_t errlen);

/* Resamples mono float in[0..n) at in_rate to 16 kHz (libsoxr, the same filter as the streams). *out malloc'd. */
int acm_audio_resample(const float *in, size_t n, int in_rate, float **out, size_t *n_out, char *err, size_t errlen);

#endif
