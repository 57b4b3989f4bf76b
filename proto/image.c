/*
 * image.c — PNG / JPEG / PNM decoding and conversion to the model's input (see image.h for the formats and the
 * conversion steps).
 *
 * One resampler (img__rs) takes the image a row at a time: each row's pixels are converted to the model's channels
 * and composited over the background (steps 1-2), resampled horizontally to the output width, and added with their
 * vertical weights into a [C, th, tw] accumulator (step 3); the last step normalises the accumulator into `out`.
 * Since every input pixel only adds to the accumulator, rows may arrive in any order and in pieces: the passes of an
 * Adam7-interlaced PNG feed the pixels they carry, and no decoder ever holds more than a row (JPEG aside: libturbojpeg
 * decodes a whole DCT-scaled image).
 *
 * Memory: the resampler is one allocation sized from the header (img__rs_plan); PNG adds libspng's context, a few
 * rows and zlib's window, plus the ancillary chunks libspng keeps, capped at IMG__PNG_CACHE; JPEG adds the scaled
 * image and libjpeg's buffers. acm_image_decode_bytes() adds these up before decoding; tests/proto/test_image.c
 * checks the bound against every byte actually allocated.
 */
#include "image.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spng.h>
#include <turbojpeg.h>

#define IMG__MAX_DIM 1000000 /* no side beyond this, whatever the pixel limit: keeps w*h*c products small */
/* libspng keeps ancillary chunks (text, ICC profiles, EXIF; compressed ones inflated) in memory: at most this much in
 * all, and no one chunk over IMG__PNG_CHUNK. Real files carry kilobytes; past this the PNG is refused. */
#define IMG__PNG_CHUNK ((size_t)2 << 20)
#define IMG__PNG_CACHE ((size_t)4 << 20)

static int img__fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *acm_image_format_name(acm_image_format f) {
    switch (f) {
    case ACM_IMAGE_PNG: return "PNG";
    case ACM_IMAGE_JPEG: return "JPEG";
    case ACM_IMAGE_PNM: return "PNM";
    default: return "unknown";
    }
}

acm_image_format acm_image_sniff(const uint8_t *buf, size_t len) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(buf, png_magic, 8) == 0) return ACM_IMAGE_PNG;
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) return ACM_IMAGE_JPEG;
    if (len >= 2 && buf[0] == 'P' && buf[1] >= '1' && buf[1] <= '6') return ACM_IMAGE_PNM;
    return ACM_IMAGE_UNKNOWN;
}

acm_image_format acm_image_format_from_type(const char *t) {
    if (!t) return ACM_IMAGE_UNKNOWN;
    while (*t == ' ' || *t == '\t') t++;
    size_t n = strcspn(t, "; \t");
    static const struct {
        const char *name;
        acm_image_format f;
    } types[] = {
        {"image/png", ACM_IMAGE_PNG},
        {"image/jpeg", ACM_IMAGE_JPEG},
        {"image/jpg", ACM_IMAGE_JPEG},
        {"image/x-portable-anymap", ACM_IMAGE_PNM},
        {"image/x-portable-bitmap", ACM_IMAGE_PNM},
        {"image/x-portable-graymap", ACM_IMAGE_PNM},
        {"image/x-portable-pixmap", ACM_IMAGE_PNM},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i].name) == n && strncasecmp(t, types[i].name, n) == 0) return types[i].f;
    return ACM_IMAGE_UNKNOWN;
}

/* ---- the resampler (steps 1-4 of image.h) ------------------------------------------------------------------------ */

typedef struct {
    int w, h, c;          /* input width, height; samples per pixel (1..4) */
    int C, S;             /* output channels and side */
    int tw, th, ox, oy;   /* the image lands on tw x th output pixels at (ox, oy); the rest is background */
    int ht, vt;           /* taps per output column, per output row */
    double *acc;          /* [C, th, tw] vertical sums */
    float *hw, *vw;       /* [tw, ht], [th, vt] normalised weights */
    float *line;          /* [C, w] one input row after steps 1-2 */
    float *hrow;          /* [C, tw] that row resampled horizontally */
    float *px;            /* [w, 4] a decoder's row as float samples in [0, 255] */
    uint8_t *raw;         /* [w * 8] a decoder's row as bytes (PNG: RGBA16) */
    int *hlo, *hcnt;      /* [tw] first input column and tap count of each output column */
    int *vlo, *vcnt;      /* [th] first input row and tap count of each output row */
    float bg[3];
    size_t bytes;         /* of the one allocation everything above points into */
} img__rs;

/* Resampling weights, separable, one axis at a time:
 *   reducing (n_in > n_out): area averaging. Output i covers the input interval [i s, (i + 1) s), s = n_in / n_out,
 *     and is the mean of the input pixels over it, each weighted by the length it overlaps: no input pixel is
 *     skipped, none reaches beyond the output pixels it overlaps (no blur past the footprint).
 *   enlarging or keeping (n_in <= n_out): the triangle (bilinear) filter between the two nearest input pixels;
 *     an axis kept at its length is copied exactly (weights 1 and 0).
 * Area averaging measured better than the antialiased bilinear filter used before on every case of
 * bench/image_fit.c (+0.7 to +2.1 points: docs/API.md, "Images"). */
static int img__ntaps(int n_in, int n_out) {
    return n_in > n_out ? (int)ceil((double)n_in / n_out) + 1 : 3;
}

/* Weights for n_in -> n_out: output i reads inputs [lo[i], lo[i] + cnt[i]) with weights w[i * taps ..]. */
static void img__taps(int n_in, int n_out, int taps, int *lo, int *cnt, float *w) {
    const double scale = (double)n_in / n_out;
    for (int i = 0; i < n_out; i++) {
        float *wi = w + (size_t)i * taps;
        int a, b;
        double sum = 0;
        if (n_in > n_out) {
            const double a0 = i * scale, a1 = i + 1 == n_out ? n_in : (i + 1) * scale;
            a = (int)floor(a0), b = (int)ceil(a1);
            if (b > n_in) b = n_in;
            if (b - a > taps) b = a + taps;
            for (int x = a; x < b; x++) {
                const double o = fmin(a1, x + 1.0) - fmax(a0, (double)x);
                wi[x - a] = (float)(o > 0 ? o : 0);
                sum += o > 0 ? o : 0;
            }
        } else {
            const double center = (i + 0.5) * scale;
            a = (int)floor(center - 0.5), b = a + 2;
            if (a < 0) a = 0;
            if (b > n_in) b = n_in;
            for (int x = a; x < b; x++) {
                const double t = fabs(x + 0.5 - center), v = t < 1 ? 1 - t : 0;
                wi[x - a] = (float)v;
                sum += v;
            }
        }
        for (int x = a; x < b; x++) wi[x - a] = (float)(wi[x - a] / sum);
        lo[i] = a, cnt[i] = b - a;
    }
}

/* Geometry and sizes for an input of w x h with c samples per pixel; no allocation. */
static void img__rs_plan(img__rs *rs, int w, int h, int c, const acm_image_params *p) {
    memset(rs, 0, sizeof *rs);
    rs->w = w, rs->h = h, rs->c = c, rs->C = p->channels, rs->S = p->size;
    rs->tw = rs->th = p->size;
    if (p->fit == ACM_IMAGE_FIT_LETTERBOX && w != h) { /* the longer side becomes S, the other keeps the ratio */
        const int64_t big = w > h ? w : h;
        int64_t t = ((int64_t)(w > h ? h : w) * p->size * 2 + big) / (2 * big); /* rounded */
        if (t < 1) t = 1;
        if (w > h) rs->th = (int)t;
        else rs->tw = (int)t;
    }
    rs->ox = (rs->S - rs->tw) / 2, rs->oy = (rs->S - rs->th) / 2;
    rs->ht = img__ntaps(w, rs->tw), rs->vt = img__ntaps(h, rs->th);
    const size_t C = (size_t)rs->C;
    rs->bytes = sizeof(double) * C * rs->th * rs->tw +
                sizeof(float) * ((size_t)rs->tw * rs->ht + (size_t)rs->th * rs->vt + C * w + C * rs->tw + 4 * (size_t)w) +
                (size_t)w * 8 + sizeof(int) * 2 * ((size_t)rs->tw + rs->th) + 64;
}

static int img__rs_init(img__rs *rs, int w, int h, int c, const acm_image_params *p, char *err, size_t errlen) {
    img__rs_plan(rs, w, h, c, p);
    const size_t C = (size_t)rs->C;
    char *m = calloc(1, rs->bytes); /* zeroed: the accumulator starts at 0 */
    if (!m) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory resizing a %dx%d image", w, h);
    rs->acc = (double *)m, m += sizeof(double) * C * rs->th * rs->tw;
    rs->hw = (float *)m, m += sizeof(float) * (size_t)rs->tw * rs->ht;
    rs->vw = (float *)m, m += sizeof(float) * (size_t)rs->th * rs->vt;
    rs->line = (float *)m, m += sizeof(float) * C * w;
    rs->hrow = (float *)m, m += sizeof(float) * C * rs->tw;
    rs->px = (float *)m, m += sizeof(float) * 4 * (size_t)w;
    rs->hlo = (int *)m, m += sizeof(int) * rs->tw;
    rs->hcnt = (int *)m, m += sizeof(int) * rs->tw;
    rs->vlo = (int *)m, m += sizeof(int) * rs->th;
    rs->vcnt = (int *)m, m += sizeof(int) * rs->th;
    rs->raw = (uint8_t *)m;
    img__taps(w, rs->tw, rs->ht, rs->hlo, rs->hcnt, rs->hw);
    img__taps(h, rs->th, rs->vt, rs->vlo, rs->vcnt, rs->vw);
    for (int k = 0; k < rs->C; k++) {
        float b = p->background[k];
        rs->bg[k] = b > 0 ? (b < 255 ? b : 255) : 0; /* also maps NaN to 0 */
    }
    return 0;
}

static void img__rs_free(img__rs *rs) {
    free(rs->acc);
    rs->acc = NULL;
}

/* Input row y: rs->px [w, c] in [0, 255] (the last of c = 2 or 4 is alpha), of which the pixels x0, x0 + dx, ... are
 * present (an Adam7 pass; x0 = 0, dx = 1 for a whole row). */
static void img__rs_row(img__rs *rs, int y, int x0, int dx) {
    const int w = rs->w, c = rs->c, C = rs->C, tw = rs->tw, th = rs->th;
    const int alpha = c == 2 || c == 4;
    /* 1-2. channels and alpha -> line [C, w] */
    for (int x = x0; x < w; x += dx) {
        const float *s = rs->px + (size_t)x * c;
        const float a = alpha ? s[c - 1] / 255.0f : 1.0f;
        if (C == 1) {
            float g = c <= 2 || (s[0] == s[1] && s[1] == s[2]) ? s[0] : 0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2];
            if (a < 1.0f) g = a * g + (1.0f - a) * rs->bg[0];
            rs->line[x] = g;
        } else {
            for (int k = 0; k < 3; k++) {
                float v = c <= 2 ? s[0] : s[k];
                if (a < 1.0f) v = a * v + (1.0f - a) * rs->bg[k];
                rs->line[(size_t)k * w + x] = v;
            }
        }
    }
    /* 3a. horizontal: line -> hrow [C, tw] (an axis of the target length is copied) */
    const float *hrow = rs->line;
    if (tw != w || dx != 1) {
        for (int k = 0; k < C; k++) {
            const float *src = rs->line + (size_t)k * w;
            for (int i = 0; i < tw; i++) {
                const float *wt = rs->hw + (size_t)i * rs->ht;
                const int lo = rs->hlo[i];
                double acc = 0;
                if (dx == 1)
                    for (int t = 0; t < rs->hcnt[i]; t++) acc += wt[t] * src[lo + t];
                else
                    for (int t = 0; t < rs->hcnt[i]; t++)
                        if (lo + t >= x0 && (lo + t - x0) % dx == 0) acc += wt[t] * src[lo + t];
                rs->hrow[(size_t)k * tw + i] = (float)acc;
            }
        }
        hrow = rs->hrow;
    }
    /* 3b. vertical: every output row whose taps include y gets its weighted share */
    for (int j = 0; j < th; j++) {
        const int d = y - rs->vlo[j];
        if (d < 0 || d >= rs->vcnt[j]) continue;
        const float wt = rs->vw[(size_t)j * rs->vt + d];
        if (wt == 0) continue;
        for (int k = 0; k < C; k++) {
            double *acc = rs->acc + ((size_t)k * th + j) * tw;
            const float *src = hrow + (size_t)k * tw;
            for (int i = 0; i < tw; i++) acc[i] += wt * src[i];
        }
    }
}

/* 4. the accumulator (and the letterbox margins) -> out [C, S, S] normalised: the expression of acm-train eval. */
static void img__rs_finish(const img__rs *rs, float *out, const acm_image_params *p) {
    const int S = rs->S;
    for (int k = 0; k < rs->C; k++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                const int yy = y - rs->oy, xx = x - rs->ox;
                float v = rs->bg[k];
                if (yy >= 0 && yy < rs->th && xx >= 0 && xx < rs->tw) {
                    v = (float)rs->acc[((size_t)k * rs->th + yy) * rs->tw + xx];
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                }
                out[((size_t)k * S + y) * S + x] = (v / 255.0f - p->mean[k]) / p->std[k];
            }
}

/* ---- PNM --------------------------------------------------------------------------------------------------------- */

typedef struct {
    int binary, bitmap, channels, width, height, maxval;
    size_t data_off; /* first byte of the samples */
} img__pnm;

static void img__pnm_skip(const uint8_t *buf, size_t len, size_t *pos) {
    size_t i = *pos;
    for (;;) {
        while (i < len && isspace(buf[i])) i++;
        if (i < len && buf[i] == '#') {
            while (i < len && buf[i] != '\n' && buf[i] != '\r') i++;
            continue;
        }
        break;
    }
    *pos = i;
}

/* Next header integer at *pos (skipping whitespace and '#' comments to the end of the line). */
static int img__pnm_int(const uint8_t *buf, size_t len, size_t *pos, long *out) {
    size_t i = *pos;
    img__pnm_skip(buf, len, &i);
    if (i >= len || !isdigit(buf[i])) return -1;
    long v = 0;
    while (i < len && isdigit(buf[i])) {
        v = v * 10 + (buf[i] - '0');
        if (v > 100000000L) return -1;
        i++;
    }
    *pos = i;
    *out = v;
    return 0;
}

static int img__pnm_header(img__pnm *h, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    if (len < 2 || buf[0] != 'P') return img__fail(err, errlen, ACM_IMAGE_EFORMAT, "not a PNM image");
    switch (buf[1]) {
    case '1': h->bitmap = 1, h->channels = 1; break;
    case '2': h->channels = 1; break;
    case '3': h->channels = 3; break;
    case '4': h->binary = 1, h->bitmap = 1, h->channels = 1; break;
    case '5': h->binary = 1, h->channels = 1; break;
    case '6': h->binary = 1, h->channels = 3; break;
    default: return img__fail(err, errlen, ACM_IMAGE_EFORMAT, "PNM variant P%c is not supported (P1 to P6 are)", buf[1]);
    }
    size_t pos = 2;
    long w, hh, mx = 1; /* a bitmap has no maxval */
    if (img__pnm_int(buf, len, &pos, &w) || img__pnm_int(buf, len, &pos, &hh) ||
        (!h->bitmap && img__pnm_int(buf, len, &pos, &mx)))
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM header is malformed or truncated");
    if (w < 1 || hh < 1 || w > IMG__MAX_DIM || hh > IMG__MAX_DIM)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM size %ldx%ld is out of range", w, hh);
    if (mx < 1 || mx > 65535) return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM maxval %ld is not in 1..65535", mx);
    if (pos >= len || !isspace(buf[pos]))
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM header must end with one whitespace character");
    h->width = (int)w, h->height = (int)hh, h->maxval = (int)mx;
    h->data_off = pos + 1; /* exactly one whitespace byte before binary samples */
    return 0;
}

/* Row by row into the resampler; samples scaled from [0, maxval] to [0, 255]; a bitmap's 1 is black. */
static int img__pnm_decode(img__rs *rs, const img__pnm *h, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    const int w = h->width, n = w * h->channels;
    const float scale = 255.0f / (float)h->maxval;
    const size_t bps = h->maxval > 255 ? 2 : 1, row = h->bitmap ? ((size_t)w + 7) / 8 : (size_t)n * bps;
    if (h->binary && len - h->data_off < row * h->height)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM data is truncated (%zu of %zu bytes)", len - h->data_off,
                         row * h->height);
    size_t pos = h->data_off;
    for (int y = 0; y < h->height; y++) {
        const uint8_t *s = buf + h->data_off + row * y;
        for (int i = 0; i < n; i++) {
            long v;
            if (h->binary && h->bitmap) {
                v = s[i >> 3] >> (7 - (i & 7)) & 1;
            } else if (h->binary) {
                v = bps == 2 ? (long)s[2 * i] << 8 | s[2 * i + 1] : s[i];
            } else if (h->bitmap) { /* one character per pixel, whitespace optional between them */
                img__pnm_skip(buf, len, &pos);
                if (pos >= len || (buf[pos] != '0' && buf[pos] != '1'))
                    return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PBM data is truncated or malformed at pixel %lld",
                                     (long long)y * w + i);
                v = buf[pos++] - '0';
            } else if (img__pnm_int(buf, len, &pos, &v)) {
                return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM data is truncated or malformed at sample %lld",
                                 (long long)y * n + i);
            }
            if (v > h->maxval)
                return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM sample %ld exceeds maxval %d", v, h->maxval);
            rs->px[i] = h->bitmap ? (v ? 0.0f : 255.0f) : h->maxval == 255 ? (float)v : (float)v * scale;
        }
        img__rs_row(rs, y, 0, 1);
    }
    return 0;
}

/* ---- PNG --------------------------------------------------------------------------------------------------------- */

static int img__png_open(spng_ctx **ctx, struct spng_ihdr *ihdr, const uint8_t *buf, size_t len, char *err,
                         size_t errlen) {
    *ctx = spng_ctx_new(0);
    if (!*ctx) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory (PNG decoder)");
    spng_set_image_limits(*ctx, IMG__MAX_DIM, IMG__MAX_DIM);
    spng_set_chunk_limits(*ctx, IMG__PNG_CHUNK, IMG__PNG_CACHE);
    /* A checksum mismatch in any chunk, ancillary ones included, means the file was damaged: refuse it (libspng
     * would otherwise drop a bad ancillary chunk silently). */
    spng_set_crc_action(*ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    int r = spng_set_png_buffer(*ctx, buf, len);
    if (!r) r = spng_get_ihdr(*ctx, ihdr);
    if (r) {
        spng_ctx_free(*ctx);
        *ctx = NULL;
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNG header: %s", spng_strerror(r));
    }
    return 0;
}

static int img__png_channels(const struct spng_ihdr *h) {
    switch (h->color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: return 1;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: return 2;
    case SPNG_COLOR_TYPE_TRUECOLOR: return 3;
    default: return 4; /* truecolour + alpha, and palette (decoded as RGBA) */
    }
}

/* Every PNG is decoded as RGBA8 (bit depths 1..8) or RGBA16, tRNS applied, one row at a time. */
static int img__png_decode(img__rs *rs, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    static const int adam7_x0[7] = {0, 4, 0, 2, 0, 1, 0}, adam7_dx[7] = {8, 8, 4, 4, 2, 2, 1};
    spng_ctx *ctx;
    struct spng_ihdr ih;
    int r = img__png_open(&ctx, &ih, buf, len, err, errlen);
    if (r) return r;
    const int wide = ih.bit_depth == 16, w = (int)ih.width;
    const size_t rowlen = (size_t)w * (wide ? 8 : 4);
    r = spng_decode_image(ctx, NULL, 0, wide ? SPNG_FMT_RGBA16 : SPNG_FMT_RGBA8,
                          SPNG_DECODE_TRNS | SPNG_DECODE_PROGRESSIVE);
    while (!r) {
        struct spng_row_info ri;
        if ((r = spng_get_row_info(ctx, &ri))) break;
        r = spng_decode_row(ctx, rs->raw, rowlen);
        if (r && r != SPNG_EOI) break;
        const int x0 = ih.interlace_method ? adam7_x0[ri.pass] : 0, dx = ih.interlace_method ? adam7_dx[ri.pass] : 1;
        const uint16_t *r16 = (const uint16_t *)(const void *)rs->raw;
        if (dx == 1 && wide)
            for (size_t i = 0; i < (size_t)w * 4; i++) rs->px[i] = (float)r16[i] / 257.0f;
        else if (dx == 1)
            for (size_t i = 0; i < (size_t)w * 4; i++) rs->px[i] = rs->raw[i];
        else
            for (int x = x0; x < w; x += dx)
                for (size_t i = (size_t)x * 4; i < (size_t)x * 4 + 4; i++)
                    rs->px[i] = wide ? (float)r16[i] / 257.0f : rs->raw[i];
        img__rs_row(rs, (int)ri.row_num, x0, dx);
    }
    /* Past the last row: read on to IEND, which checks the last IDAT's CRC and the chunks after it, and that the file
     * is not cut before IEND (libspng 0.7.3 does not notice a missing IEND CRC: the pixels are complete by then). */
    if (r == SPNG_EOI) r = spng_decode_chunks(ctx);
    spng_ctx_free(ctx);
    if (r == SPNG_EMEM) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory decoding a %dx%u PNG", w, ih.height);
    if (r == SPNG_EOF || r == SPNG_IO_EOF)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNG data is truncated (the file ends before its IEND chunk)");
    if (r == SPNG_ECHUNK_CRC)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNG data is corrupted (a chunk's CRC does not match)");
    if (r) return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNG data: %s", spng_strerror(r));
    return 0;
}

/* ---- JPEG -------------------------------------------------------------------------------------------------------- */

static int img__jpeg_header(tjhandle tj, const uint8_t *buf, size_t len, int *w, int *h, int *cs, int *sub,
                            char *err, size_t errlen) {
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, w, h, sub, cs) != 0)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "JPEG header: %s", tjGetErrorStr2(tj));
    if (*w < 1 || *h < 1 || *w > IMG__MAX_DIM || *h > IMG__MAX_DIM)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "JPEG size %dx%d is out of range", *w, *h);
    return 0;
}

/* Whether the frame is progressive: the first SOFn marker is SOF2, SOF6, SOF10 or SOF14. Markers are walked by their
 * lengths from SOI; 0 if none is found. */
static int img__jpeg_progressive(const uint8_t *buf, size_t len) {
    size_t i = 2;
    while (i + 4 <= len) {
        if (buf[i] != 0xff) return 0;
        const uint8_t m = buf[i + 1];
        if (m == 0xff) { /* fill byte */
            i++;
            continue;
        }
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) return (m & 3) == 2;
        if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) { /* no length */
            i += 2;
            continue;
        }
        i += 2 + ((size_t)buf[i + 2] << 8 | buf[i + 3]);
    }
    return 0;
}

/* The smallest DCT-scaled size still >= the target on both sides (scaling factors come sorted largest first). */
static void img__jpeg_scaled(int w, int h, int target, int *sw, int *sh) {
    int nsf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf);
    *sw = w, *sh = h;
    for (int i = 0; sf && i < nsf; i++) {
        int cw = TJSCALED(w, sf[i]), ch = TJSCALED(h, sf[i]);
        if (cw >= target && ch >= target && (size_t)cw * ch < (size_t)*sw * *sh) *sw = cw, *sh = ch;
    }
}

static int img__jpeg_decode(const uint8_t *buf, size_t len, const acm_image_params *p, float *out, char *err,
                            size_t errlen) {
    tjhandle tj = tjInitDecompress();
    if (!tj) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory (JPEG decoder)");
    int w, h, cs, sub, sw, sh, r;
    if ((r = img__jpeg_header(tj, buf, len, &w, &h, &cs, &sub, err, errlen))) {
        tjDestroy(tj);
        return r;
    }
    img__jpeg_scaled(w, h, p->size, &sw, &sh);
    const int nc = p->channels == 1 ? 1 : 3;
    uint8_t *raw = malloc((size_t)sw * sh * nc);
    if (!raw) {
        tjDestroy(tj);
        return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory decoding a %dx%d JPEG", w, h);
    }
    /* libjpeg's warnings (say, stray bytes before a marker) leave a usable image, but not the one for a file that
     * ends early: libjpeg fills the missing part with grey. That warning refuses the image, like a cut PNG. */
    if (tjDecompress2(tj, buf, (unsigned long)len, raw, sw, 0, sh, nc == 1 ? TJPF_GRAY : TJPF_RGB, TJFLAG_LIMITSCANS) != 0 &&
        (tjGetErrorCode(tj) == TJERR_FATAL || strstr(tjGetErrorStr2(tj), "Premature end of JPEG file"))) {
        r = tjGetErrorCode(tj) == TJERR_FATAL
                ? img__fail(err, errlen, ACM_IMAGE_EDECODE, "JPEG data: %s", tjGetErrorStr2(tj))
                : img__fail(err, errlen, ACM_IMAGE_EDECODE, "JPEG data is truncated (the file ends before its end marker)");
        free(raw), tjDestroy(tj);
        return r;
    }
    tjDestroy(tj);
    r = acm_image_u8_to_tensor(out, raw, sh, sw, nc, p, err, errlen);
    free(raw);
    return r;
}

/* ---- probe, bounds ----------------------------------------------------------------------------------------------- */

int acm_image_probe(acm_image_info *info, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    info->format = acm_image_sniff(buf, len);
    switch (info->format) {
    case ACM_IMAGE_PNG: {
        spng_ctx *ctx;
        struct spng_ihdr ih;
        int r = img__png_open(&ctx, &ih, buf, len, err, errlen);
        if (r) return r;
        spng_ctx_free(ctx);
        info->width = (int)ih.width, info->height = (int)ih.height, info->channels = img__png_channels(&ih);
        return 0;
    }
    case ACM_IMAGE_JPEG: {
        tjhandle tj = tjInitDecompress();
        if (!tj) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory (JPEG decoder)");
        int cs, sub, r = img__jpeg_header(tj, buf, len, &info->width, &info->height, &cs, &sub, err, errlen);
        tjDestroy(tj);
        const int four = cs == TJCS_CMYK || cs == TJCS_YCCK;
        info->channels = cs == TJCS_GRAY ? 1 : four ? 4 : 3;
        info->progressive = img__jpeg_progressive(buf, len);
        info->coded_samples = cs == TJCS_GRAY ? 1.0f
                              : four          ? 4.0f
                              : sub == TJSAMP_420 || sub == TJSAMP_411 ? 1.5f
                              : sub == TJSAMP_422 || sub == TJSAMP_440 ? 2.0f
                                                                       : 3.0f; /* 4:4:4, or unknown: the most */
        return r;
    }
    case ACM_IMAGE_PNM: {
        img__pnm h;
        int r = img__pnm_header(&h, buf, len, err, errlen);
        if (r) return r;
        info->width = h.width, info->height = h.height, info->channels = h.channels;
        return 0;
    }
    default: return img__fail(err, errlen, ACM_IMAGE_EFORMAT, "not a PNG, JPEG or PNM image");
    }
}

static size_t img__decode_bytes(const acm_image_info *info, const acm_image_params *p) {
    img__rs rs;
    const size_t w = (size_t)info->width, h = (size_t)info->height;
    switch (info->format) {
    case ACM_IMAGE_PNG:
        /* libspng: its context, three rows (scanline, previous scanline, converted row) and zlib's inflate state with
         * its 32 KiB window, under 64 KiB in all; the chunks it keeps, capped */
        img__rs_plan(&rs, info->width, info->height, 4, p);
        return rs.bytes + ((size_t)64 << 10) + 3 * (8 * w + 64) + IMG__PNG_CACHE;
    case ACM_IMAGE_JPEG: {
        int sw, sh;
        img__jpeg_scaled(info->width, info->height, p->size, &sw, &sh);
        const size_t nc = p->channels == 1 ? 1 : 3, comps = info->channels == 1 ? 1 : 4;
        /* libjpeg: its objects, and per component rows of up to 4 blocks of 8 at full width, 2 bytes a sample
         * (MCU rows, upsampling); progressive, 2 bytes of DCT coefficient per coded sample of the whole image,
         * padded to whole MCUs (at most 32 pixels a side) */
        size_t lib = ((size_t)512 << 10) + comps * 4 * 8 * (w + 32) * 2;
        if (info->progressive) lib += (size_t)(2 * info->coded_samples * (double)(w + 32) * (double)(h + 32));
        img__rs_plan(&rs, sw, sh, (int)nc, p);
        return rs.bytes + (size_t)sw * sh * nc + lib;
    }
    case ACM_IMAGE_PNM: img__rs_plan(&rs, info->width, info->height, 3, p); return rs.bytes;
    default: return 0;
    }
}

size_t acm_image_decode_bytes(const acm_image_info *info, const acm_image_params *p) {
    return img__decode_bytes(info, p) + 4096; /* what malloc rounds up and keeps beside each block */
}

/* ---- entry points ------------------------------------------------------------------------------------------------ */

static int img__check_params(const acm_image_params *p, char *err, size_t errlen) {
    if (!p || p->size < 1 || p->size > 4096 || (p->channels != 1 && p->channels != 3) ||
        (p->fit != ACM_IMAGE_FIT_STRETCH && p->fit != ACM_IMAGE_FIT_LETTERBOX))
        return img__fail(err, errlen, ACM_IMAGE_EINVAL, "image parameters: size %d, channels %d, fit %d not supported",
                         p ? p->size : 0, p ? p->channels : 0, p ? (int)p->fit : 0);
    return 0;
}

int acm_image_to_tensor(float *out, const uint8_t *buf, size_t len, const acm_image_params *p, char *err,
                        size_t errlen) {
    int r = img__check_params(p, err, errlen);
    if (r) return r;
    acm_image_info info;
    if ((r = acm_image_probe(&info, buf, len, err, errlen))) return r;
    if (p->max_pixels > 0 && (int64_t)info.width * info.height > p->max_pixels)
        return img__fail(err, errlen, ACM_IMAGE_ETOOBIG, "%s image of %dx%d = %lld pixels is over the limit of %lld",
                         acm_image_format_name(info.format), info.width, info.height,
                         (long long)info.width * info.height, (long long)p->max_pixels);
    const size_t need = p->max_decode_bytes ? acm_image_decode_bytes(&info, p) : 0;
    if (need > p->max_decode_bytes)
        return img__fail(err, errlen, ACM_IMAGE_ETOOBIG,
                         "decoding this %dx%d %s%s image takes up to %.1f MiB of memory, over the limit of %.1f MiB",
                         info.width, info.height, info.progressive ? "progressive " : "",
                         acm_image_format_name(info.format), need / 1048576.0, p->max_decode_bytes / 1048576.0);
    if (info.format == ACM_IMAGE_JPEG) return img__jpeg_decode(buf, len, p, out, err, errlen);
    img__rs rs;
    img__pnm hd;
    const int c = info.format == ACM_IMAGE_PNG ? 4 : info.channels;
    if ((r = img__rs_init(&rs, info.width, info.height, c, p, err, errlen))) return r;
    if (info.format == ACM_IMAGE_PNG) r = img__png_decode(&rs, buf, len, err, errlen);
    else if (!(r = img__pnm_header(&hd, buf, len, err, errlen))) r = img__pnm_decode(&rs, &hd, buf, len, err, errlen);
    if (!r) img__rs_finish(&rs, out, p);
    img__rs_free(&rs);
    return r;
}

int acm_image_u8_to_tensor(float *out, const uint8_t *hwc, int h, int w, int c, const acm_image_params *p, char *err,
                           size_t errlen) {
    int r = img__check_params(p, err, errlen);
    if (r) return r;
    if (h < 1 || w < 1 || h > IMG__MAX_DIM || w > IMG__MAX_DIM || c < 1 || c > 4)
        return img__fail(err, errlen, ACM_IMAGE_EINVAL, "image of %dx%dx%d is not supported", h, w, c);
    if (p->max_pixels > 0 && (int64_t)w * h > p->max_pixels)
        return img__fail(err, errlen, ACM_IMAGE_ETOOBIG, "image of %dx%d pixels is over the limit of %lld", w, h,
                         (long long)p->max_pixels);
    img__rs rs;
    if ((r = img__rs_init(&rs, w, h, c, p, err, errlen))) return r;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = hwc + (size_t)y * w * c;
        for (size_t i = 0; i < (size_t)w * c; i++) rs.px[i] = s[i];
        img__rs_row(&rs, y, 0, 1);
    }
    img__rs_finish(&rs, out, p);
    img__rs_free(&rs);
    return 0;
}
